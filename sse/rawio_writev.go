//go:build darwin || linux || openbsd

package sse

import "golang.org/x/sys/unix"

// writev is writev(2), where golang.org/x/sys offers it.
func writev(fd int, bufs [][]byte) (int, error) { return unix.Writev(fd, bufs) }
