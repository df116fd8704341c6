package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"mellium.im/xmpp/jid"
)

// recordingRegistry is a StreamRegistry that records calls and can refuse.
type recordingRegistry struct {
	mu           sync.Mutex
	refuse       error
	registered   []RegisteredStream
	unregistered []string
	saved        []TakeoverState
	saveErr      error // what SaveState answers
	released     []string
}

func (r *recordingRegistry) SaveState(_ context.Context, _ string, st TakeoverState) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.saved = append(r.saved, st)
	return r.saveErr
}

func (r *recordingRegistry) Release(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released = append(r.released, id)
}

func (r *recordingRegistry) savedStates() []TakeoverState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TakeoverState(nil), r.saved...)
}

func (r *recordingRegistry) Register(_ context.Context, s RegisteredStream) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		return r.refuse
	}
	r.registered = append(r.registered, s)
	return nil
}

func (r *recordingRegistry) Unregister(_ context.Context, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unregistered = append(r.unregistered, id)
}

func (r *recordingRegistry) calls() ([]RegisteredStream, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]RegisteredStream(nil), r.registered...), append([]string(nil), r.unregistered...)
}

// The registry admits a stream before its XMPP login, forgets one whose
// login failed, and forgets every stream that ends.
func TestManager_RegistersStreamsAroundTheirLife(t *testing.T) {
	reg := &recordingRegistry{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone, Registry: reg}, &recordingPub{}, nil)
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	}()
	dialed := 0
	loginErr := errors.New("not-authorized")
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) {
		dialed++
		if dialed == 1 {
			return nil, loginErr
		}
		return newScriptedConn("alice@example.com/web.1", nil), nil
	}

	_, err = m.Login(context.Background(), "alice", "wrong", "")
	require.ErrorIs(t, err, loginErr)
	reg1, unreg := reg.calls()
	require.Len(t, reg1, 1)
	require.Equal(t, []string{reg1[0].ID}, unreg, "a failed login gives its slot back")

	st, err := m.Login(context.Background(), "alice", "pw", "web")
	require.NoError(t, err)
	regs, _ := reg.calls()
	require.Len(t, regs, 2)
	require.Equal(t, st.ID(), regs[1].ID)
	require.Equal(t, "alice@example.com", regs[1].JID)
	st.Close(context.Background(), "logoff")
	<-st.Done()
	require.Eventually(t, func() bool { _, u := reg.calls(); return len(u) == 2 && u[1] == st.ID() }, 5*time.Second, 10*time.Millisecond)

	reg.refuse = ErrTooManyStreams
	_, err = m.Login(context.Background(), "alice", "pw", "")
	require.ErrorIs(t, err, ErrTooManyStreams)
	require.Equal(t, 2, dialed, "a refused stream never reaches the XMPP server")
}

// A presence change reaches the registry as takeover state, without the
// request waiting for it; when the registry says another node owns the
// stream, the stream ends here without a goodbye (no unavailable presence,
// no offline event) and leaves the new owner's record alone.
func TestManager_SavesTakeoverStateAndYieldsWhenNotOwner(t *testing.T) {
	reg := &recordingRegistry{}
	pub := &recordingPub{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone, Registry: reg}, pub, nil)
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	}()
	c := newScriptedConn("alice@example.com/web.1", nil)
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) { return c, nil }
	st, err := m.Login(context.Background(), "alice", "pw", "web")
	require.NoError(t, err)

	require.NoError(t, st.SetPresence(context.Background(), OutgoingPresence{Show: "away", Status: "lunch"}))
	require.Eventually(t, func() bool {
		saved := reg.savedStates()
		return len(saved) > 0 && saved[len(saved)-1].Presence.Show == "away" && saved[len(saved)-1].Presence.Status == "lunch"
	}, 5*time.Second, 10*time.Millisecond)

	reg.mu.Lock()
	reg.saveErr = ErrNotOwner
	reg.mu.Unlock()
	unavailableBefore := c.unavailablePresences()
	require.NoError(t, st.SetPresence(context.Background(), OutgoingPresence{Show: "dnd"}))
	select {
	case <-st.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end after the registry said another node owns it")
	}
	_, err = m.Stream(st.ID())
	require.ErrorIs(t, err, ErrStreamNotFound)
	_, unreg := reg.calls()
	require.NotContains(t, unreg, st.ID(), "the record is the new owner's")
	reg.mu.Lock()
	require.Contains(t, reg.released, st.ID(), "forgotten here")
	reg.mu.Unlock()
	require.Equal(t, unavailableBefore, c.unavailablePresences(), "no goodbye on the new owner's behalf")
	for _, e := range pub.ofType("stream") {
		require.NotEqual(t, StateOffline, e["state"], "no offline event: the stream lives on elsewhere")
	}
}

// unavailablePresences counts the unavailable presences written on c.
func (c *scriptedConn) unavailablePresences() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, w := range c.written {
		if w.XMLName.Local == "presence" && w.attr("type") == "unavailable" {
			n++
		}
	}
	return n
}

// A stream whose connection dropped asks the registry before it logs in
// again: when another node owns it now, it ends here instead of pushing the
// new owner's session off the server; while the registry cannot answer,
// it reconnects as in embedded mode.
func TestStream_ReconnectsOnlyWhileItOwnsTheStream(t *testing.T) {
	for _, tc := range []struct {
		name      string
		saveErr   error
		reconnect bool
	}{
		{"another node owns it", ErrNotOwner, false},
		{"registry unreachable", errors.New("redis: connection refused"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := &recordingRegistry{}
			m := fastReconnectManager(t, reg)
			var mu sync.Mutex
			var conns []*scriptedConn
			m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) {
				mu.Lock()
				defer mu.Unlock()
				c := newScriptedConn("alice@example.com/web.1", nil)
				conns = append(conns, c)
				return c, nil
			}
			dials := func() int { mu.Lock(); defer mu.Unlock(); return len(conns) }
			st, err := m.Login(context.Background(), "alice", "pw", "web")
			require.NoError(t, err)
			reg.mu.Lock()
			reg.saveErr = tc.saveErr
			reg.mu.Unlock()
			mu.Lock()
			first := conns[0]
			mu.Unlock()
			_ = first.Close() // the connection drops

			if tc.reconnect {
				require.Eventually(t, func() bool { return dials() == 2 }, 5*time.Second, 10*time.Millisecond, "reconnects through a registry outage")
				require.Eventually(t, func() bool { return st.State() == StateOnline }, 5*time.Second, 10*time.Millisecond)
				return
			}
			select {
			case <-st.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the stream did not end")
			}
			require.Equal(t, 1, dials(), "no second login on the new owner's resource")
			_, unreg := reg.calls()
			require.NotContains(t, unreg, st.ID())
		})
	}
}

// The rooms a stream sits in stay in its takeover state while it
// reconnects (their re-join is pending then): a node that dies during the
// outage must not leave the new owner a stream without rooms.
func TestTakeoverState_KeepsRoomsThroughAReconnect(t *testing.T) {
	reg := &recordingRegistry{}
	m := fastReconnectManager(t, reg)
	c := newScriptedConn("alice@example.com/web.1", nil)
	var dials atomic.Int32
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) {
		if dials.Add(1) == 1 {
			return c, nil
		}
		return nil, errors.New("connection refused") // the server stays away
	}
	st, err := m.Login(context.Background(), "alice", "pw", "web")
	require.NoError(t, err)
	joined := make(chan error, 1)
	go func() {
		joined <- st.JoinRoom(context.Background(), jid.MustParse("lobby@muc.example.com"), JoinOptions{Nick: "ali", MaxStanzas: -1})
	}()
	require.Eventually(t, func() bool { return len(c.sentPresencesTo("lobby@muc.example.com/ali")) == 1 }, 5*time.Second, 10*time.Millisecond)
	c.inject(t, `<presence from='lobby@muc.example.com/ali'><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='none' role='participant'/><status code='110'/></x></presence>`)
	require.NoError(t, <-joined)

	_ = c.Close() // the connection drops; reconnects fail
	require.Eventually(t, func() bool { return dials.Load() >= 3 }, 5*time.Second, 10*time.Millisecond)
	saved := reg.savedStates()
	require.NotEmpty(t, saved)
	for i, s := range saved {
		require.Equal(t, []RoomSeat{{Room: "lobby@muc.example.com", Nick: "ali"}}, s.Rooms, "state %d of %d", i+1, len(saved))
	}
}

// sentPresencesTo returns the presences written to addr.
func (c *scriptedConn) sentPresencesTo(addr string) []xmlNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []xmlNode
	for _, w := range c.written {
		if w.XMLName.Local == "presence" && w.attr("to") == addr {
			out = append(out, w)
		}
	}
	return out
}

// After a takeover (as after a reconnect) the archive's order wins: a
// message the server re-delivers live at once (offline storage) waits
// while the gap-fill publishes an older one only the archive has, and
// nothing the stream's clients already had comes again.
func TestAdopt_GapFillKeepsTheArchivesOrder(t *testing.T) {
	pub := &recordingPub{}
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone, TokenSecret: []byte(strings.Repeat("k", 32))}, pub, nil)
	require.NoError(t, err)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	}()
	archived := func(queryID, id, body string) string {
		return `<message><result xmlns='urn:xmpp:mam:2' queryid='` + queryID + `' id='` + id + `'><forwarded xmlns='urn:xmpp:forward:0'>` +
			`<delay xmlns='urn:xmpp:delay' stamp='2026-12-07T10:00:00Z'/><message xmlns='jabber:client' from='bob@example.com/x' to='alice@example.com' type='chat'><body>` + body +
			`</body></message></forwarded></result></message>`
	}
	var c *scriptedConn
	c = newScriptedConn("alice@example.com/web.1", func(n xmlNode) *xmlNode {
		q := n.child(nsMAM, "query")
		if q == nil {
			return nil
		}
		c.inject(t, archived(q.attr("queryid"), "s1", "one")) // only the archive has it
		c.inject(t, archived(q.attr("queryid"), "s2", "two"))
		fin := elem("", "iq", "type", "result", "from", n.attr("to"))
		f := elem(nsMAM, "fin", "complete", "true")
		set := elem(nsRSM, "set")
		first, last := elem("", "first"), elem("", "last")
		first.Text, last.Text = "s1", "s2"
		set.Children = []xmlNode{first, last}
		f.Children = []xmlNode{set}
		fin.Children = []xmlNode{f}
		return &fin
	})
	m.dialer = func(context.Context, jid.JID, credentials, string) (conn, error) {
		// The server flushes offline storage right after the login: "two"
		// arrives live before the archive is asked.
		c.inject(t, `<message from='bob@example.com/x' to='alice@example.com' type='chat'><body>two</body>`+
			`<stanza-id xmlns='urn:xmpp:sid:0' id='s2' by='alice@example.com'/></message>`)
		return c, nil
	}
	seen := `{"type":"chat","body":"zero","stanza_id":"s0"}`
	_, err = m.Adopt(context.Background(), AdoptRequest{ID: "sid-adopted-0123456789", User: jid.MustParse("alice@example.com"),
		Resource: "web.1", Log: [][]byte{[]byte(seen)}, Dropped: time.Now().Add(-time.Minute)})
	require.NoError(t, err)
	var bodies []string
	require.Eventually(t, func() bool {
		bodies = nil
		for _, e := range pub.ofType("chat") {
			bodies = append(bodies, e["body"].(string))
		}
		return len(bodies) >= 2
	}, 5*time.Second, 10*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // a duplicate would come now
	bodies = nil
	for _, e := range pub.ofType("chat") {
		bodies = append(bodies, e["body"].(string))
	}
	require.Equal(t, []string{"one", "two"}, bodies, "archive order, once each, nothing from the log again")
	var after string
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.written {
		if mq := w.child(nsMAM, "query"); mq != nil {
			if set := mq.child(nsRSM, "set"); set != nil {
				after = set.childText(nsRSM, "after")
			}
		}
	}
	require.Equal(t, "s0", after, "the gap-fill starts after the last archived message the log holds")
	resumed := false
	for _, e := range pub.ofType("stream") {
		resumed = resumed || e["state"] == StateResumed
	}
	require.True(t, resumed)
}

// fastReconnectManager is a Manager on reg that reconnects within tens of
// milliseconds, closed when the test ends.
func fastReconnectManager(t *testing.T, reg StreamRegistry) *Manager {
	t.Helper()
	m, err := NewManager(Config{Addr: "127.0.0.1:1", Domain: "example.com", TLS: TLSNone, Registry: reg,
		ReconnectMin: 10 * time.Millisecond, ReconnectMax: 20 * time.Millisecond}, &recordingPub{}, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		require.NoError(t, m.Close(ctx))
	})
	return m
}
