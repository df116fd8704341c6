package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"
)

// scriptedConn is a fake XMPP connection: IQ requests the stream writes are
// answered by respond (nil: an empty result), and tests inject stanzas.
type scriptedConn struct {
	full    string
	respond func(iq xmlNode) *xmlNode
	in      chan xmlNode
	closed  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	written []xmlNode
	batches [][]string // per Write call: the local names of its stanzas' first children
}

func newScriptedConn(full string, respond func(xmlNode) *xmlNode) *scriptedConn {
	return &scriptedConn{full: full, respond: respond, in: make(chan xmlNode, 64), closed: make(chan struct{})}
}

func (c *scriptedConn) Read() (xmlNode, error) {
	select {
	case n := <-c.in:
		return n, nil
	case <-c.closed:
		return xmlNode{}, errors.New("closed")
	}
}

// Write handles every stanza of the write: the stream may pipeline
// several in one (afterConnect does).
func (c *scriptedConn) Write(raw []byte) error {
	dec := xml.NewDecoder(bytes.NewReader(raw))
	c.mu.Lock()
	c.batches = append(c.batches, nil)
	batch := len(c.batches) - 1
	c.mu.Unlock()
	for {
		var n xmlNode
		if err := dec.Decode(&n); err != nil {
			return nil
		}
		c.mu.Lock()
		c.written = append(c.written, n)
		first := ""
		if len(n.Children) > 0 {
			first = n.Children[0].XMLName.Local
		}
		c.batches[batch] = append(c.batches[batch], first)
		c.mu.Unlock()
		if n.XMLName.Local == "iq" && (n.attr("type") == "get" || n.attr("type") == "set") {
			reply := elem("", "iq", "type", "result", "id", n.attr("id"), "from", n.attr("to"))
			if c.respond != nil {
				if r := c.respond(n); r != nil {
					reply = *r
					reply.Attrs = append(reply.Attrs, xmlAttr("id", n.attr("id")))
				}
			}
			c.in <- reply
		}
	}
}

func (c *scriptedConn) JID() string { return c.full }

// EndStream ends the script: the server closes at once.
func (c *scriptedConn) EndStream(time.Duration) error {
	return c.Close()
}

func (c *scriptedConn) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// sent returns the written IQs whose pubsub child has that local name.
func (c *scriptedConn) sent(local string) []xmlNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []xmlNode
	for _, n := range c.written {
		if p := n.child(nsPubSub, "pubsub"); p != nil && p.child("", local) != nil {
			out = append(out, n)
		}
	}
	return out
}

func (c *scriptedConn) inject(t *testing.T, raw string) {
	t.Helper()
	var n xmlNode
	require.NoError(t, xml.Unmarshal([]byte(raw), &n))
	c.in <- n
}

// recordingPub keeps every published event.
type recordingPub struct {
	mu     sync.Mutex
	events []map[string]any
}

func (p *recordingPub) Open(string)            {}
func (p *recordingPub) CloseTopic(string)      {}
func (p *recordingPub) Subscribers(string) int { return 0 }
func (p *recordingPub) Publish(_ string, data []byte) uint64 {
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, m)
	return uint64(len(p.events))
}

func (p *recordingPub) ofType(typ string) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []map[string]any
	for _, e := range p.events {
		if e["type"] == typ {
			out = append(out, e)
		}
	}
	return out
}

func scriptedStream(t *testing.T, respond func(xmlNode) *xmlNode) (*Stream, *scriptedConn, *recordingPub) {
	t.Helper()
	pub := &recordingPub{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone}, pub, nil)
	require.NoError(t, err)
	fc := newScriptedConn("alice@example.com/web.1", respond)
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) { return fc, nil }
	st, err := m.Login(context.Background(), "alice", "pw", "")
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	return st, fc, pub
}

func parseXML(t *testing.T, raw string) *xmlNode {
	t.Helper()
	var n xmlNode
	require.NoError(t, xml.Unmarshal([]byte(raw), &n))
	return &n
}

// The authorize access model: the subscribe answer is "pending" and the
// owner's decision arrives later as a message, which becomes an event.
func TestPubSub_PendingThenApprovedOrRefused(t *testing.T) {
	service := jid.MustParse("pubsub.example.com")
	st, fc, pub := scriptedStream(t, func(iq xmlNode) *xmlNode {
		p := iq.child(nsPubSub, "pubsub")
		switch {
		case p != nil && p.child("", "subscriptions") != nil:
			return parseXML(t, `<iq type="result" from="pubsub.example.com"><pubsub xmlns="http://jabber.org/protocol/pubsub"><subscriptions/></pubsub></iq>`)
		case p != nil && p.child("", "subscribe") != nil:
			node := p.child("", "subscribe").attr("node")
			return parseXML(t, `<iq type="result" from="pubsub.example.com"><pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="`+node+`" jid="alice@example.com/web.1" subscription="pending"/></pubsub></iq>`)
		}
		return nil
	})
	sub, err := st.Subscribe(context.Background(), service, "/me/alice", SubscribeOptions{Depth: "all", Type: "items"})
	require.NoError(t, err)
	require.Equal(t, SubscriptionPending, sub.State)
	require.Equal(t, "alice@example.com/web.1", sub.JID)
	reqs := fc.sent("subscribe")
	require.Len(t, reqs, 1)
	subscribe := reqs[0].child(nsPubSub, "pubsub")
	require.Equal(t, "alice@example.com/web.1", subscribe.child("", "subscribe").attr("jid"), "the full JID subscribes")
	form := subscribe.child("", "options").child(nsDataForms, "x")
	fields := map[string]string{}
	for _, f := range form.Children {
		fields[f.attr("var")] = f.childText("", "value")
	}
	require.Equal(t, "all", fields["pubsub#subscription_depth"])
	require.Equal(t, "items", fields["pubsub#subscription_type"])

	fc.inject(t, `<message from="pubsub.example.com" to="alice@example.com/web.1"><event xmlns="http://jabber.org/protocol/pubsub#event"><subscription node="/me/alice" jid="alice@example.com/web.1" subscription="subscribed" subid="s-1"/></event></message>`)
	require.Eventually(t, func() bool { return len(pub.ofType(EventPubSubSubscription)) == 1 }, 5*time.Second, 10*time.Millisecond)
	ev := pub.ofType(EventPubSubSubscription)[0]
	require.Equal(t, map[string]any{"type": "pubsub_subscription", "service": "pubsub.example.com", "node": "/me/alice",
		"jid": "alice@example.com/web.1", "state": "subscribed", "subid": "s-1"}, ev)

	// Another resource's approval is not ours; a refusal is.
	fc.inject(t, `<message from="pubsub.example.com" to="alice@example.com"><event xmlns="http://jabber.org/protocol/pubsub#event"><subscription node="/me/alice" jid="alice@example.com/phone" subscription="subscribed"/></event></message>`)
	fc.inject(t, `<message from="pubsub.example.com" to="alice@example.com/web.1"><event xmlns="http://jabber.org/protocol/pubsub#event"><subscription node="/me/alice" jid="alice@example.com/web.1" subscription="none"/></event></message>`)
	require.Eventually(t, func() bool { return len(pub.ofType(EventPubSubSubscription)) == 2 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, "none", pub.ofType(EventPubSubSubscription)[1]["state"])
}

// Resubscribing reconfigures the full JID's existing subscription (renewal)
// instead of adding one; other resources' subscriptions are left alone.
func TestPubSub_ReusesOwnSubscription(t *testing.T) {
	service := jid.MustParse("pubsub.example.com")
	st, fc, _ := scriptedStream(t, func(iq xmlNode) *xmlNode {
		if p := iq.child(nsPubSub, "pubsub"); p != nil && p.child("", "subscriptions") != nil {
			return parseXML(t, `<iq type="result" from="pubsub.example.com"><pubsub xmlns="http://jabber.org/protocol/pubsub"><subscriptions>
				<subscription node="n" subscription="subscribed" subid="B" jid="alice@example.com/boston"/>
				<subscription node="n" subscription="subscribed" subid="A" jid="alice@example.com/web.1"/>
			</subscriptions></pubsub></iq>`)
		}
		return nil
	})
	sub, err := st.Subscribe(context.Background(), service, "n", SubscribeOptions{Expire: "1h"})
	require.NoError(t, err)
	require.True(t, sub.Reused)
	require.Equal(t, "A", sub.SubID)
	require.Empty(t, fc.sent("subscribe"), "no new subscription")
	opts := fc.sent("options")
	require.Len(t, opts, 1)
	o := opts[0].child(nsPubSub, "pubsub").child("", "options")
	require.Equal(t, "A", o.attr("subid"))
	require.Equal(t, "alice@example.com/web.1", o.attr("jid"))
	var expire string
	for _, f := range o.child(nsDataForms, "x").Children {
		if f.attr("var") == "pubsub#expire" {
			expire = f.childText("", "value")
		}
	}
	exp, err := time.Parse(time.RFC3339, expire)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(time.Hour), exp, time.Minute)

	subs, err := st.PubSubSubscriptions(context.Background(), service, "n")
	require.NoError(t, err)
	require.Len(t, subs, 1, "only this stream's full JID")

	// The renewal loop reconfigures it again once three quarters of the hour passed.
	st.pubsub.mu.Lock()
	for _, ts := range st.pubsub.subs {
		ts.renewAt = time.Now().Add(-time.Second)
	}
	st.pubsub.mu.Unlock()
	for _, ts := range st.pubsub.due(time.Now()) {
		st.renew(ts)
	}
	require.Len(t, fc.sent("options"), 2)
}

// Item notifications: payload as XML and, for XEP-0335 JSON, as JSON;
// one addressed to another resource of the user is dropped.
func TestPubSub_ItemNotifications(t *testing.T) {
	_, fc, pub := scriptedStream(t, nil)
	fc.inject(t, `<message from="pubsub.example.com" to="alice@example.com/phone"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item id="x"><json xmlns="urn:xmpp:json:0">{"a":1}</json></item></items></event></message>`)
	fc.inject(t, `<message from="pubsub.example.com" to="alice@example.com/web.1"><event xmlns="http://jabber.org/protocol/pubsub#event"><items node="n"><item id="i1"><json xmlns="urn:xmpp:json:0">{"a":1}</json></item><item id="i2"><mood xmlns="urn:example">happy</mood></item><retract id="old"/></items></event></message>`)
	require.Eventually(t, func() bool { return len(pub.ofType(EventPubSub)) == 1 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // the first (dropped) one was read before the second
	evs := pub.ofType(EventPubSub)
	require.Len(t, evs, 1)
	ev := evs[0]
	require.Equal(t, "pubsub.example.com", ev["service"])
	require.Equal(t, "n", ev["node"])
	items := ev["items"].([]any)
	require.Len(t, items, 2)
	i1 := items[0].(map[string]any)
	require.Equal(t, "i1", i1["id"])
	require.Equal(t, map[string]any{"a": float64(1)}, i1["payload_json"])
	require.Contains(t, i1["payload"], `urn:xmpp:json:0`)
	i2 := items[1].(map[string]any)
	require.Nil(t, i2["payload_json"])
	require.Contains(t, i2["payload"], `<mood xmlns="urn:example">happy</mood>`)
	require.Equal(t, []any{"old"}, ev["retract"])
}

func TestPubSub_Validation(t *testing.T) {
	require.ErrorIs(t, checkNode(""), ErrInvalidInput)
	require.ErrorIs(t, checkNode("a\x01b"), ErrInvalidInput)
	require.ErrorIs(t, checkNode(strings.Repeat("n", maxNodeBytes+1)), ErrInvalidInput)
	require.NoError(t, checkNode("/me/jgreen@example.onsip.com"))
	require.ErrorIs(t, checkService(jid.MustParse("a@b/c")), ErrInvalidAddress)
	for _, bad := range []string{"", "text", "<a/>", "<a xmlns='x'/><b xmlns='y'/>", "<?pi?><a xmlns='x'/>", "<x:a xmlns:x='u'><y:b/></x:a>"} {
		_, err := parsePayload(bad)
		require.ErrorIs(t, err, ErrInvalidInput, bad)
	}
	n, err := parsePayload(`<a xmlns="urn:x"><b>t</b></a>`)
	require.NoError(t, err)
	require.Equal(t, `<a xmlns="urn:x"><b xmlns="urn:x">t</b></a>`, n.xmlString())
	for _, bad := range []SubscribeOptions{{Depth: "2"}, {Type: "x"}, {Expire: "soon"}, {Expire: "10s"}} {
		_, err := resolveOptions(bad)
		require.ErrorIs(t, err, ErrInvalidInput)
	}
}

// Subscriptions made with UnsubscribeOnLogoff are removed when the stream closes.
func TestPubSub_UnsubscribeOnLogoff(t *testing.T) {
	st, fc, _ := scriptedStream(t, nil)
	_, err := st.Subscribe(context.Background(), jid.MustParse("pubsub.example.com"), "keep", SubscribeOptions{})
	require.NoError(t, err)
	_, err = st.Subscribe(context.Background(), jid.MustParse("pubsub.example.com"), "drop", SubscribeOptions{UnsubscribeOnLogoff: true})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st.Close(ctx, "test")
	u := fc.sent("unsubscribe")
	require.Len(t, u, 1)
	un := u[0].child(nsPubSub, "pubsub").child(nsPubSub, "unsubscribe")
	require.Equal(t, "drop", un.attr("node"))
	require.Equal(t, "alice@example.com/web.1", un.attr("jid"))
}
