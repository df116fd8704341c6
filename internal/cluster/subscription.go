package cluster

import (
	"context"
	"sync"
	"time"
)

// Subscription delivers one stream's events from the cluster, in offset
// order, each once: what was published after the position it started from
// (replayed from the log), then live events from pub/sub. It subscribes
// first and reads history second, dropping duplicates by offset, so no
// event falls between replay and live (Centrifugo's recovery). When it
// cannot continue exactly (the position is older than the window, or the
// epoch changed because Redis lost the log) it sends an Event with Reset
// set, then carries on from what the log holds.
//
// A slow reader never blocks the Hub: C is bounded, the Subscription waits
// on it, and live events that do not fit its inbox meanwhile are re-read
// from the log afterwards (a Reset only if they left the window).
type Subscription struct {
	// C carries the events; it is closed when the Subscription ends (its
	// context ended, Close, or the Hub closed). Err then says why.
	C <-chan Event

	hub    *Hub
	c      *Cluster
	stream string
	name   string
	l      *listener
	out    chan Event
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	err    error
	closed bool // Close was called
}

// Subscribe starts a Subscription to streamID after position (after,
// epoch), with the meaning ReadAfter gives them (0 and "" = everything
// retained). It returns once Redis confirmed the pub/sub subscription, or
// ctx's error. The Subscription lives until ctx ends or Close. buffer is
// the length of C; 0 means DefaultSubscriptionBuffer.
func (h *Hub) Subscribe(ctx context.Context, streamID string, after uint64, epoch string, buffer int) (*Subscription, error) {
	if err := checkStreamID(streamID); err != nil {
		return nil, err
	}
	if buffer <= 0 {
		buffer = DefaultSubscriptionBuffer
	}
	s := &Subscription{
		hub: h, c: h.c, stream: streamID, name: h.c.keys.Channel(streamID),
		l: newListener(buffer), out: make(chan Event, buffer), done: make(chan struct{}),
	}
	s.C = s.out
	if err := h.join(ctx, s.name, s.l); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	// The Hub's Close ends the Subscription too.
	stopAfter := context.AfterFunc(h.ctx, cancel)
	go func() { // exits when runCtx ends
		defer stopAfter()
		s.run(runCtx, ctx, after, epoch)
	}()
	return s, nil
}

// Close ends the Subscription and waits until its goroutine has exited. It
// is idempotent.
func (s *Subscription) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	<-s.done
}

// Err is why C was closed: the context's error, or ErrClosed after Close
// or when the Hub closed. It is nil while the Subscription runs.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// run is the Subscription's goroutine; parent is the caller's context,
// whose error Err reports when it ended the Subscription.
func (s *Subscription) run(ctx, parent context.Context, pos uint64, epoch string) {
	defer close(s.done)
	defer close(s.out)
	defer s.hub.leave(s.name, s.l)
	_ = s.loop(ctx, pos, epoch) // ends only when ctx does
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = ErrClosed
	if err := parent.Err(); err != nil && !s.closed && s.hub.ctx.Err() == nil {
		s.err = err
	}
}

// loop is the merge: pos/epoch is the last delivered position.
func (s *Subscription) loop(ctx context.Context, pos uint64, epoch string) error {
	resync, synced := true, false
	for {
		if resync {
			var err error
			if pos, epoch, err = s.catchUp(ctx, pos, epoch); err != nil {
				return err
			}
			resync = false
			if !synced {
				if err := s.emit(ctx, Event{Offset: pos, Epoch: epoch, Synced: true}); err != nil {
					return err
				}
				synced = true
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.l.wake:
			resync = true
		case raw := <-s.l.inbox:
			ev, err := parseFrame(raw)
			switch {
			case err != nil:
				// Not ours to judge: the log is the truth, re-read it.
				resync = true
			case ev.Epoch != epoch:
				resync = true // a new life of the log: catchUp reports the reset
			case ev.Offset <= pos:
				// Already delivered from history: the duplicate the
				// subscribe-then-read order produces.
			case ev.Offset == pos+1:
				if err := s.emit(ctx, ev); err != nil {
					return err
				}
				pos = ev.Offset
			default:
				resync = true // a gap: something was missed, the log has it
			}
		}
	}
}

// catchUp delivers the log after (pos, epoch), preceded by a Reset when
// that position cannot be continued, and returns the new position. Redis
// errors are retried (the Hub's reconnect will resync us again anyway)
// until ctx ends.
func (s *Subscription) catchUp(ctx context.Context, pos uint64, epoch string) (uint64, string, error) {
	var h History
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		var err error
		if h, err = s.c.ReadAfter(ctx, s.stream, pos, epoch); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return pos, epoch, ctx.Err()
		case <-time.After(wait):
		}
	}
	if h.Epoch == "" && len(h.Events) == 0 {
		// No log at all: Redis lost it and nothing was published since.
		// The reset waits for the log's next life, so that it names that
		// epoch and comes once (a reset into "no epoch" would be followed
		// by a second one at the first event).
		return pos, epoch, nil
	}
	if !h.Complete {
		// As sse's reset: its offset is the one before the first event that
		// follows, so a client resuming from it continues correctly.
		reset := h.Top
		if len(h.Events) > 0 {
			reset = h.Events[0].Offset - 1
		}
		if err := s.emit(ctx, Event{Offset: reset, Epoch: h.Epoch, Reset: true}); err != nil {
			return pos, epoch, err
		}
		pos = reset
	}
	epoch = h.Epoch
	for _, ev := range h.Events {
		if ev.Offset <= pos {
			continue
		}
		if err := s.emit(ctx, ev); err != nil {
			return pos, epoch, err
		}
		pos = ev.Offset
	}
	return pos, epoch, nil
}

func (s *Subscription) emit(ctx context.Context, ev Event) error {
	select {
	case s.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
