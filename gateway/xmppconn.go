package gateway

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"mellium.im/xmpp/stream"
)

// writeTimeout bounds one stanza write: a server that stops reading must
// not block a REST call (or the stream's goroutine) forever.
const writeTimeout = 10 * time.Second

// nsStreams is the stream namespace (RFC 6120 §4.8.1).
const nsStreams = "http://etherx.jabber.org/streams"

// xmppConn is a negotiated XMPP client stream (login.go): the gateway reads
// the session's tokens itself, into xmlNode trees that keep every element
// whole (message ids, every <x/> child, IQ error conditions), and writes
// its already serialised stanzas straight to the session's connection,
// grouped (Write), instead of re-tokenising them for mellium's encoder.
type xmppConn struct {
	// raw is the session's transport (TLS or, on loopback, TCP): writes,
	// deadlines, close.
	raw net.Conn
	// tokens is the session's input stream (mellium's reader, which turns
	// </stream:stream> into io.EOF and <stream:error/> into stream.Error).
	tokens tokenSource
	// ender writes the closing </stream:stream> (the mellium session); nil
	// in tests that build a conn by hand.
	ender io.Closer
	// maxStanza is the server's XEP-0478 limit read at login (0 = none
	// announced); a larger stanza would end the stream, so Write refuses it.
	maxStanza int
	// maxRead is the byte limit of one received top-level element (0 =
	// none): larger ones are skipped (readStanza).
	maxRead int64
	// full is the JID the server bound.
	full string

	mu       sync.Mutex  // guards the two fields below
	pending  *writeBatch // stanzas not yet handed to a flush, or nil
	inflight *writeBatch // the batch being written, or nil
}

// sessionTokens counts what the tokens of a session's input took, for the
// read budget: the decoder under mellium's reader is not ours, so its
// InputOffset is out of reach; the sum of names, attribute values, text and
// markup of the tokens read measures the same thing (what the reader keeps)
// whatever TLS and buffering do underneath.
type sessionTokens struct {
	r xml.TokenReader
	n int64
}

func (t *sessionTokens) Token() (xml.Token, error) {
	tok, err := t.r.Token()
	t.n += tokenBytes(tok)
	return tok, err
}

func (t *sessionTokens) InputOffset() int64 { return t.n }

// tokenBytes is about the size of tok as it was written: markup, names,
// attribute values, text.
func tokenBytes(tok xml.Token) int64 {
	switch t := tok.(type) {
	case xml.StartElement:
		n := 2 + len(t.Name.Local)
		for _, a := range t.Attr {
			n += 4 + len(a.Name.Local) + len(a.Value)
		}
		return int64(n)
	case xml.EndElement:
		return int64(3 + len(t.Name.Local))
	case xml.CharData:
		return int64(len(t))
	case xml.Comment:
		return int64(7 + len(t))
	case xml.ProcInst:
		return int64(5 + len(t.Target) + len(t.Inst))
	case xml.Directive:
		return int64(3 + len(t))
	}
	return 0
}

// maxBatchBytes bounds one group-commit batch (one write syscall): a writer
// whose stanza does not fit waits for the next batch. A stanza larger than
// this (up to the manager's MaxStanzaBytes) is written alone.
const maxBatchBytes = 64 * 1024

// writeBatch is stanzas written together by one flush. err is set before
// done is closed, so waiters read it after <-done without the lock.
type writeBatch struct {
	buf  *[]byte
	err  error
	done chan struct{}
}

// batchBufs recycles batch buffers across connections, so an idle stream
// keeps no write buffer of its own.
var batchBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// Read returns the next top-level element (see readStanza: a stanza the
// gateway will not take whole comes back marked, not as an error).
func (c *xmppConn) Read() (xmlNode, error) {
	n, err := readStanza(c.tokens, c.maxRead)
	var se stream.Error
	switch {
	case err == nil:
		return n, nil
	case errors.Is(err, io.EOF):
		return xmlNode{}, errStreamEnded
	case errors.As(err, &se):
		// RFC 6120 §4.9: the server ends the stream after a stream error.
		return xmlNode{}, fmt.Errorf("stream error: %s", se.Err)
	}
	return xmlNode{}, err
}

// Write sends one stanza (followed by a newline)
// and returns once the write that carried it has ended, with its error.
//
// Concurrent writers on one connection share writes (group commit): a
// writer that finds no open batch starts one and leads it; writers arriving
// while an earlier batch is being written append to the open batch and wait
// for it. The leader waits only for the write ahead of it, then writes the
// whole batch in one Write. Under load this turns N stanzas into one
// syscall here and, above all, into one read and one event-loop turn in
// the XMPP server (Prosody is single-threaded and the bottleneck of the
// send path); a lone writer finds nothing in flight and writes at once.
// No goroutine of its own: the leader is always one of the callers.
func (c *xmppConn) Write(raw []byte) error {
	n := len(raw) + 1
	if c.maxStanza > 0 && n > c.maxStanza {
		return fmt.Errorf("stanza size (%v bytes) exceeds server limit (%v bytes)", n, c.maxStanza)
	}
	c.mu.Lock()
	for {
		b := c.pending
		if b == nil {
			break
		}
		if len(*b.buf)+n <= maxBatchBytes {
			// Join: the batch's leader writes our stanza with its own.
			*b.buf = append(append(*b.buf, raw...), '\n')
			c.mu.Unlock()
			<-b.done
			return b.err
		}
		// The open batch is full: wait until it is written, then retry.
		c.mu.Unlock()
		<-b.done
		c.mu.Lock()
	}
	b := &writeBatch{buf: batchBufs.Get().(*[]byte), done: make(chan struct{})}
	*b.buf = append(append((*b.buf)[:0], raw...), '\n')
	c.pending = b
	ahead := c.inflight
	c.mu.Unlock()
	if ahead != nil {
		<-ahead.done // batches are written in order and never overlap
	}
	c.mu.Lock()
	c.pending, c.inflight = nil, b // close the batch: later writers start the next
	c.mu.Unlock()

	_ = c.raw.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, b.err = c.raw.Write(*b.buf)

	c.mu.Lock()
	c.inflight = nil
	c.mu.Unlock()
	if cap(*b.buf) <= maxBatchBytes {
		batchBufs.Put(b.buf)
	}
	b.buf = nil
	close(b.done)
	return b.err
}

// JID is the bound full JID.
func (c *xmppConn) JID() string { return c.full }

// Close closes the socket.
func (c *xmppConn) Close() error { return c.raw.Close() }

// EndStream closes our side of the XML stream (RFC 6120 §4.4) and makes a
// pending Read give up after wait if the server does not answer with its
// own </stream:stream> (it may take its time). The reader then sees the end
// and closes the socket, so nothing closes it under a concurrent read.
func (c *xmppConn) EndStream(wait time.Duration) error {
	var err error
	if c.ender != nil {
		err = c.ender.Close()
	}
	_ = c.raw.SetReadDeadline(time.Now().Add(wait))
	return err
}

var _ conn = (*xmppConn)(nil)
