package multiprocess

import (
	"os/exec"
	"syscall"
)

// detach puts the child in its own process group, so a Ctrl-C at the
// terminal reaches only the test (which then stops its children in order),
// and has the kernel kill it if the test process dies without cleaning up.
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
