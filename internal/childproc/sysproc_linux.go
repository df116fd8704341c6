package childproc

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:   true,            // own group: a terminal's Ctrl-C does not reach it, Stop kills the group
		Pdeathsig: syscall.SIGKILL, // no orphan holding the port if the test binary dies
	}
}
