package redistest

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Setpgid:   true,            // own group: a terminal's Ctrl-C does not reach it
		Pdeathsig: syscall.SIGKILL, // no orphan holding the port if the test binary dies
	}
}
