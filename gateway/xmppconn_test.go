package gateway

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// gatedConn is a net.Conn whose Writes are recorded and can be held: while
// gate is non-nil, a Write blocks until the test sends on it the error that
// Write should return.
type gatedConn struct {
	net.Conn // nil: only Write and SetWriteDeadline are used

	mu        sync.Mutex
	writes    []string
	deadlines int
	gate      chan error
	entered   chan struct{} // gets a value when a Write starts
}

func newGatedConn() *gatedConn {
	return &gatedConn{gate: make(chan error), entered: make(chan struct{}, 16)}
}

func (g *gatedConn) Write(p []byte) (int, error) {
	g.mu.Lock()
	g.writes = append(g.writes, string(p))
	g.mu.Unlock()
	g.entered <- struct{}{}
	if err := <-g.gate; err != nil {
		return 0, err
	}
	return len(p), nil
}

func (g *gatedConn) SetWriteDeadline(time.Time) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deadlines++
	return nil
}

// waitPending blocks until the open batch of c holds want bytes.
// writeInFlight starts a Write of <first/> and returns once it is held in
// the gated connection, so later writers queue behind it.
func writeInFlight(t *testing.T) (*gatedConn, *xmppConn, chan error) {
	t.Helper()
	g := newGatedConn()
	c := &xmppConn{raw: g}
	first := make(chan error)
	go func() { first <- c.Write([]byte("<first/>")) }()
	<-g.entered
	return g, c, first
}

func waitPending(t *testing.T, c *xmppConn, want int) {
	t.Helper()
	require.Eventually(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.pending != nil && len(*c.pending.buf) == want
	}, 5*time.Second, time.Millisecond)
}

func TestXMPPConnWrite_LoneWriterWritesAtOnce(t *testing.T) {
	t.Parallel()
	g := newGatedConn()
	c := &xmppConn{raw: g}
	errc := make(chan error)
	go func() { errc <- c.Write([]byte("<a/>")) }()
	<-g.entered // nothing else is in flight, so the write starts right away
	g.gate <- nil
	require.NoError(t, <-errc)
	require.Equal(t, []string{"<a/>\n"}, g.writes)
	require.Equal(t, 1, g.deadlines)
	require.Nil(t, c.pending)
	require.Nil(t, c.inflight)
}

func TestXMPPConnWrite_GroupCommit(t *testing.T) {
	t.Parallel()
	g, c, first := writeInFlight(t)

	// Writers arriving now queue up in one batch behind it.
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- c.Write([]byte("<s" + strconv.Itoa(i) + "/>")) }()
	}
	waitPending(t, c, n*len("<s0/>\n"))

	g.gate <- nil
	require.NoError(t, <-first)
	<-g.entered // the batch: one Write for all n stanzas
	g.gate <- nil
	for range n {
		require.NoError(t, <-errs)
	}
	require.Len(t, g.writes, 2)
	require.Equal(t, 2, g.deadlines, "one write deadline per flush")
	for i := range n {
		require.Equal(t, 1, strings.Count(g.writes[1], "<s"+strconv.Itoa(i)+"/>\n"))
	}
}

func TestXMPPConnWrite_ErrorReachesTheWholeBatch(t *testing.T) {
	t.Parallel()
	g, c, first := writeInFlight(t)

	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() { errs <- c.Write([]byte("<s/>")) }()
	}
	waitPending(t, c, n*len("<s/>\n"))

	g.gate <- nil
	require.NoError(t, <-first, "the batch ahead succeeded")
	<-g.entered
	broken := errors.New("broken pipe")
	g.gate <- broken
	for range n {
		require.ErrorIs(t, <-errs, broken, "every waiter of the failed batch gets its error")
	}

	// The connection is not wedged: the next writer leads a new batch.
	go func() { first <- c.Write([]byte("<after/>")) }()
	<-g.entered
	g.gate <- nil
	require.NoError(t, <-first)
	require.Equal(t, "<after/>\n", g.writes[2])
}

func TestXMPPConnWrite_FullBatchWaitsForTheNext(t *testing.T) {
	t.Parallel()
	g, c, first := writeInFlight(t)

	big := func(name string) []byte { // 0.4 of a batch: two fit, three do not
		return []byte("<" + name + ">" + strings.Repeat("x", maxBatchBytes*4/10) + "</" + name + ">")
	}
	errs := make(chan error, 3)
	go func() { errs <- c.Write(big("a")) }()
	waitPending(t, c, len(big("a"))+1)
	go func() { errs <- c.Write(big("b")) }()
	waitPending(t, c, 2*(len(big("a"))+1))
	go func() { errs <- c.Write(big("c")) }()

	for range 2 { // first, then a+b, then c in a batch of its own
		g.gate <- nil
		<-g.entered
	}
	g.gate <- nil
	require.NoError(t, <-first)
	for range 3 {
		require.NoError(t, <-errs)
	}
	require.Len(t, g.writes, 3)
	require.Equal(t, string(big("a"))+"\n"+string(big("b"))+"\n", g.writes[1])
	require.Equal(t, string(big("c"))+"\n", g.writes[2])
	for _, w := range g.writes {
		require.LessOrEqual(t, len(w), maxBatchBytes)
	}
}

func TestXMPPConnWrite_ServerStanzaLimit(t *testing.T) {
	t.Parallel()
	g := newGatedConn()
	c := &xmppConn{raw: g, maxStanza: 10}
	require.ErrorContains(t, c.Write([]byte("<0123456789/>")), "exceeds server limit")
	require.Empty(t, g.writes)
}

// TestXMPPConnWrite_Concurrent has writers race over a synchronous pipe
// (every Write blocks until read, so writers pile up in batches) and over a
// real loopback socket, with stanzas large enough to fill batches: every
// Write succeeds, the reader sees every stanza exactly once and whole, and
// each writer's stanzas arrive in the order it wrote them.
func TestXMPPConnWrite_Concurrent(t *testing.T) {
	t.Parallel()
	t.Run("pipe", func(t *testing.T) {
		t.Parallel()
		client, server := net.Pipe()
		checkConcurrentWrites(t, client, server)
	})
	t.Run("tcp", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			s, _ := ln.Accept()
			accepted <- s
		}()
		client, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		server := <-accepted
		require.NotNil(t, server)
		checkConcurrentWrites(t, client, server)
	})
}

func checkConcurrentWrites(t *testing.T, client, server net.Conn) {
	t.Helper()
	defer server.Close()
	defer client.Close()
	const writers, perWriter = 8, 100
	type seen struct{ w, i int }
	got := make(chan []seen, 1)
	readErr := make(chan error, 1)
	go func() {
		fail := func(err error) {
			readErr <- err
			server.Close() // unblock the writers
		}
		// The stanzas are siblings inside one wrapper, as in an XMPP stream.
		dec := xml.NewDecoder(io.MultiReader(strings.NewReader("<stream>"), server))
		var all []seen
		for len(all) < writers*perWriter {
			tok, err := dec.Token()
			if err != nil {
				fail(err)
				return
			}
			start, ok := tok.(xml.StartElement)
			if !ok || start.Name.Local != "m" {
				continue
			}
			var m struct {
				W   int    `xml:"w,attr"`
				I   int    `xml:"i,attr"`
				Pad string `xml:",chardata"`
			}
			if err := dec.DecodeElement(&m, &start); err != nil {
				fail(err)
				return
			}
			if len(m.Pad) != padLen(m.W, m.I) {
				fail(fmt.Errorf("stanza %d/%d cut: %d bytes of padding", m.W, m.I, len(m.Pad)))
				return
			}
			all = append(all, seen{m.W, m.I})
		}
		got <- all
	}()

	c := &xmppConn{raw: client}
	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				stanza := fmt.Sprintf(`<m w="%d" i="%d">%s</m>`, w, i, strings.Repeat("x", padLen(w, i)))
				errs <- c.Write([]byte(stanza))
			}
		}()
	}
	wg.Wait()
	close(errs)

	var all []seen
	select {
	case all = <-got:
	case err := <-readErr:
		t.Fatal(err)
	}
	for err := range errs {
		require.NoError(t, err)
	}
	next := make([]int, writers)
	for _, s := range all {
		require.Equal(t, next[s.w], s.i, "writer %d out of order", s.w)
		next[s.w]++
	}
	for w := range writers {
		require.Equal(t, perWriter, next[w])
	}
}

// padLen varies stanza sizes from tiny to a quarter of a batch, so batches
// fill up and writers have to wait for the next one.
func padLen(w, i int) int { return (w*7919 + i*104729) % (maxBatchBytes / 4) }
