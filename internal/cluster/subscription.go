package cluster

import (
	"bytes"
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

// position is where a Subscription is: pos/epoch is the last event it
// delivered; confirmed is the last of those known to be in the log. The
// ones after it (prov, offsets confirmed+1..pos) are provisional events its
// node's publisher handed over while Redis did not answer; each is
// confirmed when the log shows the same payload at its offset, and a
// different one (another node owns the stream now) resets the subscriber
// to the log's version.
type position struct {
	pos, confirmed uint64
	epoch          string
	prov           []Event
}

// loop is the merge, starting after (pos, epoch).
func (s *Subscription) loop(ctx context.Context, pos uint64, epoch string) error {
	p := &position{pos: pos, confirmed: pos, epoch: epoch}
	resync, synced := true, false
	for {
		if resync {
			if err := s.catchUp(ctx, p); err != nil {
				return err
			}
			resync = false
			if !synced {
				if err := s.emit(ctx, Event{Offset: p.pos, Epoch: p.epoch, Synced: true}); err != nil {
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
		case f := <-s.l.inbox:
			var err error
			if f.local != nil {
				resync, err = s.local(ctx, p, f.local)
			} else {
				resync, err = s.live(ctx, p, f.raw)
			}
			if err != nil {
				return err
			}
		}
	}
}

// live takes one pub/sub message; true means "re-read the log".
func (s *Subscription) live(ctx context.Context, p *position, raw string) (bool, error) {
	ev, err := parseFrame(raw)
	switch {
	case err != nil:
		return true, nil // not ours to judge: the log is the truth, re-read it
	case ev.Epoch != p.epoch:
		return true, nil // a new life of the log: catchUp reports the reset
	case ev.Offset <= p.confirmed:
		// Already delivered from history: the duplicate the
		// subscribe-then-read order produces.
		return false, nil
	case ev.Offset == p.confirmed+1:
		return false, s.fromLog(ctx, p, ev)
	default:
		return true, nil // a gap: something was missed, the log has it
	}
}

// local takes what this node's publisher handed over during an outage.
func (s *Subscription) local(ctx context.Context, p *position, lf *localFrame) (bool, error) {
	if lf.abandon {
		if len(p.prov) == 0 {
			return false, nil
		}
		// What the subscriber got after confirmed will never be in the
		// log: reset it to confirmed and carry on from the log.
		p.pos, p.prov = p.confirmed, nil
		return true, s.emit(ctx, Event{Offset: p.confirmed, Epoch: p.epoch, Reset: true})
	}
	ev := lf.ev
	if ev.Epoch != p.epoch || ev.Offset != p.pos+1 {
		return false, nil // out of step (a dropped frame): the log delivers it later
	}
	if err := s.emit(ctx, ev); err != nil {
		return false, err
	}
	p.pos = ev.Offset
	p.prov = append(p.prov, ev)
	return false, nil
}

// fromLog delivers ev, the log's event at confirmed+1: a provisional event
// with the same payload was delivered already and is now confirmed; one
// with another payload was never published (the stream changed owner), so
// the subscriber is reset to the log's version first.
func (s *Subscription) fromLog(ctx context.Context, p *position, ev Event) error {
	if len(p.prov) > 0 {
		if bytes.Equal(p.prov[0].Payload, ev.Payload) {
			p.confirmed = ev.Offset
			p.prov[0] = Event{}
			p.prov = p.prov[1:]
			return nil
		}
		if err := s.emit(ctx, Event{Offset: p.confirmed, Epoch: p.epoch, Reset: true}); err != nil {
			return err
		}
		p.pos, p.prov = p.confirmed, nil
	}
	if err := s.emit(ctx, ev); err != nil {
		return err
	}
	p.pos, p.confirmed = ev.Offset, ev.Offset
	return nil
}

// catchUp delivers the log after the confirmed position, preceded by a
// Reset when that position cannot be continued. Redis errors are retried
// (the Hub's reconnect will resync us again anyway) until ctx ends.
func (s *Subscription) catchUp(ctx context.Context, p *position) error {
	var h History
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		var err error
		if h, err = s.c.ReadAfter(ctx, s.stream, p.confirmed, p.epoch); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	if h.Epoch == "" && len(h.Events) == 0 {
		// No log at all: Redis lost it and nothing was published since.
		// The reset waits for the log's next life, so that it names that
		// epoch and comes once (a reset into "no epoch" would be followed
		// by a second one at the first event).
		return nil
	}
	if !h.Complete {
		// As sse's reset: its offset is the one before the first event that
		// follows, so a client resuming from it continues correctly.
		reset := h.Top
		if len(h.Events) > 0 {
			reset = h.Events[0].Offset - 1
		}
		if err := s.emit(ctx, Event{Offset: reset, Epoch: h.Epoch, Reset: true}); err != nil {
			return err
		}
		p.pos, p.confirmed, p.prov = reset, reset, nil
	}
	p.epoch = h.Epoch
	for _, ev := range h.Events {
		if ev.Offset <= p.confirmed {
			continue
		}
		if err := s.fromLog(ctx, p, ev); err != nil {
			return err
		}
	}
	return nil
}

func (s *Subscription) emit(ctx context.Context, ev Event) error {
	select {
	case s.out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
