package gateway

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"time"
	"unsafe"

	xmpp "github.com/xmppo/go-xmpp"
)

// writeTimeout bounds one stanza write: a server that stops reading must
// not block a REST call (or the stream's goroutine) forever.
const writeTimeout = 10 * time.Second

// nsStreams is the stream namespace (RFC 6120 §4.8.1).
const nsStreams = "http://etherx.jabber.org/streams"

// xmppConn is a go-xmpp session whose reading the gateway has taken over.
// go-xmpp does the part it does well (TCP, STARTTLS, SASL, resource
// binding); after that, its Recv loses too much (message ids, all but one
// <x/> child, IQ error conditions, presence priority), so the gateway reads
// the same XML decoder itself and keeps every element whole.
type xmppConn struct {
	client *xmpp.Client
	raw    net.Conn
	dec    *xml.Decoder
	// maxStanza is the server's XEP-0478 limit go-xmpp read at login
	// (0 = none announced); SendOrg enforced it, so Write does too.
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

// takeOver extracts the socket and XML decoder of a logged-in go-xmpp
// client (v0.3.6, pinned in go.mod). The decoder is reused, not replaced:
// it may already hold buffered stanzas (offline messages arrive right
// after login). TestTakeOver_MatchesGoXMPP fails if go-xmpp's fields change.
func takeOver(c *xmpp.Client) (*xmppConn, error) {
	v := reflect.ValueOf(c).Elem()
	connField, decField := v.FieldByName("conn"), v.FieldByName("p")
	if !connField.IsValid() || !decField.IsValid() ||
		connField.Type() != reflect.TypeFor[net.Conn]() || decField.Type() != reflect.TypeFor[*xml.Decoder]() {
		return nil, errors.New("gateway: go-xmpp's Client layout is not the expected v0.3.6 one")
	}
	raw, _ := reflect.NewAt(connField.Type(), unsafe.Pointer(connField.UnsafeAddr())).Elem().Interface().(net.Conn)
	dec, _ := reflect.NewAt(decField.Type(), unsafe.Pointer(decField.UnsafeAddr())).Elem().Interface().(*xml.Decoder)
	if raw == nil || dec == nil {
		return nil, errors.New("gateway: go-xmpp client has no connection")
	}
	// Write bypasses go-xmpp's stanzaWriter and writes to conn: they are the
	// same value unless go-xmpp's Debug option tees writes to a log.
	if w := v.FieldByName("stanzaWriter"); !w.IsValid() || w.Type() != reflect.TypeFor[io.Writer]() ||
		reflect.NewAt(w.Type(), unsafe.Pointer(w.UnsafeAddr())).Elem().Interface() != any(raw) {
		return nil, errors.New("gateway: go-xmpp does not write to its connection directly (Debug on?)")
	}
	return &xmppConn{client: c, raw: raw, dec: dec, maxStanza: c.LimitMaxBytes, full: c.JID()}, nil
}

// Read returns the next top-level element (see readStanza: a stanza the
// gateway will not take whole comes back marked, not as an error).
func (c *xmppConn) Read() (xmlNode, error) { return readStanza(c.dec, c.maxRead) }

// Write sends one stanza (followed by a newline, as go-xmpp's SendOrg did)
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

// expectClose makes a pending Read give up after d if the server does not
// answer our </stream:stream> (RFC 6120 §4.4 lets it take its time).
func (c *xmppConn) expectClose(d time.Duration) {
	_ = c.raw.SetReadDeadline(time.Now().Add(d))
}

var _ io.Closer = (*xmppConn)(nil)
