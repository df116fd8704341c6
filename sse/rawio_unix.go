//go:build unix

package sse

import (
	"errors"
	"net"
	"syscall"
)

// tryWrite makes one non-blocking write(2) attempt on the socket (Go keeps
// sockets in non-blocking mode; RawConn.Write returns as soon as the
// callback reports done, without parking on the poller). A short write or
// EAGAIN means the socket buffer is full: the rest is errWouldBlock's.
func tryWrite(rc syscall.RawConn, p []byte) (int, error) {
	return tryOnce(rc, len(p), func(fd int) (int, error) { return syscall.Write(fd, p) })
}

// tryWritev is tryWrite for several buffers at once: one writev(2) of as
// many as the kernel takes in one call (IOV_MAX, 1024 on Linux).
func tryWritev(rc syscall.RawConn, bufs [][]byte) (int, error) {
	bufs = bufs[:min(len(bufs), maxIovecs)]
	want := 0
	for _, b := range bufs {
		want += len(b)
	}
	return tryOnce(rc, want, func(fd int) (int, error) { return writev(fd, bufs) })
}

// tryOnce runs one non-blocking write of want bytes on rc's descriptor
// (retried on EINTR) and maps its outcome for tryWrite and tryWritev.
func tryOnce(rc syscall.RawConn, want int, write func(fd int) (int, error)) (int, error) {
	if rc == nil {
		return 0, errWouldBlock
	}
	var n int
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		for {
			n, werr = write(int(fd))
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
	case n < want:
		return max(n, 0), errWouldBlock
	}
	return n, nil
}

// maxIovecs bounds the buffers of one writev call (POSIX IOV_MAX is at
// least 16; Linux and the BSDs allow 1024).
const maxIovecs = 1024

// readGone reads, without blocking, whatever the client sent and reports
// whether it has hung up (end of file, reset, or the connection closed). An
// SSE client sends nothing after its request, so what it reads is dropped.
func readGone(rc syscall.RawConn) bool {
	if rc == nil {
		return false
	}
	var buf [512]byte
	gone := false
	for range 64 { // bounded: a client cannot keep this loop busy
		more := false
		if err := rc.Read(func(fd uintptr) bool {
			n, rerr := syscall.Read(int(fd), buf[:])
			switch {
			case rerr == nil && n == 0:
				gone = true
			case rerr == nil:
				more = true
			case errors.Is(rerr, syscall.EINTR):
				more = true
			case errors.Is(rerr, syscall.ECONNRESET), errors.Is(rerr, syscall.EPIPE), errors.Is(rerr, syscall.ENOTCONN):
				gone = true
			}
			return true
		}); err != nil {
			return errors.Is(err, net.ErrClosed)
		}
		if !more {
			break
		}
	}
	return gone
}
