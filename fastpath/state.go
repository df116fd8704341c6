package fastpath

import (
	"fmt"
	"slices"
	"sort"
	"time"
)

// State is everything of a Service that must survive a takeover by
// another node (cluster mode): Snapshot takes it, Restore resumes from it.
// It encodes with encoding/json (and go-json-experiment/json); durations
// are plain nanoseconds so both encoders read them alike.
//
// Pending offers are not part of it: an offer is an agent's popup on the
// old node, so Restore leaves its ticket queued where it was and the next
// Tick offers it again. The per-agent last notify-queue is not kept
// either: after a restore each online agent gets the queue state once
// more, which is harmless.
type State struct {
	// Version is the Service's Version when the snapshot was taken; Restore
	// carries it on so the counter never goes back across takeovers.
	Version    uint64           `json:"version"`
	Workgroups []WorkgroupState `json:"workgroups"`
	Tickets    []TicketState    `json:"tickets"`
	Agents     []AgentState     `json:"agents"`
}

// WorkgroupState is one workgroup in a State.
type WorkgroupState struct {
	Config Workgroup `json:"config"`
	// Queue is the ticket ids of the queued requests, head first.
	Queue []string `json:"queue"`
	// RR is the index in Config.Members of the agent offered last (-1: none).
	RR int `json:"rr"`
	// WaitsNS are the recent accepted waits (nanoseconds, oldest first)
	// the estimates are made from.
	WaitsNS []int64 `json:"waits_ns"`
}

// TicketState is one ticket (queued, accepting, chatting or ended) in a
// State.
type TicketState struct {
	ID      string     `json:"id"`
	Request AskRequest `json:"request"`
	State   string     `json:"state"`
	Joined  time.Time  `json:"joined"`
	// Excluded are the agents skipped for this request, until when.
	Excluded    map[string]time.Time `json:"excluded,omitempty"`
	Agent       string               `json:"agent,omitempty"`
	AgentStream string               `json:"agent_stream,omitempty"`
	RoomName    string               `json:"room_name,omitempty"`
	Room        string               `json:"room,omitempty"`
	Reason      string               `json:"reason,omitempty"`
	Ended       time.Time            `json:"ended"`
	// LastPos and LastEst are the last update-queue the user got, so a
	// restore does not repeat it.
	LastPos  int  `json:"last_pos,omitempty"`
	LastEst  int  `json:"last_est,omitempty"`
	UserSeen bool `json:"user_seen,omitempty"`
}

// AgentState is one online agent in a State.
type AgentState struct {
	User   string   `json:"user"`
	Stream string   `json:"stream"`
	Groups []string `json:"groups"` // the workgroups online in, sorted
}

// Version counts the Service's state changes: it grows on every change
// (and sometimes without one), never otherwise, so a caller that persists
// Snapshots can skip the ones where it did not move.
func (s *Service) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// touch records a state change; under s.mu.
func (s *Service) touch() { s.version++ }

// Snapshot copies the Service's state (see State). The copy shares nothing
// with the live engine, so it may be encoded while the engine runs on.
func (s *Service) Snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{Version: s.version, Workgroups: []WorkgroupState{}, Tickets: []TicketState{}, Agents: []AgentState{}}
	for _, name := range s.groupNames() {
		g := s.groups[name]
		ws := WorkgroupState{Config: g.cfg.clone(), Queue: make([]string, 0, len(g.queue)), RR: g.rr,
			WaitsNS: make([]int64, 0, len(g.waits))}
		for _, t := range g.queue {
			ws.Queue = append(ws.Queue, t.id)
		}
		for _, w := range g.waits {
			ws.WaitsNS = append(ws.WaitsNS, int64(w))
		}
		st.Workgroups = append(st.Workgroups, ws)
	}
	for _, t := range s.ticketsSorted() {
		ts := TicketState{ID: t.id, Request: t.req, State: t.state, Joined: t.joined, Agent: t.agent,
			AgentStream: t.agentSt, RoomName: t.roomName, Room: t.room, Reason: t.reason, Ended: t.ended,
			LastPos: t.lastPos, LastEst: t.lastEst, UserSeen: t.userSeen}
		ts.Request.Metadata = cloneMap(t.req.Metadata)
		if len(t.excluded) > 0 {
			ts.Excluded = make(map[string]time.Time, len(t.excluded))
			for a, until := range t.excluded {
				ts.Excluded[a] = until
			}
		}
		st.Tickets = append(st.Tickets, ts)
	}
	for _, a := range s.agentsSorted() {
		as := AgentState{User: a.user, Stream: a.stream, Groups: make([]string, 0, len(a.groups))}
		for g := range a.groups {
			as.Groups = append(as.Groups, g)
		}
		sort.Strings(as.Groups)
		st.Agents = append(st.Agents, as)
	}
	return st
}

// Restore returns a Service (as New would, timer not started, hooks not
// bound) holding st. Offers pending when st was taken are gone: their
// tickets keep their queue positions and the next Tick (after Bind) offers
// them again, their agent as eligible as any other. A State that is not
// consistent fails with an error wrapping ErrInvalid.
func Restore(opts Options, st State) (*Service, error) {
	s := newService(opts)
	s.version = st.Version
	for _, ws := range st.Workgroups {
		cfg := ws.Config.clone()
		if err := cfg.normalize(); err != nil {
			return nil, fmt.Errorf("restoring workgroup %q: %w", ws.Config.Name, err)
		}
		if _, dup := s.groups[cfg.Name]; dup {
			return nil, fmt.Errorf("%w: workgroup %q twice in the state", ErrInvalid, cfg.Name)
		}
		if ws.RR < -1 || ws.RR >= len(cfg.Members) {
			return nil, fmt.Errorf("%w: workgroup %q: rr %d out of its %d members", ErrInvalid, cfg.Name, ws.RR, len(cfg.Members))
		}
		g := &group{cfg: cfg, rr: ws.RR, notified: map[string]NotifyQueue{}}
		for _, w := range ws.WaitsNS {
			g.waits = append(g.waits, time.Duration(w))
		}
		if len(g.waits) > 20 { // Accept keeps the last 20
			g.waits = g.waits[len(g.waits)-20:]
		}
		s.groups[cfg.Name] = g
	}
	for _, ts := range st.Tickets {
		if ts.ID == "" {
			return nil, fmt.Errorf("%w: a ticket without an id", ErrInvalid)
		}
		if _, dup := s.tickets[ts.ID]; dup {
			return nil, fmt.Errorf("%w: ticket %q twice in the state", ErrInvalid, ts.ID)
		}
		if ts.Request.User == "" || ts.Request.Stream == "" {
			return nil, fmt.Errorf("%w: ticket %q without its user or stream", ErrInvalid, ts.ID)
		}
		switch ts.State {
		case StateQueued:
			// A queued ticket needs its queue; the others may outlive a
			// deleted workgroup (DeleteWorkgroup leaves running chats).
			if _, ok := s.groups[ts.Request.Workgroup]; !ok {
				return nil, fmt.Errorf("%w: queued ticket %q of unknown workgroup %q", ErrInvalid, ts.ID, ts.Request.Workgroup)
			}
		case StateAccepting, StateChatting:
			if ts.Agent == "" {
				return nil, fmt.Errorf("%w: %s ticket %q without an agent", ErrInvalid, ts.State, ts.ID)
			}
		case StateEnded:
		default:
			return nil, fmt.Errorf("%w: ticket %q in unknown state %q", ErrInvalid, ts.ID, ts.State)
		}
		t := &ticket{req: ts.Request, id: ts.ID, state: ts.State, joined: ts.Joined, excluded: map[string]time.Time{},
			agent: ts.Agent, agentSt: ts.AgentStream, roomName: ts.RoomName, room: ts.Room, reason: ts.Reason,
			ended: ts.Ended, lastPos: ts.LastPos, lastEst: ts.LastEst, userSeen: ts.UserSeen}
		t.req.Metadata = cloneMap(ts.Request.Metadata)
		for a, until := range ts.Excluded {
			t.excluded[a] = until
		}
		s.tickets[t.id] = t
	}
	for _, ws := range st.Workgroups {
		g := s.groups[ws.Config.Name]
		for _, id := range ws.Queue {
			t, ok := s.tickets[id]
			switch {
			case !ok:
				return nil, fmt.Errorf("%w: workgroup %q queues unknown ticket %q", ErrInvalid, g.cfg.Name, id)
			case t.state != StateQueued || t.req.Workgroup != g.cfg.Name:
				return nil, fmt.Errorf("%w: workgroup %q queues ticket %q (%s, of %q)", ErrInvalid, g.cfg.Name, id, t.state, t.req.Workgroup)
			case slices.Contains(g.queue, t):
				return nil, fmt.Errorf("%w: workgroup %q queues ticket %q twice", ErrInvalid, g.cfg.Name, id)
			}
			g.queue = append(g.queue, t)
		}
	}
	for _, t := range s.tickets {
		if t.state == StateQueued && !slices.Contains(s.groups[t.req.Workgroup].queue, t) {
			return nil, fmt.Errorf("%w: queued ticket %q missing from its queue", ErrInvalid, t.id)
		}
	}
	for _, as := range st.Agents {
		if as.User == "" || as.Stream == "" || len(as.Groups) == 0 {
			return nil, fmt.Errorf("%w: agent %q without a stream or workgroups", ErrInvalid, as.User)
		}
		if _, dup := s.agents[as.User]; dup {
			return nil, fmt.Errorf("%w: agent %q twice in the state", ErrInvalid, as.User)
		}
		a := &agent{user: as.User, stream: as.Stream, groups: map[string]bool{}}
		for _, name := range as.Groups {
			g, ok := s.groups[name]
			switch {
			case !ok:
				return nil, fmt.Errorf("%w: agent %q online in unknown workgroup %q", ErrInvalid, as.User, name)
			case !slices.Contains(g.cfg.Members, as.User):
				return nil, fmt.Errorf("%w: agent %q online in workgroup %q without being a member", ErrInvalid, as.User, name)
			case a.groups[name]:
				return nil, fmt.Errorf("%w: agent %q online in workgroup %q twice", ErrInvalid, as.User, name)
			}
			a.groups[name] = true
		}
		s.agents[as.User] = a
	}
	return s, nil
}
