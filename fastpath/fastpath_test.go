package fastpath

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeHooks records events as "stream type detail" lines and answers
// availability from a map (default Available).
type fakeHooks struct {
	mu     sync.Mutex
	events []string
	raw    []any
	avail  map[string]Availability
	rooms  map[string]bool // "stream room" → in the room
}

func (h *fakeHooks) InRoom(stream, room string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[stream+" "+room]
}

func (h *fakeHooks) setInRoom(stream, room string, in bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rooms == nil {
		h.rooms = map[string]bool{}
	}
	h.rooms[stream+" "+room] = in
}

func (h *fakeHooks) Publish(stream string, ev any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.raw = append(h.raw, ev)
	var line string
	switch e := ev.(type) {
	case UpdateQueue:
		line = fmt.Sprintf("update-queue %s pos=%d", e.Ticket, e.Position)
	case DepartQueue:
		line = fmt.Sprintf("depart-queue %s %s", e.Ticket, e.Reason)
	case NotifyQueue:
		line = fmt.Sprintf("notify-queue %s users=%d %s", e.Workgroup, e.UserCount, e.Status)
	case OfferReceived:
		line = fmt.Sprintf("offerReceived %s from=%s", e.ID, e.From)
	case OfferRevoked:
		line = fmt.Sprintf("offerRevoked %s %s", e.ID, e.Reason)
	case InvitationReceived:
		line = fmt.Sprintf("invitationReceived %s %s", e.Room, e.Ticket)
	case Offer:
		line = fmt.Sprintf("offer %s %s", e.MucRoom, e.Ticket)
	default:
		line = fmt.Sprintf("%T", ev)
	}
	h.events = append(h.events, stream+" "+line)
}

func (h *fakeHooks) Availability(stream string) Availability {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.avail[stream]; ok {
		return a
	}
	return Available
}

func (h *fakeHooks) set(stream string, a Availability) {
	h.mu.Lock()
	h.avail[stream] = a
	h.mu.Unlock()
}

// take returns the events since the last take, optionally only the ones
// whose type is listed.
func (h *fakeHooks) take(types ...string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []string{}
	for _, e := range h.events {
		if len(types) == 0 {
			out = append(out, e)
			continue
		}
		for _, t := range types {
			var stream, typ string
			_, _ = fmt.Sscanf(e, "%s %s", &stream, &typ)
			if typ == t {
				out = append(out, e)
			}
		}
	}
	h.events = nil
	return out
}

// world is a Service with a fake clock, sequential ids and fake hooks.
type world struct {
	t   *testing.T
	s   *Service
	h   *fakeHooks
	now time.Time
	mu  sync.Mutex
	seq int
}

func newWorld(t *testing.T, wgs ...Workgroup) *world {
	w := &world{t: t, h: &fakeHooks{avail: map[string]Availability{}}, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s, err := New(Options{Clock: w.clock, NewID: w.id, RetryAfter: time.Minute}, wgs)
	require.NoError(t, err)
	s.Bind(w.h)
	w.s = s
	return w
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) id() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seq++
	return "id" + strconv.Itoa(w.seq)
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
	w.s.Tick()
}

func (w *world) ask(user string) string {
	w.t.Helper()
	ti, err := w.s.Ask(AskRequest{Workgroup: "wg", User: user, Stream: "s-" + user, Question: "q from " + user, Email: user + "@mail"})
	require.NoError(w.t, err)
	return ti.Ticket
}

func (w *world) online(agents ...string) {
	w.t.Helper()
	for _, a := range agents {
		require.NoError(w.t, w.s.AgentOnline(a, "s-"+a, "wg"))
	}
}

func wg(maxChats int, members ...string) Workgroup {
	return Workgroup{Name: "wg", Members: members, MaxChats: maxChats, OfferTimeout: 10, Open: true}
}

// TestService_Table drives the state machine through scenarios and checks
// the offers, revocations and queue events each produces.
func TestService_Table(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		wg    Workgroup
		run   func(w *world)
		types []string // event types to compare (all if empty)
		want  []string
	}{
		{
			name: "round robin over two agents, third waits at max chats 1",
			wg:   wg(1, "a", "b"),
			run: func(w *world) {
				w.online("a", "b")
				w.ask("u1")
				w.ask("u2")
				w.ask("u3")
			},
			types: []string{"offerReceived"},
			want:  []string{"s-a offerReceived id2 from=u1", "s-b offerReceived id4 from=u2"},
		},
		{
			name: "round robin continues after the last offered agent",
			wg:   wg(5, "a", "b"),
			run: func(w *world) {
				w.online("a", "b")
				w.ask("u1")
				w.ask("u2")
				w.ask("u3")
			},
			types: []string{"offerReceived"},
			want:  []string{"s-a offerReceived id2 from=u1", "s-b offerReceived id4 from=u2", "s-a offerReceived id6 from=u3"},
		},
		{
			name: "reject passes on to the next agent",
			wg:   wg(1, "a", "b"),
			run: func(w *world) {
				w.online("a", "b")
				w.ask("u1")
				require.NoError(w.t, w.s.Reject("a", "id2", "wg"))
			},
			types: []string{"offerReceived", "offerRevoked"},
			want:  []string{"s-a offerReceived id2 from=u1", "s-b offerReceived id3 from=u1"},
		},
		{
			name: "timeout revokes and passes on; the lone agent is retried after RetryAfter",
			wg:   wg(1, "a", "b"),
			run: func(w *world) {
				w.online("a")
				w.ask("u1")
				w.advance(9 * time.Second)
				w.advance(time.Second)
				w.online("b")
				w.advance(10 * time.Second)
				w.advance(time.Minute)
			},
			types: []string{"offerReceived", "offerRevoked"},
			want: []string{"s-a offerReceived id2 from=u1", "s-a offerRevoked id2 timeout",
				"s-b offerReceived id3 from=u1", "s-b offerRevoked id3 timeout", "s-a offerReceived id4 from=u1"},
		},
		{
			name: "no agent left: the user stays queued",
			wg:   wg(1, "a"),
			run: func(w *world) {
				w.online("a")
				tk := w.ask("u1")
				require.NoError(w.t, w.s.Reject("a", "id2", ""))
				ti, err := w.s.Ticket(tk, "u1", false)
				require.NoError(w.t, err)
				require.Equal(w.t, StateQueued, ti.State)
				require.Equal(w.t, 1, ti.Position)
			},
			types: []string{"offerReceived", "depart-queue"},
			want:  []string{"s-a offerReceived id2 from=u1"},
		},
		{
			name: "agent goes dnd mid-offer: revoked and passed on",
			wg:   wg(1, "a", "b"),
			run: func(w *world) {
				w.online("a", "b")
				w.ask("u1")
				w.h.set("s-a", Away)
				w.advance(time.Second)
			},
			types: []string{"offerReceived", "offerRevoked"},
			want:  []string{"s-a offerReceived id2 from=u1", "s-a offerRevoked id2 agent unavailable", "s-b offerReceived id3 from=u1"},
		},
		{
			name: "agent disconnects: offers re-routed, queue kept",
			wg:   wg(1, "a", "b"),
			run: func(w *world) {
				w.online("a", "b")
				w.ask("u1")
				w.h.set("s-a", Gone)
				w.advance(time.Second)
				require.Empty(w.t, w.s.AgentWorkgroups("a"))
			},
			types: []string{"offerReceived", "offerRevoked"},
			want:  []string{"s-a offerReceived id2 from=u1", "s-a offerRevoked id2 agent disconnected", "s-b offerReceived id3 from=u1"},
		},
		{
			name: "user cancels while queued: offer revoked, positions move up",
			wg:   wg(1, "a"),
			run: func(w *world) {
				w.online("a")
				t1 := w.ask("u1")
				w.ask("u2")
				_, err := w.s.Leave(t1, "u1", false)
				require.NoError(w.t, err)
			},
			types: []string{"offerReceived", "offerRevoked", "update-queue"},
			want: []string{"s-a offerReceived id2 from=u1", "s-u1 update-queue id1 pos=1", "s-u2 update-queue id3 pos=2",
				"s-a offerRevoked id2 user left the queue", "s-a offerReceived id4 from=u2", "s-u2 update-queue id3 pos=1"},
		},
		{
			name: "accept: room ready tells both sides; capacity then frees on leave",
			wg:   wg(1, "a"),
			run: func(w *world) {
				w.online("a")
				t1 := w.ask("u1")
				w.ask("u2")
				ti, err := w.s.Accept("a", "id2", "wg")
				require.NoError(w.t, err)
				require.Equal(w.t, "wg-id4", ti.RoomName)
				require.NoError(w.t, w.s.RoomReady(t1, "wg-id4@conference", "a@x/r"))
				_, err = w.s.Leave(t1, "u1", false)
				require.NoError(w.t, err)
			},
			types: []string{"offerReceived", "invitationReceived", "offer", "update-queue"},
			want: []string{"s-a offerReceived id2 from=u1", "s-u1 update-queue id1 pos=1", "s-u2 update-queue id3 pos=2",
				"s-u2 update-queue id3 pos=1", "s-a invitationReceived wg-id4@conference id1", "s-u1 offer wg-id4@conference id1",
				"s-a offerReceived id5 from=u2"},
		},
		{
			name: "accept failure re-queues at the head and routes to another agent",
			wg:   wg(1, "a", "b"),
			run: func(w *world) {
				w.online("a", "b")
				t1 := w.ask("u1")
				_, err := w.s.Accept("a", "id2", "")
				require.NoError(w.t, err)
				w.s.AcceptFailed(t1, "room failed")
			},
			types: []string{"offerReceived"},
			want:  []string{"s-a offerReceived id2 from=u1", "s-b offerReceived id4 from=u1"},
		},
		{
			name: "closing the workgroup departs queued users",
			wg:   wg(1, "a"),
			run: func(w *world) {
				w.ask("u1")
				cfg := wg(1, "a")
				cfg.Open = false
				_, err := w.s.UpdateWorkgroup("wg", cfg)
				require.NoError(w.t, err)
				_, err = w.s.Ask(AskRequest{Workgroup: "wg", User: "u2", Stream: "s-u2", Question: "q"})
				require.ErrorIs(w.t, err, ErrWorkgroupClosed)
			},
			types: []string{"depart-queue"},
			want:  []string{"s-u1 depart-queue id1 workgroup closed"},
		},
		{
			name: "agents get notify-queue on change only",
			wg:   wg(1, "a"),
			run: func(w *world) {
				w.h.set("s-a", Away)
				w.online("a")
				w.ask("u1")
				w.advance(time.Second) // nothing changed
				w.h.set("s-a", Available)
				w.advance(time.Second)
			},
			types: []string{"notify-queue", "offerReceived"},
			want: []string{"s-a notify-queue wg users=0 active", "s-a notify-queue wg users=1 active",
				"s-a offerReceived id2 from=u1"}, // still active: the offer uses the agent's one chat
		},
		{
			name: "queued user disconnects: leaves the queue",
			wg:   wg(1, "a"),
			run: func(w *world) {
				tk := w.ask("u1")
				w.h.set("s-u1", Gone)
				w.advance(time.Second)
				ti, err := w.s.Ticket(tk, "", true)
				require.NoError(w.t, err)
				require.Equal(w.t, StateEnded, ti.State)
			},
			types: []string{"depart-queue"},
			want:  []string{},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, tc.wg)
			tc.run(w)
			require.Equal(t, tc.want, w.h.take(tc.types...))
		})
	}
}

func TestService_Errors(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"), Workgroup{Name: "empty", Open: true})
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"unknown workgroup", func() error {
			_, err := w.s.Ask(AskRequest{Workgroup: "nope", User: "u", Stream: "s", Question: "q"})
			return err
		}(), ErrWorkgroupNotFound},
		{"memberless workgroup", func() error {
			_, err := w.s.Ask(AskRequest{Workgroup: "empty", User: "u", Stream: "s", Question: "q"})
			return err
		}(), ErrNoMembers},
		{"no question", func() error { _, err := w.s.Ask(AskRequest{Workgroup: "wg", User: "u", Stream: "s"}); return err }(), ErrInvalid},
		{"non-member online", w.s.AgentOnline("z", "s-z", "wg"), ErrNotMember},
		{"offline when not online", w.s.AgentOffline("a", "wg"), ErrNotOnline},
		{"duplicate workgroup", func() error { _, err := w.s.CreateWorkgroup(wg(1)); return err }(), ErrWorkgroupExists},
		{"bad name", func() error { _, err := w.s.CreateWorkgroup(Workgroup{Name: "Bad Name"}); return err }(), ErrInvalid},
		{"reserved name", func() error { _, err := w.s.CreateWorkgroup(Workgroup{Name: "queues"}); return err }(), ErrInvalid},
		{"duplicate members", func() error {
			_, err := w.s.CreateWorkgroup(Workgroup{Name: "d", Members: []string{"a", "a"}})
			return err
		}(), ErrInvalid},
		{"unknown offer", w.s.Reject("a", "nope", ""), ErrOfferNotFound},
		{"delete unknown", w.s.DeleteWorkgroup("nope"), ErrWorkgroupNotFound},
	}
	for _, tc := range cases {
		require.ErrorIs(t, tc.err, tc.want, tc.name)
	}

	// Tickets and offers belong to their owner: anyone else sees "not found".
	w.online("a")
	tk := w.ask("u1")
	_, err := w.s.Ticket(tk, "u2", false)
	require.ErrorIs(t, err, ErrTicketNotFound)
	_, err = w.s.Leave(tk, "u2", false)
	require.ErrorIs(t, err, ErrTicketNotFound)
	_, err = w.s.Ticket(tk, "", true)
	require.NoError(t, err)
	offers := w.h.take("offerReceived")
	require.Len(t, offers, 1)
	_, err = w.s.Accept("b", "id2", "")
	require.ErrorIs(t, err, ErrOfferNotFound, "another agent cannot take the offer")
	_, err = w.s.Accept("a", "id2", "other")
	require.ErrorIs(t, err, ErrOfferNotFound, "wrong workgroup")
	_, err = w.s.Accept("a", "id2", "wg")
	require.NoError(t, err)
	_, err = w.s.Accept("a", "id2", "wg")
	require.ErrorIs(t, err, ErrOfferNotFound, "an offer is taken once")
}

func TestService_QueuesAndEstimates(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"))
	w.online("a")
	w.ask("u1")
	w.ask("u2")
	w.ask("u3")
	q := w.s.Queues("a")
	require.Len(t, q, 1)
	require.Equal(t, "active", q[0].Status, "open, but the only agent is busy with an offer")
	require.Len(t, q[0].Users, 3)
	require.Equal(t, []int{1, 2, 3}, []int{q[0].Users[0].QueuePosition, q[0].Users[1].QueuePosition, q[0].Users[2].QueuePosition})
	require.Equal(t, 1, q[0].CurrentChats, "the pending offer counts")
	// Accepting after 60 s makes that the average wait.
	w.advance(6 * time.Second)
	_, err := w.s.Accept("a", "id2", "")
	require.NoError(t, err)
	q = w.s.Queues("a")
	require.Equal(t, 6, q[0].AverageWaitTime)
	require.Equal(t, 6, q[0].Users[0].EstimatedTime)
	require.Equal(t, 12, q[0].Users[1].EstimatedTime)
	require.Equal(t, []string{"wg"}, w.s.AgentWorkgroups("a"))
	require.NoError(t, w.s.AgentOffline("a", "wg"))
	require.Empty(t, w.s.Queues("a"))
}

// TestService_Concurrent hammers the service from many goroutines (run
// with -race) and checks the invariants: no agent above MaxChats, every
// ticket ends in a sane state, the ticker goroutine stops on Close.
func TestService_Concurrent(t *testing.T) {
	t.Parallel()
	h := &offerHooks{offers: map[string][]string{}}
	s, err := New(Options{Tick: time.Millisecond, RetryAfter: time.Millisecond, MaxTicketsPerUser: 1000}, []Workgroup{
		{Name: "wg", Members: []string{"a", "b", "c"}, MaxChats: 2, OfferTimeout: 1, Open: true}})
	require.NoError(t, err)
	s.Bind(h)
	s.Start()
	defer s.Close()
	var wg sync.WaitGroup
	for _, a := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_ = s.AgentOnline(a, "s-"+a, "wg")
				offers := h.take("s-" + a)
				for j, id := range offers {
					switch j % 3 {
					case 0:
						if ti, err := s.Accept(a, id, ""); err == nil {
							_ = s.RoomReady(ti.Ticket, "room", a)
						}
					case 1:
						_ = s.Reject(a, id, "")
					}
				}
				for _, q := range s.Queues(a) {
					require.LessOrEqual(t, q.CurrentChats, 2)
				}
				if i%50 == 0 {
					_ = s.AgentOffline(a, "wg")
				}
			}
		}()
	}
	for u := 0; u < 8; u++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := "u" + strconv.Itoa(u)
			for i := 0; i < 50; i++ {
				ti, err := s.Ask(AskRequest{Workgroup: "wg", User: user, Stream: "s-" + user, Question: "q"})
				require.NoError(t, err)
				if _, err := s.Ticket(ti.Ticket, user, false); err != nil {
					t.Error(err)
				}
				if i%2 == 0 {
					_, _ = s.Leave(ti.Ticket, user, false)
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	s.Tick()
	for _, a := range []string{"a", "b", "c"} {
		s.mu.Lock()
		require.LessOrEqual(t, s.load(a), 2, a)
		s.mu.Unlock()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tk := range s.tickets {
		require.Contains(t, []string{StateQueued, StateChatting, StateEnded}, tk.state)
		if tk.offer != nil {
			require.Same(t, tk.offer, s.offers[tk.offer.id])
		}
	}
	for _, o := range s.offers {
		require.Equal(t, StateQueued, o.t.state)
	}
}

// offerHooks collects offer ids per stream.
type offerHooks struct {
	mu     sync.Mutex
	offers map[string][]string
}

func (h *offerHooks) Publish(stream string, ev any) {
	if o, ok := ev.(OfferReceived); ok {
		h.mu.Lock()
		h.offers[stream] = append(h.offers[stream], o.ID)
		h.mu.Unlock()
	}
}

func (h *offerHooks) Availability(string) Availability { return Available }
func (h *offerHooks) InRoom(string, string) bool       { return false }

func (h *offerHooks) take(stream string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.offers[stream]
	delete(h.offers, stream)
	return out
}

func TestService_CloseWithoutStart(t *testing.T) {
	t.Parallel()
	s, err := New(Options{}, nil)
	require.NoError(t, err)
	s.Close()
	s.Close()
	s.Start() // no-op after Close
	require.True(t, errors.Is(s.DeleteWorkgroup("x"), ErrWorkgroupNotFound))
}

func TestService_ChatEndsWhenBothLeaveTheRoom(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"))
	w.online("a")
	t1 := w.ask("u1")
	w.ask("u2")
	_, err := w.s.Accept("a", "id2", "wg")
	require.NoError(t, err)
	const room = "wg-x@conference"
	require.NoError(t, w.s.RoomReady(t1, room, "a@x/r"))
	w.h.setInRoom("s-a", room, true)

	w.advance(time.Second)
	ti, err := w.s.Ticket(t1, "u1", false)
	require.NoError(t, err)
	require.Equal(t, StateChatting, ti.State, "the user has not joined yet: nothing ends")

	w.h.setInRoom("s-u1", room, true)
	w.advance(time.Second)
	w.h.setInRoom("s-u1", room, false)
	w.advance(time.Second)
	ti, _ = w.s.Ticket(t1, "u1", false)
	require.Equal(t, StateChatting, ti.State, "the agent is still there")

	w.h.setInRoom("s-a", room, false)
	w.h.take()
	w.advance(time.Second)
	ti, _ = w.s.Ticket(t1, "u1", false)
	require.Equal(t, StateEnded, ti.State)
	offers := w.h.take("offerReceived")
	require.Len(t, offers, 1, "the freed agent gets the next user")
	require.Regexp(t, `^s-a offerReceived id\d+ from=u2$`, offers[0])
}

func TestService_OpenTicketsPerUserAreBounded(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"))
	var first string
	for i := range DefaultMaxTicketsPerUser {
		ti, err := w.s.Ask(AskRequest{Workgroup: "wg", User: "u1", Stream: "s-u1", Question: "q"})
		require.NoError(t, err)
		if i == 0 {
			first = ti.Ticket
		}
	}
	_, err := w.s.Ask(AskRequest{Workgroup: "wg", User: "u1", Stream: "s-u1", Question: "q"})
	require.ErrorIs(t, err, ErrTooManyTickets)
	_, err = w.s.Ask(AskRequest{Workgroup: "wg", User: "u2", Stream: "s-u2", Question: "q"})
	require.NoError(t, err, "other users are not affected")
	_, err = w.s.Leave(first, "u1", false)
	require.NoError(t, err)
	_, err = w.s.Ask(AskRequest{Workgroup: "wg", User: "u1", Stream: "s-u1", Question: "q"})
	require.NoError(t, err, "leaving frees a slot")
}

// TestWorkgroup_UnmarshalJSONOpenByDefault: absent "open" is true, an
// explicit false stays false, null leaves the value alone, unknown fields
// are errors.
func TestWorkgroup_UnmarshalJSONOpenByDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		open     bool
		err      bool
	}{
		{"absent", `{"name":"a","members":["x@y"]}`, true, false},
		{"true", `{"name":"a","open":true}`, true, false},
		{"false", `{"name":"a","open":false}`, false, false},
		{"unknown field", `{"name":"a","opne":false}`, false, true},
		{"name in other case", `{"name":"a","Open":false}`, false, true},
		{"wrong type", `{"name":"a","open":"no"}`, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w Workgroup
			err := jsonv2.Unmarshal([]byte(tt.in), &w, jsonv2.RejectUnknownMembers(true))
			if tt.err {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.open, w.Open)
			require.Equal(t, "a", w.Name)
		})
	}
	w := Workgroup{Name: "kept"}
	require.NoError(t, jsonv2.Unmarshal([]byte(`null`), &w))
	require.Equal(t, Workgroup{Name: "kept"}, w)
}
