//go:build !linux

package multiprocess

import "os/exec"

// detach does nothing outside Linux: children stay in the test's process
// group and are stopped by the test's cleanups.
func detach(*exec.Cmd) {}
