//go:build !linux

package childproc

import "os/exec"

// Detach does nothing outside Linux: children stay in the parent's process
// group and are stopped by its cleanups.
func Detach(*exec.Cmd) {}
