//go:build unix

package sse

import (
	"errors"
	"syscall"
)

// tryWrite makes one non-blocking write(2) attempt on the socket (Go keeps
// sockets in non-blocking mode; RawConn.Write returns as soon as the
// callback reports done, without parking on the poller). A short write or
// EAGAIN means the socket buffer is full: the rest is errWouldBlock's.
func tryWrite(rc syscall.RawConn, p []byte) (int, error) {
	if rc == nil {
		return 0, errWouldBlock
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = syscall.Write(int(fd), p)
			if !errors.Is(werr, syscall.EINTR) {
				return true
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case errors.Is(werr, syscall.EAGAIN):
		return 0, errWouldBlock
	case werr != nil:
		return 0, werr
	case n < len(p):
		return n, errWouldBlock
	}
	return n, nil
}

// peerClosed makes one non-blocking read(2): end of file or an error means
// the client is gone. An SSE client sends nothing after its request, so
// anything readable is discarded.
func peerClosed(rc syscall.RawConn) bool {
	if rc == nil {
		return false
	}
	var buf [64]byte
	closed := false
	if err := rc.Read(func(fd uintptr) bool {
		n, rerr := syscall.Read(int(fd), buf[:])
		closed = (n == 0 && rerr == nil) || (rerr != nil && !errors.Is(rerr, syscall.EAGAIN) && !errors.Is(rerr, syscall.EINTR))
		return true
	}); err != nil {
		return true
	}
	return closed
}
