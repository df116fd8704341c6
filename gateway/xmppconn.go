package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// writeTimeout bounds one stanza write: a server that stops reading must
// not block a REST call (or the stream's goroutine) forever.
const writeTimeout = 10 * time.Second

// nsStreams is the stream namespace (RFC 6120 §4.8.1).
const nsStreams = "http://etherx.jabber.org/streams"

// xmppConn is a negotiated XMPP client stream (login.go): the gateway reads
// its tokens itself, into xmlNode trees that keep every element whole
// (message ids, every <x/> child, IQ error conditions), and writes its
// already serialised stanzas straight to the connection, grouped (Write).
type xmppConn struct {
	// raw is the stream's transport (TLS or, on loopback, TCP): writes,
	// deadlines, close.
	raw net.Conn
	// tokens is the stream's input after negotiation (streamDecoder).
	tokens tokenSource
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

// The stream's opening and closing tags (RFC 6120 §4.2, §4.4) as the XML
// encoder writes them: the opening one sets up the namespaces of a
// decoder that starts after negotiation; the closing one ends our side.
var streamOpen, streamClose = streamTags()

func streamTags() (open, end []byte) {
	start := xml.StartElement{Name: xml.Name{Local: "stream:stream"}, Attr: []xml.Attr{
		{Name: xml.Name{Local: "xmlns"}, Value: nsClient},
		{Name: xml.Name{Local: "xmlns:stream"}, Value: nsStreams},
	}}
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	if err := e.EncodeToken(start); err != nil {
		panic(err) // constant input: a failure is a bug found by any test
	}
	_ = e.Flush()
	open = bytes.Clone(b.Bytes())
	b.Reset()
	if err := e.EncodeToken(start.End()); err != nil {
		panic(err)
	}
	_ = e.Flush()
	return open, bytes.Clone(b.Bytes())
}

// streamDecoder reads the rest of a negotiated stream from c. Its decoder
// first reads the stream's opening tag again (from memory), so stanzas get
// the namespaces the server's header gave them (jabber:client, and the
// stream prefix of <stream:error/> and </stream:stream>), then the socket.
// c is an io.ByteReader: the decoder adds no buffer of its own.
func streamDecoder(c *idleConn) *xml.Decoder {
	c.unread = append(bytes.Clone(streamOpen), c.unread...)
	d := xml.NewDecoder(c)
	if _, err := d.Token(); err != nil {
		panic(err) // the opening tag we just wrote
	}
	return d
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
// gateway will not take whole comes back marked, not as an error; the
// server's </stream:stream> is errStreamEnded, its <stream:error/> an
// error naming the condition).
func (c *xmppConn) Read() (xmlNode, error) {
	n, err := readStanza(c.tokens, c.maxRead)
	if errors.Is(err, io.EOF) {
		return xmlNode{}, errStreamEnded
	}
	return n, err
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
	err := c.Write(streamClose)
	_ = c.raw.SetReadDeadline(time.Now().Add(wait))
	return err
}

var _ conn = (*xmppConn)(nil)
