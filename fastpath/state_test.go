package fastpath

import (
	"encoding/json"
	"testing"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/stretchr/testify/require"
)

const stateRoom = "wg-room@conference"

// busyWorld is an engine with something of everything: workgroup wg
// (members a, b; one chat each) with u1 chatting with a, u2 queued with b
// excluded (b rejected it), u3 offered to b, u4 queued behind them; and
// wg2 (member c) with u5 offered to c and u6 queued.
func busyWorld(t *testing.T) (w *world, tickets map[string]string) {
	t.Helper()
	w = newWorld(t, wg(1, "a", "b"), Workgroup{Name: "wg2", Members: []string{"c"}, MaxChats: 1, OfferTimeout: 10, Open: true})
	w.online("a", "b")
	require.NoError(t, w.s.AgentOnline("c", "s-c", "wg2"))
	tickets = map[string]string{}
	tickets["u1"] = w.ask("u1")
	w.mu.Lock()
	w.now = w.now.Add(7 * time.Second) // a recorded wait, for the estimates
	w.mu.Unlock()
	_, err := w.s.Accept("a", offerTo(t, w, "s-a", "u1"), "wg")
	require.NoError(t, err)
	require.NoError(t, w.s.RoomReady(tickets["u1"], stateRoom, "a@x/r"))
	w.h.setInRoom("s-u1", stateRoom, true)
	w.h.setInRoom("s-a", stateRoom, true)
	w.s.Tick() // the user is seen in the room

	tickets["u2"] = w.ask("u2")
	require.NoError(t, w.s.Reject("b", offerTo(t, w, "s-b", "u2"), "wg"))
	tickets["u3"] = w.ask("u3")
	offerTo(t, w, "s-b", "u3")
	tickets["u4"] = w.ask("u4")
	for _, u := range []string{"u5", "u6"} {
		ti, err := w.s.Ask(AskRequest{Workgroup: "wg2", User: u, Stream: "s-" + u, Question: "q from " + u,
			Metadata: map[string]string{"k": "v"}})
		require.NoError(t, err)
		tickets[u] = ti.Ticket
	}
	offerTo(t, w, "s-c", "u5")
	return w, tickets
}

// offerTo is the id of the one offer published to stream for user's
// request since the last take.
func offerTo(t *testing.T, w *world, stream, user string) string {
	t.Helper()
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	id := ""
	for _, ev := range w.h.raw {
		if o, ok := ev.(OfferReceived); ok && o.From == user {
			id = o.ID
		}
	}
	require.NotEmpty(t, id, "no offer for %s", user)
	w.h.raw = nil
	return id
}

func allTickets(t *testing.T, s *Service, tickets map[string]string) map[string]TicketInfo {
	t.Helper()
	out := map[string]TicketInfo{}
	for u, id := range tickets {
		ti, err := s.Ticket(id, u, false)
		require.NoError(t, err)
		out[u] = ti
	}
	return out
}

// TestState_RoundTrip: a busy engine survives Snapshot → JSON → Restore
// whole: the same workgroups, tickets, positions and queues; after a Tick
// the pending offers are made again (to the agents that had them, as the
// round-robin index is kept), the excluded agent stays excluded, the chat
// goes on and nobody is told a queue position twice.
func TestState_RoundTrip(t *testing.T) {
	t.Parallel()
	w, tickets := busyWorld(t)
	st := w.s.Snapshot()
	require.Len(t, st.Workgroups, 2)
	require.Len(t, st.Tickets, 6)
	require.Len(t, st.Agents, 3)
	require.Equal(t, []string{tickets["u2"], tickets["u3"], tickets["u4"]}, st.Workgroups[0].Queue)
	require.Equal(t, []int64{int64(7 * time.Second)}, st.Workgroups[0].WaitsNS)

	raw, err := json.Marshal(st)
	require.NoError(t, err)
	var decoded State
	require.NoError(t, json.Unmarshal(raw, &decoded))
	require.Equal(t, st, decoded, "encoding/json round trip")
	// v2 too (its nil maps would come back empty, an equal engine but not
	// an Equal State, hence the options).
	raw2, err := jsonv2.Marshal(st, jsonv2.FormatNilMapAsNull(true), jsonv2.FormatNilSliceAsNull(true))
	require.NoError(t, err)
	var decoded2 State
	require.NoError(t, jsonv2.Unmarshal(raw2, &decoded2))
	require.Equal(t, st, decoded2, "go-json-experiment round trip")

	h2 := &fakeHooks{avail: map[string]Availability{}}
	h2.setInRoom("s-u1", stateRoom, true)
	h2.setInRoom("s-a", stateRoom, true)
	r, err := Restore(Options{Clock: w.clock, NewID: w.id, RetryAfter: time.Minute}, decoded)
	require.NoError(t, err)
	defer r.Close()
	r.Bind(h2)

	require.Equal(t, st, r.Snapshot(), "the restored engine holds the whole state")
	require.Equal(t, st.Version, r.Version(), "the counter carries on")
	require.Equal(t, w.s.Workgroups(), r.Workgroups())
	before := allTickets(t, w.s, tickets)
	require.Equal(t, before, allTickets(t, r, tickets))
	require.Equal(t, 1, before["u2"].Position)
	require.Equal(t, 2, before["u3"].Position, "the ticket whose offer was pending keeps its place")
	require.Equal(t, 3, before["u4"].Position)
	require.Equal(t, StateChatting, before["u1"].State)
	for _, agent := range []string{"a", "b", "c"} {
		q := r.Queues(agent)
		require.NotEmpty(t, q)
		for i, qi := range w.s.Queues(agent) {
			require.Equal(t, qi.Users, q[i].Users, "queue %s for %s", qi.Name, agent)
		}
	}

	r.Tick()
	offers := h2.take("offerReceived")
	require.Len(t, offers, 2, "both pending offers are made again, no other: %v", offers)
	require.Regexp(t, `^s-b offerReceived id\d+ from=u3$`, offers[0])
	require.Regexp(t, `^s-c offerReceived id\d+ from=u5$`, offers[1])
	require.Empty(t, h2.take("update-queue"), "the users already know their places")
	after := allTickets(t, r, tickets)
	require.Equal(t, before, after, "re-offering moves nobody; the chat goes on")
	for _, agent := range []string{"a", "b", "c"} {
		require.Equal(t, w.s.Queues(agent), r.Queues(agent), "with the offers back, loads and statuses are the old ones")
	}

	// The new offer works; b is still skipped for u2 (it rejected it).
	var offerID string
	for _, ev := range h2.raw {
		if o, ok := ev.(OfferReceived); ok && o.From == "u3" {
			offerID = o.ID
		}
	}
	ti, err := r.Accept("b", offerID, "wg")
	require.NoError(t, err)
	require.Equal(t, tickets["u3"], ti.Ticket)
	require.NoError(t, r.AgentOffline("a", "wg"))
	h2.take()
	r.Tick()
	require.Empty(t, h2.take("offerReceived"), "u2 is not offered to b, who rejected it (and b is busy)")
}

// TestState_RestoreFreesTheOfferedAgent: an agent whose only pending offer
// was dropped has its capacity back and gets that request again, even
// though the round-robin index already points at it.
func TestState_RestoreFreesTheOfferedAgent(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"))
	w.online("a")
	id := w.ask("u1")
	require.Equal(t, 1, w.s.Queues("a")[0].CurrentChats)
	h2 := &fakeHooks{avail: map[string]Availability{}}
	r, err := Restore(Options{Clock: w.clock, NewID: w.id}, w.s.Snapshot())
	require.NoError(t, err)
	r.Bind(h2)
	require.Equal(t, 0, r.Queues("a")[0].CurrentChats, "the lost offer does not hold the agent's capacity")
	r.Tick()
	require.Regexp(t, `^s-a offerReceived id\d+ from=u1$`, h2.take("offerReceived")[0])
	ti, err := r.Ticket(id, "u1", false)
	require.NoError(t, err)
	require.Equal(t, 1, ti.Position)
}

// TestState_SnapshotIsACopy: changing a snapshot changes nothing in the
// engine, and a restored engine does not share the state it came from.
func TestState_SnapshotIsACopy(t *testing.T) {
	t.Parallel()
	w, _ := busyWorld(t)
	st, want := w.s.Snapshot(), w.s.Snapshot()
	mess := func(st State) {
		st.Workgroups[0].Queue[0] = "x"
		st.Workgroups[0].WaitsNS[0] = 1
		st.Workgroups[0].Config.Members[0] = "zz"
		st.Agents[0].Groups[0] = "zz"
		for i := range st.Tickets {
			st.Tickets[i].Request.Metadata["k"] = "changed"
			st.Tickets[i].Excluded["zz"] = time.Time{}
		}
	}
	for i := range st.Tickets { // writable maps everywhere, to poke at
		if st.Tickets[i].Request.Metadata == nil {
			st.Tickets[i].Request.Metadata = map[string]string{}
		}
		if st.Tickets[i].Excluded == nil {
			st.Tickets[i].Excluded = map[string]time.Time{}
		}
	}
	mess(st)
	require.Equal(t, want, w.s.Snapshot())

	r, err := Restore(Options{Clock: w.clock, NewID: w.id}, want)
	require.NoError(t, err)
	st2 := r.Snapshot()
	for i := range want.Tickets {
		if want.Tickets[i].Request.Metadata != nil {
			want.Tickets[i].Request.Metadata["k"] = "changed"
		}
		if want.Tickets[i].Excluded != nil {
			want.Tickets[i].Excluded["zz"] = time.Time{}
		}
	}
	want.Workgroups[0].Queue[0] = "x"
	want.Workgroups[0].Config.Members[0] = "zz"
	require.Equal(t, st2, r.Snapshot(), "Restore copied its input")
	require.NotEqual(t, want, st2)
}

// TestState_Version: every change moves the counter, reads do not.
func TestState_Version(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a", "b"))
	v := w.s.Version()
	moved := func(what string) {
		t.Helper()
		nv := w.s.Version()
		require.Greater(t, nv, v, what)
		v = nv
	}
	still := func(what string) {
		t.Helper()
		require.Equal(t, v, w.s.Version(), what)
	}

	w.online("a", "b")
	moved("agents online")
	id := w.ask("u1")
	moved("ask")
	_, err := w.s.Ticket(id, "u1", false)
	require.NoError(t, err)
	w.s.Queues("a")
	w.s.Workgroups()
	w.s.AgentWorkgroups("a")
	w.s.Snapshot()
	still("reads")
	_, err = w.s.Ticket("nope", "u1", false)
	require.ErrorIs(t, err, ErrTicketNotFound)
	require.ErrorIs(t, w.s.Reject("a", "nope", ""), ErrOfferNotFound)
	still("failed calls")
	w.s.Tick()
	still("an idle Tick (else the cluster would save the state every tick)")

	w.advance(11 * time.Second) // a's offer times out, goes to b
	moved("offer timeout")
	w.h.set("s-b", Away)
	w.s.Tick()
	moved("offer revoked from an away agent")
	w.h.set("s-a", Gone)
	w.s.Tick()
	moved("agent gone")
	require.Empty(t, w.s.AgentWorkgroups("a"))
	w.h.set("s-u1", Gone)
	w.s.Tick()
	moved("user gone")
	ti, err := w.s.Ticket(id, "u1", false)
	require.NoError(t, err)
	require.Equal(t, StateEnded, ti.State)
	w.advance(25 * time.Hour)
	moved("ended ticket forgotten")
	_, err = w.s.Ticket(id, "u1", false)
	require.ErrorIs(t, err, ErrTicketNotFound)

	_, err = w.s.UpdateWorkgroup("wg", wg(2, "a", "b"))
	require.NoError(t, err)
	moved("update workgroup")
	_, err = w.s.CreateWorkgroup(Workgroup{Name: "other", Open: true})
	require.NoError(t, err)
	moved("create workgroup")
	require.NoError(t, w.s.DeleteWorkgroup("other"))
	moved("delete workgroup")
}

// TestState_VersionOnChatEnd: a Tick that only ends a chat counts.
func TestState_VersionOnChatEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"))
	w.online("a")
	id := w.ask("u1")
	_, err := w.s.Accept("a", "id2", "wg")
	require.NoError(t, err)
	require.NoError(t, w.s.RoomReady(id, stateRoom, "a@x/r"))
	w.h.setInRoom("s-u1", stateRoom, true)
	v := w.s.Version()
	w.s.Tick()
	require.Greater(t, w.s.Version(), v, "the user was seen in the room")
	v = w.s.Version()
	w.h.setInRoom("s-u1", stateRoom, false)
	w.s.Tick()
	require.Greater(t, w.s.Version(), v, "the chat ended")
	ti, err := w.s.Ticket(id, "u1", false)
	require.NoError(t, err)
	require.Equal(t, StateEnded, ti.State)
}

// TestState_RestoreKeepsChatsOfDeletedWorkgroups: DeleteWorkgroup leaves
// running chats alone, so their snapshot must restore.
func TestState_RestoreKeepsChatsOfDeletedWorkgroups(t *testing.T) {
	t.Parallel()
	w := newWorld(t, wg(1, "a"))
	w.online("a")
	id := w.ask("u1")
	_, err := w.s.Accept("a", "id2", "wg")
	require.NoError(t, err)
	require.NoError(t, w.s.RoomReady(id, stateRoom, "a@x/r"))
	require.NoError(t, w.s.DeleteWorkgroup("wg"))
	r, err := Restore(Options{}, w.s.Snapshot())
	require.NoError(t, err)
	ti, err := r.Ticket(id, "u1", false)
	require.NoError(t, err)
	require.Equal(t, StateChatting, ti.State)
}

// TestState_RestoreRejectsCorruptState: an inconsistent State is an
// ErrInvalid error, not a panic or a half-working engine.
func TestState_RestoreRejectsCorruptState(t *testing.T) {
	t.Parallel()
	w, _ := busyWorld(t)
	_, err := Restore(Options{}, w.s.Snapshot())
	require.NoError(t, err, "the untouched state is fine")
	queued := func(st State) int { // index of u2's ticket (queued in wg)
		for i, ts := range st.Tickets {
			if ts.Request.User == "u2" {
				return i
			}
		}
		panic("no u2")
	}
	cases := map[string]func(st *State){
		"queued ticket of an unknown workgroup": func(st *State) { st.Tickets[queued(*st)].Request.Workgroup = "gone" },
		"duplicate ticket id":                   func(st *State) { st.Tickets = append(st.Tickets, st.Tickets[0]) },
		"empty ticket id":                       func(st *State) { st.Tickets[0].ID = "" },
		"ticket without its user":               func(st *State) { st.Tickets[0].Request.User = "" },
		"queued ticket missing from its queue":  func(st *State) { st.Workgroups[0].Queue = st.Workgroups[0].Queue[1:] },
		"queue holds an unknown ticket":         func(st *State) { st.Workgroups[0].Queue = append(st.Workgroups[0].Queue, "nope") },
		"queue holds a ticket twice": func(st *State) {
			st.Workgroups[0].Queue = append(st.Workgroups[0].Queue, st.Workgroups[0].Queue[0])
		},
		"queue holds another workgroup's ticket": func(st *State) {
			st.Workgroups[0].Queue = append(st.Workgroups[0].Queue, st.Workgroups[1].Queue[0])
		},
		"queue holds a chatting ticket": func(st *State) {
			st.Tickets[queued(*st)].State = StateChatting
		},
		"unknown ticket state":        func(st *State) { st.Tickets[0].State = "lost" },
		"chat without an agent":       func(st *State) { st.Tickets[0].Agent = "" }, // u1, chatting
		"duplicate workgroup":         func(st *State) { st.Workgroups = append(st.Workgroups, st.Workgroups[0]) },
		"bad workgroup config":        func(st *State) { st.Workgroups[0].Config.Name = "Bad Name!" },
		"rr past the members":         func(st *State) { st.Workgroups[0].RR = 2 },
		"rr below -1":                 func(st *State) { st.Workgroups[0].RR = -2 },
		"duplicate agent":             func(st *State) { st.Agents = append(st.Agents, st.Agents[0]) },
		"agent in unknown workgroup":  func(st *State) { st.Agents[0].Groups = []string{"gone"} },
		"agent not a member":          func(st *State) { st.Agents[0].Groups = []string{"wg2"} }, // a
		"agent in a workgroup twice":  func(st *State) { st.Agents[0].Groups = []string{"wg", "wg"} },
		"agent without a stream":      func(st *State) { st.Agents[0].Stream = "" },
		"agent without any workgroup": func(st *State) { st.Agents[0].Groups = nil },
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st := w.s.Snapshot()
			require.Equal(t, "u1", st.Tickets[0].Request.User, "the cases assume u1's ticket first")
			require.Equal(t, "a", st.Agents[0].User)
			corrupt(&st)
			s, err := Restore(Options{}, st)
			require.ErrorIs(t, err, ErrInvalid)
			require.Nil(t, s)
		})
	}
}
