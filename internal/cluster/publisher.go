package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of an EventPublisher.
const (
	// publishQueue is how many events of one stream may wait for Redis;
	// beyond it Publish waits (the stream's reader slows down, the XMPP
	// server buffers) rather than dropping.
	publishQueue = 1024
	// publishWait bounds that wait: a Redis gone for longer than this with
	// a full queue costs events (counted in Dropped, logged) instead of
	// wedging the stream.
	publishWait = 10 * time.Second
	// closeWait bounds CloseTopic's wait for the queue to reach Redis.
	closeWait = 5 * time.Second
)

// EventPublisher is the gateway's event sink in cluster mode
// (gateway.Publisher): each stream's events go, in order, to the stream's
// log in Redis (Cluster.Publish, fenced with the stream's lease), from
// where every node's Relay serves them. Ids are assigned in Redis, so they
// keep increasing whichever node owns the stream. One goroutine per open
// stream writes its queue; CloseTopic ends it after writing the log's end
// marker.
type EventPublisher struct {
	c      *Cluster
	fences Fences
	hub    *Hub // this node's, for provisional deliveries; nil = none
	log    *slog.Logger
	// Fenced, when set (before the first Open), is told of a stream whose
	// log this node may no longer write: another node owns the stream.
	Fenced func(streamID string)

	mu     sync.Mutex
	queues map[string]*publishQueueState
	closed bool

	dropped     atomic.Uint64
	provisional atomic.Uint64
}

type publishQueueState struct {
	ch      chan []byte // nil entry = the end marker
	closing atomic.Bool
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
}

// endMarker is the payload that ends a log: a real event is never empty.
var endMarker = []byte{}

// Fences gives the lease fence of each stream this node registered
// (GatewayRegistry).
type Fences interface {
	Fence(streamID string) (LeaseFence, bool)
}

// NewEventPublisher returns the cluster-mode gateway.Publisher. hub is
// this node's Hub, through which its own subscribers get a stream's events
// while Redis does not answer (nil: they wait for Redis).
func (c *Cluster) NewEventPublisher(fences Fences, hub *Hub, log *slog.Logger) *EventPublisher {
	return &EventPublisher{c: c, fences: fences, hub: hub, log: log, queues: map[string]*publishQueueState{}}
}

// Open starts the stream's queue. It is idempotent.
func (p *EventPublisher) Open(topic string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.queues[topic] != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &publishQueueState{ch: make(chan []byte, publishQueue), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	p.queues[topic] = q
	go p.drain(topic, q) // exits at the end marker or when q.ctx ends
}

// Publish queues one event for the stream's log. The id is assigned in
// Redis later, so it returns 0.
func (p *EventPublisher) Publish(topic string, data []byte) uint64 {
	p.mu.Lock()
	q := p.queues[topic]
	p.mu.Unlock()
	if q == nil || q.closing.Load() || len(data) == 0 {
		return 0
	}
	p.enqueue(topic, q, data)
	return 0
}

func (p *EventPublisher) enqueue(topic string, q *publishQueueState, data []byte) bool {
	select {
	case q.ch <- data:
		return true
	default:
	}
	t := time.NewTimer(publishWait)
	defer t.Stop()
	select {
	case q.ch <- data:
		return true
	case <-q.ctx.Done():
	case <-t.C:
	}
	p.dropped.Add(1)
	p.log.Warn("cluster: event dropped: the stream's log in Redis is not being written", slog.String("stream", short(topic)))
	return false
}

// CloseTopic writes the end marker after the queued events (so every
// node's mirror ends the stream's subscribers once they have everything),
// waits up to closeWait for that to reach Redis and stops the queue.
func (p *EventPublisher) CloseTopic(topic string) {
	p.mu.Lock()
	q := p.queues[topic]
	delete(p.queues, topic)
	p.mu.Unlock()
	if q == nil {
		return
	}
	q.closing.Store(true)
	if p.enqueue(topic, q, endMarker) {
		t := time.NewTimer(closeWait)
		select {
		case <-q.done:
		case <-t.C:
		}
		t.Stop()
	}
	q.cancel()
	<-q.done
}

// Subscribers reports 1 when some node serves the stream's events (its
// watchers set), else 0: the gateway's idle timeout only needs to know
// whether anyone listens. While Redis does not answer it says 1, so an
// outage never idles streams out.
func (p *EventPublisher) Subscribers(topic string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	watched, err := p.c.Watched(ctx, topic)
	if err != nil || watched {
		return 1
	}
	return 0
}

// Dropped counts events lost because Redis stayed away with a full queue.
func (p *EventPublisher) Dropped() uint64 { return p.dropped.Load() }

// Provisional counts events this node's subscribers got before Redis had
// them (during an outage).
func (p *EventPublisher) Provisional() uint64 { return p.provisional.Load() }

// Close stops every queue without waiting for Redis. It is idempotent.
func (p *EventPublisher) Close() {
	p.mu.Lock()
	p.closed = true
	qs := p.queues
	p.queues = map[string]*publishQueueState{}
	p.mu.Unlock()
	for _, q := range qs {
		q.cancel()
		<-q.done
	}
}

// drain writes the stream's queue to its log in order, retrying while
// Redis does not answer; a stale fence (another node owns the stream now)
// or a vanished record ends it: this node must not write that log again.
//
// While Redis does not answer, the events keep coming off the queue into
// a pending list (up to publishQueue more) and go to this node's own
// subscribers at once with the offsets Redis will give them (Hub.provisional):
// this node is the stream's only writer, so the log's next offsets are
// known. They reach the log in the same order when Redis is back; if they
// cannot (fenced), the subscribers are reset (Hub.abandon).
func (p *EventPublisher) drain(topic string, q *publishQueueState) {
	defer close(q.done)
	var (
		pending   [][]byte
		delivered int    // how many of pending the local subscribers got
		top       uint64 // the log's last offset and epoch, from the last publish
		epoch     string
		fenced    bool // the registry gave a fence for the stream
	)
	defer func() {
		if delivered > 0 && p.hub != nil {
			p.hub.abandon(topic) // stopped before they reached Redis
		}
	}()
	take := func(data []byte) { pending = append(pending, data) }
	for {
		if len(pending) == 0 {
			select {
			case <-q.ctx.Done():
				return
			case data := <-q.ch:
				take(data)
			}
		}
		for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
			// Looked up for every try: Restore gives a stream a new fence
			// while its publishes are being retried.
			fence, ok := p.fences.Fence(topic)
			switch {
			case ok:
				fenced = true
			case fenced:
				// The registry forgot the fence it gave: the stream moved to
				// another node (a state save met the new owner's fence). Its
				// log is the new owner's now; a zero fence would write into it
				// unchecked (an end marker there ends every mirror).
				p.log.Warn("cluster: this node no longer owns the stream's log; its events are not published",
					slog.String("stream", short(topic)))
				q.cancel()
				return
			}
			ctx, cancel := context.WithTimeout(q.ctx, 2*time.Second)
			off, ep, err := p.c.publishAfter(ctx, topic, pending[0], fence, top, epoch)
			cancel()
			if err == nil {
				if len(pending[0]) == 0 {
					return // the end marker is written: the log is complete
				}
				top, epoch = off, ep
				pending[0] = nil
				pending = pending[1:]
				delivered = max(delivered-1, 0)
				break
			}
			// ErrNotRegistered is retried like an outage: Redis may have
			// lost its data, and GatewayRegistry.Restore writes the record
			// again (a stream that ended has its queue closed anyway).
			if errors.Is(err, ErrFenced) {
				p.log.Warn("cluster: this node no longer owns the stream's log; its events are not published",
					slog.String("stream", short(topic)), slog.String("error", err.Error()))
				q.cancel()
				if p.Fenced != nil {
					p.Fenced(topic)
				}
				return
			}
			p.log.Debug("cluster: publishing an event, retrying", slog.String("error", err.Error()))
			delivered = p.deliverLocally(topic, pending, delivered, top, epoch)
			t := time.NewTimer(wait)
		waiting:
			for {
				ch := q.ch
				if len(pending) >= publishQueue {
					ch = nil // full: the queue fills, Publish waits
				}
				select {
				case <-q.ctx.Done():
					t.Stop()
					return
				case data := <-ch:
					take(data)
					delivered = p.deliverLocally(topic, pending, delivered, top, epoch)
				case <-t.C:
					break waiting
				}
			}
		}
	}
}

// deliverLocally hands the pending events the local subscribers did not
// get yet to them (Hub.provisional), and returns how many they have got.
// It needs the log's position (a first publish must have succeeded) and
// stops at the end marker, which only the log may carry.
func (p *EventPublisher) deliverLocally(topic string, pending [][]byte, delivered int, top uint64, epoch string) int {
	if p.hub == nil || epoch == "" {
		return delivered
	}
	for ; delivered < len(pending) && len(pending[delivered]) > 0; delivered++ {
		p.hub.provisional(topic, Event{Offset: top + uint64(delivered) + 1, Epoch: epoch, Payload: pending[delivered]})
		p.provisional.Add(1)
	}
	return delivered
}

// short is a stream id as logs show it: its first 8 characters.
func short(id string) string { return id[:min(8, len(id))] }
