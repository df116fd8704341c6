package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"
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
