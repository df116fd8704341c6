//go:build unix && !(darwin || linux || openbsd)

package sse

import "syscall"

// writev writes the first buffer only where golang.org/x/sys has no
// writev(2); the caller sees a short write and keeps the rest queued.
func writev(fd int, bufs [][]byte) (int, error) { return syscall.Write(fd, bufs[0]) }
