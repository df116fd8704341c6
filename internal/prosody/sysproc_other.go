//go:build !linux

package prosody

import "syscall"

func sysProcAttr() *syscall.SysProcAttr {
	// Own group: a terminal's Ctrl-C does not reach it, Stop kills the group.
	return &syscall.SysProcAttr{Setpgid: true}
}
