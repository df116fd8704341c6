//go:build !linux

package childproc

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Own group: a terminal's Ctrl-C does not reach it, Stop kills the group.
	return &syscall.SysProcAttr{Setpgid: true}
}
