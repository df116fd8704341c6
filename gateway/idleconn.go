package gateway

import (
	"net"
	"sync"
)

// idleReadBytes is the read buffer every stream keeps: enough for a
// typical stanza in one read, small next to the 4 KiB bufio.Reader that
// encoding/xml would otherwise give each stream's decoder.
const idleReadBytes = 512

// busyReadBytes is the buffer a stream borrows while data keeps coming.
const busyReadBytes = 16 * 1024

// busyReads lends read buffers to streams with data waiting.
var busyReads = sync.Pool{New: func() any { b := make([]byte, busyReadBytes); return &b }}

// idleConn is a connection that is also an io.ByteReader, so the XML
// decoder of a session reads from it directly: xml.NewDecoder wraps any
// other reader in a bufio.Reader of 4 KiB, held by every stream for its
// whole life, most of it idle. idleConn reads into a small buffer of its
// own and, when a read fills it (more is probably waiting), borrows a large
// one from a pool until a read finds the socket drained. An idle stream
// then holds idleReadBytes; a busy one reads as much per syscall as bufio
// would, or more.
//
// Reads belong to one goroutine at a time (the session's reader, or TLS
// under it), as for any net.Conn read by a decoder.
type idleConn struct {
	net.Conn
	small  [idleReadBytes]byte
	busy   *[]byte // borrowed from busyReads while reads fill their buffer
	unread []byte  // bytes read from the socket and not yet returned
	full   bool    // the last socket read filled its buffer
	err    error   // the socket's error, returned once unread is empty
}

// newIdleConn wraps c (never an idleConn already: the bytes it has read
// ahead would be lost to a second wrapper).
func newIdleConn(c net.Conn) *idleConn { return &idleConn{Conn: c} }

// ReadByte returns the next byte (io.ByteReader).
func (c *idleConn) ReadByte() (byte, error) {
	if len(c.unread) == 0 {
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	b := c.unread[0]
	c.unread = c.unread[1:]
	return b, nil
}

// Read returns what was read ahead first, then reads the socket into p
// (TLS over this connection reads into its own record buffer).
func (c *idleConn) Read(p []byte) (int, error) {
	if len(c.unread) > 0 {
		n := copy(p, c.unread)
		c.unread = c.unread[n:]
		return n, nil
	}
	if c.busy != nil { // TLS reads through Read only: give the buffer back
		busyReads.Put(c.busy)
		c.busy, c.full = nil, false
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// fill reads the socket once; unread is empty, so the borrowed buffer can
// go back to the pool when the last read left the socket drained.
func (c *idleConn) fill() error {
	if c.err != nil {
		return c.err
	}
	if c.busy != nil && !c.full {
		busyReads.Put(c.busy)
		c.busy = nil
	}
	dst := c.small[:]
	if c.busy != nil {
		dst = *c.busy
	}
	var n int
	var err error
	for n == 0 && err == nil { // io.Reader allows (0, nil); ReadByte needs a byte
		n, err = c.Conn.Read(dst)
	}
	c.unread = dst[:n]
	c.full = n == len(dst)
	if c.full && c.busy == nil {
		c.busy = busyReads.Get().(*[]byte)
	}
	if err != nil {
		c.err = err
		if n == 0 {
			return err
		}
	}
	return nil
}
