package childproc

import (
	"os/exec"
	"syscall"
)

// Detach puts the child in its own process group, so a Ctrl-C at the
// terminal reaches only the parent (which then stops its children in
// order), and has the kernel kill the child if the parent dies without
// cleaning up.
func Detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
