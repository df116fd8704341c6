//go:build !unix

package sse

import "syscall"

// tryWrite has no non-blocking write here: every write goes through a
// drainer goroutine with a blocking, deadline-bounded write.
func tryWrite(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }

// readGone cannot probe here; a dead client is found by a failed write.
func readGone(syscall.RawConn) bool { return false }

// tryWritev is tryWrite for several buffers: not here either.
func tryWritev(syscall.RawConn, [][]byte) (int, error) { return 0, errWouldBlock }
