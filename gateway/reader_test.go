package gateway

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"
)

const testStreamHeader = `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`

// memConn is an xmppConn reading an in-memory XML stream, past its header.
func memConn(t *testing.T, stanzas ...string) *xmppConn {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(testStreamHeader + strings.Join(stanzas, "\n") + "</stream:stream>"))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, "stream", tok.(xml.StartElement).Name.Local)
	return &xmppConn{tokens: dec, maxRead: DefaultMaxReadBytes}
}

func nested(levels int, inner string) string {
	return strings.Repeat("<x xmlns='urn:example:x'>", levels) + inner + strings.Repeat("</x>", levels)
}

// A stanza the gateway will not read is skipped as one stanza: Read
// returns it marked, with what it could read (the addresses), the
// connection is not broken, and the next stanza is read whole.
func TestRead_SkipsOneStanza(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, stanza string
	}{
		{"too deep", `<message from="m@example.com/r" id="p1"><body>hi</body>` + nested(70, "<y/>") + `</message>`},
		{"far too deep", `<message from="m@example.com/r" id="p1">` + strings.Repeat("<x>", 200000) + strings.Repeat("</x>", 200000) + `</message>`},
		{"too large", `<message from="m@example.com/r" id="p1"><body>` + strings.Repeat("x", 2*DefaultMaxReadBytes) + `</body></message>`},
		{"too large in many elements", `<message from="m@example.com/r" id="p1">` + strings.Repeat("<a xmlns='urn:a'>x</a>", DefaultMaxReadBytes/10) + `</message>`},
		{"not namespace-well-formed", `<message from="m@example.com/r" id="p1"><undeclared:thing/></message>`},
		{"undeclared attribute prefix", `<message from="m@example.com/r" id="p1"><body undeclared:a="1">hi</body></message>`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := memConn(t, tt.stanza, `<message from="b@example.com/r" id="next"><body>fine</body></message>`)
			n, err := c.Read()
			require.NoError(t, err, "a bad stanza is not a broken stream")
			require.Equal(t, "message", n.XMLName.Local)
			require.Equal(t, "m@example.com/r", n.attr("from"))
			require.Equal(t, "p1", n.attr("id"))
			require.NotEmpty(t, n.bad)
			require.Less(t, len(n.xmlString()), DefaultMaxReadBytes+4096, "no more than the limit is kept")
			require.True(t, n.wellNamed(), "what is not namespace-well-formed is not kept")

			n, err = c.Read()
			require.NoError(t, err)
			require.Equal(t, "next", n.attr("id"))
			require.Equal(t, "fine", n.childText("", "body"))
			_, err = c.Read()
			require.ErrorIs(t, err, errStreamEnded)
		})
	}
}

// loopConn is an xmppConn over a loopback socket whose far end the test
// holds, as an XMPP server would.
func loopConn(t *testing.T) (*xmppConn, net.Conn) {
	t.Helper()
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
	t.Cleanup(func() { _ = server.Close(); _ = client.Close() })
	_, err = server.Write([]byte(testStreamHeader))
	require.NoError(t, err)
	dec := xml.NewDecoder(client)
	_, err = dec.Token()
	require.NoError(t, err)
	return &xmppConn{raw: client, tokens: dec, maxRead: DefaultMaxReadBytes, full: "alice@example.com/web.1"}, server
}

// A request waiting for its answer fails at once when the connection
// drops, instead of waiting out requestTimeout (15 s).
func TestRequest_FailsAtOnceWhenTheConnectionDrops(t *testing.T) {
	pub := &recordingPub{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone,
		ReconnectMin: time.Hour, ReconnectMax: time.Hour}, pub, nil)
	require.NoError(t, err)
	c, server := loopConn(t)
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) { return c, nil }
	st, err := m.Login(context.Background(), "alice", "pw", "")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})

	// The server reads the request and never answers; then the socket drops.
	got := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := st.DiscoItems(context.Background(), jid.MustParse("conference.example.com"))
		got <- err
	}()
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "disco#items") {
		n, err := server.Read(buf)
		require.NoError(t, err)
		seen.Write(buf[:n])
	}
	require.NoError(t, server.Close())
	select {
	case err := <-got:
		require.Less(t, time.Since(start), 3*time.Second)
		require.ErrorIs(t, err, ErrConnectionLost)
	case <-time.After(5 * time.Second):
		t.Fatal("the request still waits after the connection dropped")
	}
}

// flappingDialer hands out connections that drop as soon as they are read.
type flappingConn struct{ full string }

func (c flappingConn) Read() (xmlNode, error)      { return xmlNode{}, io.ErrUnexpectedEOF }
func (flappingConn) Write([]byte) error            { return nil }
func (c flappingConn) JID() string                 { return c.full }
func (flappingConn) Close() error                  { return nil }
func (flappingConn) EndStream(time.Duration) error { return nil }

// A stream whose connection drops again right after every reconnect gives
// up with an offline stream event, rather than reconnecting forever.
func TestStream_GivesUpWhenTheConnectionCannotStayUp(t *testing.T) {
	pub := &recordingPub{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone,
		ReconnectMin: time.Millisecond, ReconnectMax: 5 * time.Millisecond}, pub, nil)
	require.NoError(t, err)
	var dials atomic.Int64
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) {
		dials.Add(1)
		return flappingConn{full: "alice@example.com/web.1"}, nil
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	st, err := m.Login(context.Background(), "alice", "pw", "")
	require.NoError(t, err)
	select {
	case <-st.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("still reconnecting after %d dials", dials.Load())
	}
	events := pub.ofType(EventStream)
	last := events[len(events)-1]
	require.Equal(t, StateOffline, last["state"])
	require.Contains(t, last["reason"], "keeps dropping")
	require.Equal(t, int64(1+DefaultMaxFlaps), dials.Load(), "the login and one reconnect per tolerated drop")
	require.Equal(t, StateOffline, st.State())
	_, err = m.Stream(st.ID())
	require.ErrorIs(t, err, ErrStreamNotFound, "the stream is gone")
}

// A server that is down (logins fail) is waited for however long it
// takes, as after an ordinary restart: failed logins never make the
// stream give up.
func TestStream_KeepsReconnectingWhileTheServerIsDown(t *testing.T) {
	pub := &recordingPub{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone,
		ReconnectMin: time.Millisecond, ReconnectMax: 2 * time.Millisecond}, pub, nil)
	require.NoError(t, err)
	first := newScriptedConn("alice@example.com/web.1", nil)
	again := newScriptedConn("alice@example.com/web.2", nil)
	var dials atomic.Int64
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) {
		switch n := dials.Add(1); {
		case n == 1:
			return first, nil
		case n <= 1+5*DefaultMaxFlaps:
			return nil, ErrServerUnreachable
		}
		return again, nil
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	st, err := m.Login(context.Background(), "alice", "pw", "")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(pub.ofType(EventStream)) > 0 }, 5*time.Second, time.Millisecond)
	first.Close() // the server goes away
	require.Eventually(t, func() bool { return st.JID() == "alice@example.com/web.2" && st.State() == StateOnline },
		10*time.Second, 5*time.Millisecond)
	for _, ev := range pub.ofType(EventStream) {
		require.NotEqual(t, StateOffline, ev["state"], "never gave up")
	}
}

// The backoff schedule: exponential from ReconnectMin to ReconnectMax,
// ±25 % jitter, reset only by a connection that stayed up for
// StableAfter, and giving up after MaxFlaps quick drops in a row.
func TestBackoff(t *testing.T) {
	t.Parallel()
	const minD, maxD = 100 * time.Millisecond, 3 * time.Second
	fixed := func(frac float64) func(int64) int64 {
		return func(n int64) int64 { return int64(float64(n-1) * frac) }
	}
	t.Run("exponential, capped, jitter bounds", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name  string
			frac  float64
			scale float64
		}{{"lowest draw", 0, 0.75}, {"middle draw", 0.5, 1}, {"highest draw", 1, 1.25}} {
			b := &backoff{min: minD, max: maxD, stableAfter: time.Minute, maxFlaps: 3, int64n: fixed(tt.frac)}
			want := []time.Duration{100, 200, 400, 800, 1600, 3000, 3000, 3000}
			for i, w := range want {
				require.InDelta(t, float64(w*time.Millisecond)*tt.scale, float64(b.next()), float64(time.Millisecond), "%s: attempt %d", tt.name, i)
				b.failed()
			}
		}
		b := &backoff{min: minD, max: maxD}
		for range 1000 { // the real random source stays within ±25 %
			d := b.next()
			require.GreaterOrEqual(t, d, minD*3/4)
			require.LessOrEqual(t, d, minD*5/4)
		}
	})
	t.Run("quick drops grow the delay and give up", func(t *testing.T) {
		t.Parallel()
		b := &backoff{min: minD, max: maxD, stableAfter: 30 * time.Second, maxFlaps: 3, int64n: fixed(0.5)}
		var waits []time.Duration
		for range 3 {
			require.True(t, b.dropped(time.Second), "tolerated")
			waits = append(waits, b.next())
		}
		require.Equal(t, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}, waits,
			"a connection that did not stay up does not reset the delay")
		require.False(t, b.dropped(time.Second), "the fourth quick drop in a row gives up")
	})
	t.Run("a stable connection resets", func(t *testing.T) {
		t.Parallel()
		b := &backoff{min: minD, max: maxD, stableAfter: 30 * time.Second, maxFlaps: 3, int64n: fixed(0.5)}
		for range 5 {
			b.failed()
		}
		require.True(t, b.dropped(time.Second))
		require.True(t, b.dropped(time.Second))
		require.Equal(t, maxD, b.next())
		require.True(t, b.dropped(30*time.Second), "up long enough")
		require.Equal(t, minD, b.next(), "back to the first step")
		for range 3 {
			require.True(t, b.dropped(29*time.Second), "the flap count started over too")
		}
	})
}

// readOne reads one stanza as the stream reader would.
func readOne(t *testing.T, raw string) xmlNode {
	t.Helper()
	n, err := memConn(t, raw).Read()
	require.NoError(t, err)
	return n
}

// A namespace without a colon (vcard-temp) is declared, hence well
// formed: only undeclared prefixes are refused.
func TestRead_KeepsDeclaredNamespacesWithoutColon(t *testing.T) {
	t.Parallel()
	n := readOne(t, `<iq type="result" id="v1"><vCard xmlns="vcard-temp"><FN>Alice</FN></vCard></iq>`)
	require.Empty(t, n.bad)
	require.Equal(t, "Alice", n.child("vcard-temp", "vCard").childText("", "FN"))
	n = readOne(t, `<message xmlns:p="urn:p"><p:x p:a="1"/></message>`)
	require.Empty(t, n.bad)
	require.Equal(t, "1", n.child("urn:p", "x").Attrs[0].Value)
}

// Past hardCapFactor times the limit, a stanza cannot be skipped (the
// decoder would hold every open element): that is a broken stream.
func TestRead_HardCapBreaksTheStream(t *testing.T) {
	t.Parallel()
	const limit = 1024
	levels := hardCapFactor*limit/3 + 1
	c := memConn(t, `<message>`+strings.Repeat("<x>", levels)+strings.Repeat("</x>", levels)+`</message>`)
	c.maxRead = limit
	_, err := c.Read()
	require.ErrorContains(t, err, "cannot skip it")
}

// A too-deep stanza forwarded to us (carbon, archive result) is skipped in
// the same way: the carbon's original sender is named, the archive result
// lands in its history page as skipped, and the next stanza is delivered.
func TestStream_SkipsForwardedPoison(t *testing.T) {
	poison := `<message xmlns="jabber:client" from="mallory@example.com/x" to="bob@example.com" id="p1" type="chat"><body>p</body>` + nested(62, "") + `</message>`
	const queryPoison = `<message from="alice@example.com" to="alice@example.com/web.1"><result xmlns="urn:xmpp:mam:2" queryid="%s" id="arch-1"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2026-01-01T00:00:00Z"/>%s</forwarded></result></message>`
	const queryGood = `<message from="alice@example.com" to="alice@example.com/web.1"><result xmlns="urn:xmpp:mam:2" queryid="%s" id="arch-2"><forwarded xmlns="urn:xmpp:forward:0"><delay xmlns="urn:xmpp:delay" stamp="2026-01-01T00:00:01Z"/><message xmlns="jabber:client" from="bob@example.com/y" to="alice@example.com" type="chat"><body>fine</body></message></forwarded></result></message>`
	var fc *scriptedConn
	st, fc, pub := scriptedStream(t, func(iq xmlNode) *xmlNode {
		q := iq.child(nsMAM, "query")
		if q == nil {
			return nil
		}
		id := q.attr("queryid")
		fc.in <- readOne(t, fmtQuery(queryPoison, id, poison))
		fc.in <- readOne(t, fmtQuery(queryGood, id, ""))
		return parseXML(t, `<iq type="result"><fin xmlns="urn:xmpp:mam:2" complete="true"><set xmlns="http://jabber.org/protocol/rsm"><first>arch-1</first><last>arch-2</last></set></fin></iq>`)
	})

	carbon := `<message from="alice@example.com" to="alice@example.com/web.1"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0">` + poison + `</forwarded></received></message>`
	fc.in <- readOne(t, carbon)
	fc.in <- readOne(t, `<message from="bob@example.com/y" to="alice@example.com/web.1" type="chat"><body>next</body></message>`)
	require.Eventually(t, func() bool { return len(pub.ofType("chat")) == 1 }, 5*time.Second, 5*time.Millisecond)
	errs := pub.ofType(EventError)
	require.Len(t, errs, 1)
	require.Equal(t, map[string]any{"type": "error", "id": "p1", "from": "mallory@example.com/x", "to": "bob@example.com",
		"skipped": "message", "error": map[string]any{"type": "cancel", "condition": "not-acceptable", "text": reasonTooDeep}}, errs[0])

	start := time.Now()
	page, err := st.History(context.Background(), HistoryQuery{})
	require.NoError(t, err)
	require.Less(t, time.Since(start), 2*time.Second)
	require.Len(t, page.Messages, 1)
	require.Equal(t, "fine", page.Messages[0].(MessageEvent).Body)
	require.Equal(t, []SkippedStanza{{ID: "arch-1", From: "mallory@example.com/x", Reason: reasonTooDeep, msgID: "p1", to: "bob@example.com"}}, page.Skipped)
	require.Equal(t, StateOnline, st.State())
	require.Empty(t, pub.ofType(EventStream)[1:], "no reconnect")
}

func fmtQuery(tmpl, queryID, inner string) string {
	return strings.Replace(strings.Replace(tmpl, "%s", queryID, 1), "%s", inner, 1)
}

// A pubsub answer or notification with one over-deep item reports that
// item as skipped and delivers the others; an IQ request we cannot read
// is still answered (RFC 6120 §8.2.3), with not-acceptable.
func TestStream_SkipsOnePubSubItem(t *testing.T) {
	items := func(ns string) string {
		return `<items node="n"><item xmlns="` + ns + `" id="good-1"><entry xmlns="urn:e">one</entry></item>` +
			`<item xmlns="` + ns + `" id="bad"><entry xmlns="urn:e">` + nested(70, "") + `</entry></item>` +
			`<item xmlns="` + ns + `" id="good-2"><entry xmlns="urn:e">two</entry></item></items>`
	}
	var fc *scriptedConn
	st, fc, pub := scriptedStream(t, func(iq xmlNode) *xmlNode {
		if iq.child(nsPubSub, "pubsub") == nil {
			return nil
		}
		// The answer goes through the stream reader, as from the server.
		fc.in <- readOne(t, `<iq type="result" from="pubsub.example.com" id="`+iq.attr("id")+`"><pubsub xmlns="`+nsPubSub+`">`+items(nsPubSub)+`</pubsub></iq>`)
		return parseXML(t, `<iq type="result" id="unused-duplicate"/>`)
	})
	got, err := st.Items(context.Background(), jid.MustParse("pubsub.example.com"), "n", 0)
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, "good-1", got[0].ID)
	require.Contains(t, got[0].Payload, "one")
	require.Equal(t, PubSubItem{ID: "bad", Skipped: reasonTooDeep}, got[1])
	require.Contains(t, got[2].Payload, "two")

	fc.in <- readOne(t, `<message from="pubsub.example.com" to="alice@example.com/web.1"><event xmlns="`+nsPubSubEvent+`">`+items(nsPubSubEvent)+`</event></message>`)
	fc.in <- readOne(t, `<iq type="get" from="mallory@example.com/x" id="q1"><query xmlns="urn:q">`+nested(70, "")+`</query></iq>`)
	require.Eventually(t, func() bool { return len(pub.ofType(EventPubSub)) == 1 && len(pub.ofType(EventError)) == 1 },
		5*time.Second, 5*time.Millisecond)
	ev := pub.ofType(EventPubSub)[0]["items"].([]any)
	require.Len(t, ev, 3)
	require.Equal(t, map[string]any{"id": "bad", "skipped": reasonTooDeep}, ev[1])
	require.Equal(t, "iq", pub.ofType(EventError)[0]["skipped"])
	require.Eventually(t, func() bool {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		for _, n := range fc.written {
			if n.attr("id") == "q1" && n.attr("type") == "error" {
				return n.child("", "error").child(nsStanzaError, "not-acceptable") != nil
			}
		}
		return false
	}, 5*time.Second, 5*time.Millisecond, "the skipped request is answered")
}
