package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// ErrNotOwner says another node owns the stream now (cluster mode: its
// lease was taken over). The stream ends on this node without a goodbye:
// the session and its rooms belong to the new owner.
var ErrNotOwner = errors.New("gateway: another node owns this stream")

// TakeoverState is what another node needs to re-open a stream the way it
// was (issue 18): the last broadcast presence and the rooms it sits in.
// The last archived message id is not here: it changes with every message,
// and the stream's event log already holds it.
type TakeoverState struct {
	Presence OutgoingPresence `json:"presence"`
	Rooms    []RoomSeat       `json:"rooms,omitempty"`
}

// RoomSeat is a joined room as a re-join needs it.
type RoomSeat struct {
	Room string `json:"room"`
	Nick string `json:"nick"`
	// Password of a password-protected room (it lives in the cluster's
	// Redis like the rest of the state; never in a log).
	Password string `json:"password,omitempty"`
}

// TakeoverState returns the stream's current state for the registry.
func (s *Stream) TakeoverState() TakeoverState {
	st := TakeoverState{Presence: s.Presence()}
	s.rooms.mu.Lock()
	for room, jr := range s.rooms.byRoom {
		if jr.seated { // joined once; maybe re-joining now (reconnect, nick change)
			st.Rooms = append(st.Rooms, RoomSeat{Room: room, Nick: jr.opts.Nick, Password: jr.opts.Password})
		}
	}
	s.rooms.mu.Unlock()
	sort.Slice(st.Rooms, func(i, j int) bool { return st.Rooms[i].Room < st.Rooms[j].Room })
	return st
}

// stateChanged tells the registry (if any) that the stream's takeover
// state changed; the manager's state writer saves it soon after.
func (s *Stream) stateChanged() {
	if s.mgr != nil && s.mgr.states != nil {
		s.mgr.states.mark(s)
	}
}

// stateWriter saves streams' takeover states in the registry. Changes only
// mark a stream; one goroutine per manager writes the latest state of each
// marked stream, so a burst of changes costs one write and no request
// waits for Redis.
type stateWriter struct {
	mu    sync.Mutex
	dirty map[string]*Stream
	wake  chan struct{} // capacity 1: "something is marked"
}

func newStateWriter() *stateWriter {
	return &stateWriter{dirty: map[string]*Stream{}, wake: make(chan struct{}, 1)}
}

func (w *stateWriter) mark(s *Stream) {
	w.mu.Lock()
	w.dirty[s.id] = s
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the marked streams and unmarks them.
func (w *stateWriter) take() map[string]*Stream {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.dirty
	w.dirty = map[string]*Stream{}
	return out
}

// stateRetry is how long a state that could not be saved (Redis down)
// waits before the next try.
const stateRetry = time.Second

// writeStates runs until the manager closes (its owner: Manager.wg).
func (m *Manager) writeStates() {
	defer m.wg.Done()
	for {
		select {
		case <-m.life.Done():
			return
		case <-m.states.wake:
		}
		failed := false
		for _, s := range m.states.take() {
			if s.stopping() {
				continue
			}
			ctx, cancel := context.WithTimeout(m.life, registryTimeout)
			err := m.cfg.Registry.SaveState(ctx, s.id, s.TakeoverState())
			cancel()
			switch {
			case errors.Is(err, ErrNotOwner):
				s.yield()
			case err != nil:
				s.log.Debug("saving the stream's takeover state, will retry", slog.String("error", err.Error()))
				m.states.mark(s)
				failed = true
			}
		}
		if failed {
			select {
			case <-m.life.Done():
				return
			case <-time.After(stateRetry):
			}
		}
	}
}

// AdoptRequest is a stream another node held until it died, claimed by
// this node (issue 18), to be re-opened under the same id.
type AdoptRequest struct {
	ID       string
	User     jid.JID // bare JID
	Resource string  // the resource the stream had: taken again where the server allows
	Created  time.Time
	OnBehalf bool
	State    TakeoverState
	// Log is the stream's retained events (JSON, oldest first), what its
	// clients have been sent: the gap-fill publishes only archived messages
	// after the last of them, and none twice.
	Log [][]byte
	// Dropped is about when the old owner stopped publishing: the archive
	// is read from shortly before it when the log names no archived message.
	Dropped time.Time
}

// Adopt re-opens a claimed stream on this node: an on-behalf login (the
// XMPP token, XMPPGW_XMPP_TOKEN_SECRET) with the stream's resource, its
// last presence sent again, its rooms re-joined with their nicks, and the
// messages archived since the last one its clients got published into the
// same event stream, then a "stream" event with state "resumed". Without
// the token secret it fails with ErrOnBehalfDisabled: the stream is lost.
// The registry must already hold the stream under this node's fence.
func (m *Manager) Adopt(ctx context.Context, req AdoptRequest) (*Stream, error) {
	if len(m.cfg.TokenSecret) == 0 {
		return nil, ErrOnBehalfDisabled
	}
	user := req.User.Bare()
	release, err := m.reserveCapacity(user)
	if err != nil {
		return nil, err
	}
	defer release()
	s := &Stream{id: req.ID, user: user, resource: req.Resource, onBehalf: req.OnBehalf, created: req.Created,
		creds: tokenCredentials{user: user, key: m.cfg.TokenSecret, ttl: m.cfg.XMPPTokenTTL}, presence: req.State.Presence}
	s.rooms.byRoom = map[string]*joinedRoom{}
	for _, seat := range req.State.Rooms {
		// As after a reconnect: rejoinRooms (afterConnect) enters them again.
		s.rooms.byRoom[seat.Room] = &joinedRoom{opts: JoinOptions{Nick: seat.Nick, Password: seat.Password, MaxStanzas: -1},
			occupants: map[string]Occupant{}, seated: true, waiter: make(chan error, 1)}
	}
	for _, raw := range req.Log {
		var ev struct {
			Type     string `json:"type"`
			Room     string `json:"room"`
			StanzaID string `json:"stanza_id"`
		}
		switch {
		case json.Unmarshal(raw, &ev) != nil || ev.StanzaID == "":
		case ev.Room != "":
			s.rooms.delivered(ev.Room, ev.StanzaID)
		default:
			s.archive.delivered(ev.StanzaID)
		}
	}
	c, err := m.dialer(ctx, user, s.creds, s.resource)
	if err != nil {
		m.loginsFailed.Add(1)
		return nil, err
	}
	m.loginsOK.Add(1)
	dropped := req.Dropped
	if dropped.IsZero() {
		dropped = time.Now()
	}
	if err := m.start(s, c, dropped); err != nil {
		return nil, err
	}
	s.log.Info("stream taken over from a dead node", slog.Int("rooms", len(req.State.Rooms)))
	return s, nil
}

// stillOwned asks the registry (cluster mode) whether this node still owns
// the stream before a reconnect: a node that lost its lease while the
// connection was down must not log in again, or it would push the new
// owner's session off the server (same resource) and be pushed off in
// turn. The question is a state save, which the fence decides. Without a
// registry, or while it cannot answer (Redis down), the stream is ours:
// it keeps serving its own subscribers through an outage.
func (s *Stream) stillOwned() bool {
	if s.mgr.cfg.Registry == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(s.stopCtx, registryTimeout)
	defer cancel()
	return !errors.Is(s.mgr.cfg.Registry.SaveState(ctx, s.id, s.TakeoverState()), ErrNotOwner)
}

// YieldTakenOver ends every stream another node has claimed (a graceful
// drain hands them over, issue 18) and returns how many are left here.
func (m *Manager) YieldTakenOver() int {
	left := 0
	for _, s := range m.Streams() {
		if s.stillOwned() {
			left++
			continue
		}
		s.yield()
	}
	return left
}

// Yield ends the stream id on this node because another node owns it now
// (see yield); for the cluster's event publisher, which learns it first
// when the stream's log refuses this node's fence.
func (m *Manager) Yield(id string) {
	m.mu.Lock()
	s := m.streams[id]
	m.mu.Unlock()
	if s != nil {
		s.yield()
	}
}

// yield ends a stream another node owns now: its socket closes without
// unavailable presence, pubsub unsubscribes or an offline event (all of
// which would act on the new owner's session), and the registry record,
// the new owner's, is left alone.
func (s *Stream) yield() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing, s.yielded = true, true
		c := s.conn
		s.mu.Unlock()
		s.cancelStop()
		if c != nil {
			_ = c.EndStream(3 * time.Second)
		}
		s.log.Warn("stream taken over by another node; ending it here")
	})
}
