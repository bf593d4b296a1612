package bench

import (
	"os/exec"
	"syscall"
)

// detach puts the child in its own process group, so a Ctrl-C at the
// terminal reaches only the harness (which then stops the child in
// order), and has the kernel kill the child if the harness dies.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
