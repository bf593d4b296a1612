//go:build !linux

package bench

import "os/exec"

// detach does nothing outside Linux.
func detach(*exec.Cmd) {}
