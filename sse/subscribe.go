package sse

import (
	"bytes"
	"context"
	"errors"
	"sync"
)

var (
	// ErrEvicted is returned by Subscription.Next when the subscriber fell a
	// whole queue behind and was cut off; it can resume from its last id.
	ErrEvicted = errors.New("sse: subscriber too slow")
	// ErrClosed is returned by Subscription.Next once the topic or the
	// broker closed (after everything already queued was returned).
	ErrClosed = errors.New("sse: topic closed")
)

// Event is one event as a non-SSE transport (a WebSocket) receives it.
type Event struct {
	ID uint64
	// Epoch is set when the topic's ids come from a log with epochs
	// (Broker.Append); EventID(ID, Epoch) is the id to resume from.
	Epoch string
	Data  []byte
}

// Subscription is a topic subscriber for transports other than Serve: the
// same replay (lastEventID), queue bound, slow-subscriber eviction and
// subscriber cap, read one event at a time with Next. Close it when done.
type Subscription struct {
	b      *Broker
	t      *topic
	s      *queueSubscriber
	replay [][]byte
	once   sync.Once
}

// Subscribe registers a subscriber on the topic. lastEventID resumes after
// that id exactly as Serve's Last-Event-ID does (a "reset" event first when
// it is older than the replay buffer); "" replays everything retained. It
// returns ErrTopicNotFound or ErrTooManySubscribers like Serve.
func (b *Broker) Subscribe(name, lastEventID string) (*Subscription, error) {
	t := b.topic(name)
	if t == nil {
		return nil, ErrTopicNotFound
	}
	s := newQueueSubscriber(b.queueSize)
	replay, err := t.subscribe(s, lastEventID, b.maxSubs)
	if err != nil {
		return nil, err
	}
	return &Subscription{b: b, t: t, s: s, replay: replay}, nil
}

// Next returns the next event: the replay first, then live events. It
// returns ctx's error, ErrEvicted, or ErrClosed. Only one goroutine may call
// Next at a time.
func (sub *Subscription) Next(ctx context.Context) (Event, error) {
	if len(sub.replay) > 0 {
		f := sub.replay[0]
		sub.replay[0] = nil
		sub.replay = sub.replay[1:]
		return parseFrame(f), nil
	}
	select {
	case <-ctx.Done():
		return Event{}, ctx.Err()
	case <-sub.b.done:
		return Event{}, ErrClosed
	case <-sub.s.evicted:
		return Event{}, ErrEvicted
	case f, ok := <-sub.s.queue:
		if !ok {
			return Event{}, ErrClosed
		}
		select {
		case <-sub.s.evicted: // too slow: nothing more, the client resumes from its last id
			return Event{}, ErrEvicted
		default:
		}
		return parseFrame(f), nil
	}
}

// queueSubscriber is a subscriber read by its own goroutine: Subscribe's
// caller, or Serve on a connection it cannot take over (HTTP/2).
type queueSubscriber struct {
	queue   chan []byte   // closed by end, after the last event
	evicted chan struct{} // closed by evict
}

func newQueueSubscriber(size int) *queueSubscriber {
	return &queueSubscriber{queue: make(chan []byte, size), evicted: make(chan struct{})}
}

func (s *queueSubscriber) offer(frame []byte) bool {
	select {
	case s.queue <- frame:
		return true
	default:
		return false
	}
}

// evict and end are each called at most once: the topic calls them only
// for a subscriber it has just removed from its set.
func (s *queueSubscriber) evict() { close(s.evicted) }
func (s *queueSubscriber) end()   { close(s.queue) }

// Close unsubscribes. It is idempotent.
func (sub *Subscription) Close() {
	sub.once.Do(func() { sub.t.unsubscribe(sub.s) })
}

// parseFrame inverts Frame: the id line and the data lines joined by LF.
func parseFrame(f []byte) Event {
	var ev Event
	var data [][]byte
	for _, line := range bytes.Split(bytes.TrimSuffix(f, []byte("\n\n")), []byte("\n")) {
		switch {
		case bytes.HasPrefix(line, []byte("id: ")):
			ev.ID, ev.Epoch, _ = parseEventID(string(line[len("id: "):]))
		case bytes.HasPrefix(line, []byte("data: ")):
			data = append(data, line[len("data: "):])
		}
	}
	ev.Data = bytes.Join(data, []byte("\n"))
	return ev
}
