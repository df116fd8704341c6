package sse

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// DefaultReplaySize is the number of events retained per topic for
	// Last-Event-ID replay; it covers a reconnect after a short network blip
	// or page reload without unbounded memory per topic.
	DefaultReplaySize = 1024
	// DefaultReplayBytes caps the bytes of payload retained per topic (oldest
	// evicted first), so a few large events cannot pin much memory.
	DefaultReplayBytes = 4 << 20
	// DefaultQueueSize is the per-subscriber queue length. A subscriber that
	// falls this far behind is disconnected rather than slowing Publish or
	// buffering without bound; it can resume with Last-Event-ID.
	DefaultQueueSize = 256
	// DefaultHeartbeat is how long a stream may stay silent before a comment
	// is sent, keeping proxies and load balancers (often 30-60s idle
	// timeouts) from closing it and letting Serve notice dead clients.
	DefaultHeartbeat = 15 * time.Second
	// DefaultRetry is sent as the "retry:" field, the WHATWG SSE reconnection
	// time, so browsers reconnect quickly but without hammering the server.
	DefaultRetry = 3 * time.Second
	// DefaultWriteTimeout bounds each write batch so a client that stops
	// reading cannot hold a handler goroutine forever.
	DefaultWriteTimeout = 10 * time.Second
)

var (
	// ErrTopicNotFound is returned by Serve, before anything is written, when
	// the topic is not open (or the broker is closed).
	ErrTopicNotFound = errors.New("sse: topic not found")
	// ErrTooManySubscribers is returned by Serve, before anything is written,
	// when the topic already has the maximum number of subscribers.
	ErrTooManySubscribers = errors.New("sse: too many subscribers")
)

// Option configures a Broker.
type Option func(*Broker)

// WithReplaySize sets how many events a topic retains for replay; n <= 0 keeps the default.
func WithReplaySize(n int) Option { return func(b *Broker) { setPos(&b.replaySize, n) } }

// WithReplayBytes sets the payload byte cap of a topic's replay buffer; n <= 0 keeps the default.
func WithReplayBytes(n int) Option { return func(b *Broker) { setPos(&b.replayBytes, n) } }

// WithQueueSize sets the per-subscriber queue length; n <= 0 keeps the default.
func WithQueueSize(n int) Option { return func(b *Broker) { setPos(&b.queueSize, n) } }

// WithHeartbeat sets the idle interval after which a heartbeat comment is sent; d <= 0 keeps the default.
func WithHeartbeat(d time.Duration) Option { return func(b *Broker) { setPos(&b.heartbeat, d) } }

// WithRetry sets the reconnection delay advertised to clients; d <= 0 keeps the default.
func WithRetry(d time.Duration) Option { return func(b *Broker) { setPos(&b.retry, d) } }

// WithWriteTimeout sets the deadline of each write batch; d <= 0 keeps the default.
func WithWriteTimeout(d time.Duration) Option { return func(b *Broker) { setPos(&b.writeTimeout, d) } }

// WithMaxSubscribers caps concurrent subscribers per topic; 0 (the default) means unlimited.
func WithMaxSubscribers(n int) Option { return func(b *Broker) { b.maxSubs = max(n, 0) } }

// WithLogger sets the logger used for debug diagnostics; nil keeps the discarding default.
func WithLogger(l *slog.Logger) Option {
	return func(b *Broker) {
		if l != nil {
			b.log = l
		}
	}
}

func setPos[T int | time.Duration](dst *T, v T) {
	if v > 0 {
		*dst = v
	}
}

// Broker fans published events out to the subscribers of each topic and
// retains recent events for replay. It is safe for concurrent use. Its only
// goroutines are short-lived writers it owns: per topic with more than a
// few connections, one writer while events are queued (see flushLoop), the
// chunks of a large fan-out (joined by that writer) and, per connection
// whose socket buffer is full, one drainer that exits once the backlog is
// written (Drain waits for them all).
type Broker struct {
	replaySize, replayBytes, queueSize, maxSubs int
	heartbeat, retry, writeTimeout              time.Duration
	log                                         *slog.Logger

	// mu guards topics and closed. Lock order: mu before topic.mu, and mu is
	// never acquired while a topic.mu is held.
	mu     sync.RWMutex
	topics map[string]*topic
	closed bool
	done   chan struct{} // closed by Close; ends every Serve

	published, evicted atomic.Uint64 // for Stats

	// drainers counts goroutines writing a connection's backlog (Serve's
	// own included). A counter, not a WaitGroup: they may start while Drain
	// waits (a heartbeat, a late subscriber), which a WaitGroup forbids.
	drainers atomic.Int64
	// conns are the live connection subscribers, also those of topics
	// already closed (still writing their last events), so Close reaches
	// them all. Guarded by mu.
	conns map[*connSubscriber]struct{}
}

type topic struct {
	mu     sync.Mutex
	events []event // replay ring, oldest first
	bytes  int     // sum of events[i].size
	lastID uint64
	// epoch is "" for the broker's own ids (Publish); topics fed by Append
	// carry their log's epoch in every id (EventID).
	epoch  string
	subs   map[subscriber]struct{}
	closed bool

	// The topic's writer (flushLoop) runs while flushing is set, in rounds:
	// each round writes every connection's queued frames, all of them in one
	// write, while publishers go on queueing for the next round. queued
	// counts the events offered since the running round began and inRound
	// those it writes; room (on mu) wakes publishers waiting for the writer
	// to catch up.
	flushing        bool
	queued, inRound int
	room            sync.Cond
}

func newTopic() *topic {
	t := &topic{subs: make(map[subscriber]struct{})}
	t.room.L = &t.mu
	return t
}

type event struct {
	id    uint64
	size  int    // payload bytes, counted against replayBytes
	frame []byte // framed once, shared by every subscriber and by replay
}

// subscriber is one receiver of a topic's events: a queue drained by its own
// goroutine (queueSubscriber) or a hijacked connection written directly
// (connSubscriber).
type subscriber interface {
	// offer queues a frame without blocking, under the topic lock (which
	// fixes the order of events). false means the subscriber is a whole
	// queue behind and must be evicted.
	offer(frame []byte) bool
	// evict cuts the subscriber off; it sends nothing more.
	evict()
	// end follows CloseTopic or Close: deliver what is queued, then stop.
	end()
}

// flusher is a subscriber whose queued frames Publish writes out itself,
// after releasing the topic lock.
type flusher interface {
	subscriber
	flush()
}

// NewBroker returns a Broker configured by opts.
func NewBroker(opts ...Option) *Broker {
	b := &Broker{
		replaySize:   DefaultReplaySize,
		replayBytes:  DefaultReplayBytes,
		queueSize:    DefaultQueueSize,
		heartbeat:    DefaultHeartbeat,
		retry:        DefaultRetry,
		writeTimeout: DefaultWriteTimeout,
		log:          slog.New(slog.DiscardHandler),
		topics:       make(map[string]*topic),
		done:         make(chan struct{}),
		conns:        make(map[*connSubscriber]struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Open creates the topic if it does not exist yet. It is idempotent and a
// no-op once the broker is closed.
func (b *Broker) Open(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed && b.topics[name] == nil {
		b.topics[name] = newTopic()
	}
}

func (b *Broker) topic(name string) *topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.topics[name] // Close empties the map, so nil once closed.
}

// Publish assigns the topic's next event id (1, 2, 3, ...), retains the event
// for replay and hands it to every subscriber without blocking on any of
// them. A subscriber whose queue is full is evicted instead. Publish returns
// the id, or 0 (and drops the event) if the topic is not open or the broker
// is closed.
func (b *Broker) Publish(name string, data []byte) uint64 {
	id, _ := b.deliver(name, func(t *topic) (uint64, [][]byte) {
		return t.lastID + 1, nil
	}, data)
	return id
}

// Append adds an event whose id was assigned elsewhere: position id of the
// log life epoch (the cluster's shared event log, whose events a node
// mirrors into its local topics). It follows the topic's last event; when
// it does not (another epoch, or ids skipped), the topic starts over there
// and its live subscribers are first sent a reset event, as a resuming
// client would be. The first Append to an empty topic just sets where it
// starts. Append reports whether the topic was open.
func (b *Broker) Append(name string, id uint64, epoch string, data []byte) bool {
	if id == 0 {
		return false
	}
	_, ok := b.deliver(name, func(t *topic) (uint64, [][]byte) {
		if epoch == t.epoch && id == t.lastID+1 {
			return id, nil
		}
		return id, t.rebase(id-1, epoch)
	}, data)
	return ok
}

// Rebase tells the topic that the events up to id of epoch are gone
// without having been seen here (the log's history was trimmed past them or
// lost): the retained events are dropped, live subscribers get a reset
// event, and the next Append continues with id+1. It reports whether the
// topic was open.
func (b *Broker) Rebase(name string, id uint64, epoch string) bool {
	_, ok := b.deliver(name, func(t *topic) (uint64, [][]byte) {
		if epoch == t.epoch && id == t.lastID {
			return id, nil
		}
		return id, t.rebase(id, epoch)
	}, nil)
	return ok
}

// rebase moves the topic's position to (last, epoch), under the topic
// lock, and returns the reset frame its live subscribers need (none when
// the topic had never had an event: nobody can have missed anything).
func (t *topic) rebase(last uint64, epoch string) [][]byte {
	fresh := t.lastID == 0 && t.epoch == "" && len(t.events) == 0
	prev := EventID(t.lastID, t.epoch)
	for i := range t.events {
		t.events[i] = event{}
	}
	t.events, t.bytes = t.events[:0], 0
	t.lastID, t.epoch = last, epoch
	if fresh {
		return nil
	}
	return [][]byte{resetFrame(last, epoch, prev, last+1)}
}

// deliver is the common part of Publish, Append and Rebase: place decides,
// under the topic lock, the new event's id (and any frames to send first);
// nil data only moves the position. ok is false when the topic was not
// open (or closed meanwhile).
func (b *Broker) deliver(name string, place func(*topic) (uint64, [][]byte), data []byte) (id uint64, ok bool) {
	t := b.topic(name)
	if t == nil {
		return 0, false
	}
	id, ok, evicted, inline, startWriter := t.publish(b, place, data)
	for _, s := range evicted {
		b.evicted.Add(1)
		b.log.Debug("sse: evicted slow subscriber", "topic", name, "queue_size", b.queueSize)
		s.evict()
	}
	flushAll(inline)
	if startWriter {
		b.drainers.Add(1) // Drain waits for the last round too
		go t.flushLoop(b)
	}
	return id, ok
}

// inlineFlushMax is the largest fan-out Publish writes itself. Beyond it
// the topic's writer goroutine does the writing, so that the publisher (a
// stream's XMPP reader, parsing the next stanza) and the writes run on two
// cores, and frames queued while a round is written go out together in the
// next one: under a backlog each subscriber gets one write with several
// events instead of one write per event. At or below it a hand-off would
// cost more than the few writes it moves.
const inlineFlushMax = 4

// aheadMax is how many events a topic's publishers may queue before its
// writer has written them; beyond it Publish waits for the current round
// (backpressure onto the stream, as when Publish wrote itself). Half the
// queue, so a subscriber that reads keeps room for the events of a round.
func (b *Broker) aheadMax() int { return max(1, b.queueSize/2) }

// flushLoop is the topic's writer: it writes every connection's queued
// frames, round after round, until a round starts with nothing new
// queued. It is started by the publish that finds it not running; the
// caller counted it in b.drainers.
func (t *topic) flushLoop(b *Broker) {
	defer b.drainers.Add(-1)
	var writers []flusher
	for {
		t.mu.Lock()
		t.inRound = 0
		if t.queued == 0 || t.closed {
			t.flushing, t.queued = false, 0
			t.room.Broadcast()
			t.mu.Unlock()
			return
		}
		t.inRound, t.queued = t.queued, 0
		t.room.Broadcast()
		for s := range t.subs {
			if f, ok := s.(flusher); ok {
				writers = append(writers, f)
			}
		}
		t.mu.Unlock()
		flushAll(writers)
		clear(writers)
		writers = writers[:0]
	}
}

// publish records the event and offers it (after any frames place returns)
// to every subscriber under the topic lock; the slow ones (already
// unsubscribed) are returned to be evicted after the lock is released, and
// so are the connections to write when the fan-out is small enough to
// write inline. Otherwise the topic's writer writes them, and startWriter
// says it must be started. While the writer is aheadMax events behind,
// publish waits for it.
func (t *topic) publish(b *Broker, place func(*topic) (uint64, [][]byte), data []byte) (id uint64, ok bool, evicted []subscriber, inline []flusher, startWriter bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.flushing && t.queued+t.inRound >= b.aheadMax() && !t.closed {
		t.room.Wait()
	}
	if t.closed {
		return 0, false, nil, nil, false
	}
	id, frames := place(t)
	if data != nil {
		t.lastID = id
		b.published.Add(1)
		ev := event{id: id, size: len(data), frame: frame(id, t.epoch, data)}
		t.events = append(t.events, ev)
		t.bytes += ev.size
		for len(t.events) > 0 && (len(t.events) > b.replaySize || t.bytes > b.replayBytes) {
			t.bytes -= t.events[0].size
			t.events[0] = event{} // release the frame; append reallocates the backing array as it drifts
			t.events = t.events[1:]
		}
		frames = append(frames, ev.frame)
	}
	if len(frames) == 0 {
		return id, true, nil, nil, false
	}
	// The connections are collected only while an inline write is still
	// possible; beyond that the writer collects them itself.
	var writers []flusher
	flushers := 0
	for s := range t.subs {
		ok := true
		for _, f := range frames {
			if ok = s.offer(f); !ok {
				break
			}
		}
		if !ok {
			delete(t.subs, s)
			evicted = append(evicted, s)
			continue
		}
		if f, ok := s.(flusher); ok {
			if flushers++; !t.flushing && flushers <= inlineFlushMax {
				writers = append(writers, f)
			}
		}
	}
	switch {
	case flushers == 0:
	case t.flushing: // the running writer takes these in its next round
		t.queued += len(frames)
	case flushers <= inlineFlushMax:
		inline = writers
	default:
		t.flushing, t.queued, startWriter = true, len(frames), true
	}
	return id, true, evicted, inline, startWriter
}

// fanOutChunk is how many connections one goroutine writes in a large
// fan-out. Each write is one non-blocking syscall (a few µs); below this
// many, a goroutine hand-off would cost more than it saves.
const fanOutChunk = 256

// flushAll writes the queued frames of every connection: inline when there
// are few, else split over GOMAXPROCS goroutines (joined before returning),
// because one event to thousands of subscribers is thousands of syscalls.
func flushAll(writers []flusher) {
	if len(writers) <= fanOutChunk {
		for _, f := range writers {
			f.flush()
		}
		return
	}
	workers := min(runtime.GOMAXPROCS(0), (len(writers)+fanOutChunk-1)/fanOutChunk)
	per := (len(writers) + workers - 1) / workers
	var wg sync.WaitGroup
	for start := per; start < len(writers); start += per {
		part := writers[start:min(start+per, len(writers))]
		wg.Go(func() {
			for _, f := range part {
				f.flush()
			}
		})
	}
	for _, f := range writers[:per] {
		f.flush()
	}
	wg.Wait()
}

// CloseTopic drops the topic and its replay buffer. Each subscriber is first
// sent what is already queued for it, then it ends. It is idempotent.
func (b *Broker) CloseTopic(name string) {
	b.mu.Lock()
	t := b.topics[name]
	delete(b.topics, name)
	b.mu.Unlock()
	if t == nil {
		return
	}
	for _, s := range t.close() {
		s.end()
	}
}

// close marks the topic closed, drops its buffer and returns its subscribers.
func (t *topic) close() []subscriber {
	t.mu.Lock()
	defer t.mu.Unlock()
	subs := make([]subscriber, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.closed = true // a Publish that already looked the topic up drops its event
	t.subs, t.events, t.bytes = nil, nil, 0
	t.room.Broadcast() // publishers waiting for the writer give up
	return subs
}

// Subscribers reports how many subscribers the topic currently has.
func (b *Broker) Subscribers(name string) int {
	t := b.topic(name)
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

// LastID reports the id of the topic's most recent event, or 0.
func (b *Broker) LastID(name string) uint64 {
	t := b.topic(name)
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastID
}

// Close ends every subscriber promptly, without waiting for queued events,
// and drops all topics; later Open and Publish calls are no-ops. To deliver
// final events first, CloseTopic the topics and Drain before Close. It is
// idempotent.
func (b *Broker) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	close(b.done)
	topics, conns := b.topics, b.conns
	b.topics, b.conns = map[string]*topic{}, map[*connSubscriber]struct{}{}
	b.mu.Unlock()
	for _, t := range topics {
		t.close() // queue readers watch b.done
	}
	for c := range conns { // connections have no reader to tell
		c.evict()
	}
}

// track registers a live connection subscriber for Close; false once the
// broker is closed.
func (b *Broker) track(c *connSubscriber) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *Broker) untrack(c *connSubscriber) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.conns, c)
}

// Drain waits until no connection subscriber is still writing a backlog
// (after CloseTopic, say; each write is bounded by the write timeout), or
// until ctx is done.
func (b *Broker) Drain(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for b.drainers.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// subscribe registers s and snapshots the replay under the topic lock, so no
// event can fall between replay and live delivery or appear in both.
func (t *topic) subscribe(s subscriber, lastEventID string, maxSubs int) ([][]byte, error) {
	replay, gone, err := t.register(s, lastEventID, maxSubs)
	for _, c := range gone {
		c.close(errPeerClosed)
	}
	return replay, err
}

// register is subscribe's locked part. At the subscriber cap it first drops
// connections whose clients have hung up (no goroutine reads them, so the
// next heartbeat would be the first to notice); they are returned to be
// closed once the lock is released.
func (t *topic) register(s subscriber, lastEventID string, maxSubs int) ([][]byte, []*connSubscriber, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, nil, ErrTopicNotFound
	}
	var gone []*connSubscriber
	if maxSubs > 0 && len(t.subs) >= maxSubs {
		for old := range t.subs {
			if c, ok := old.(*connSubscriber); ok && c.gone() {
				delete(t.subs, old)
				gone = append(gone, c)
			}
		}
		if len(t.subs) >= maxSubs {
			return nil, gone, ErrTooManySubscribers
		}
	}
	t.subs[s] = struct{}{}

	var oldest uint64
	resetID := t.lastID
	if len(t.events) > 0 {
		oldest = t.events[0].id
		resetID = oldest - 1
	}
	frames := make([][]byte, 0, len(t.events)+1)
	var after uint64 // replay events with id > after; no id means everything retained
	if lastEventID != "" {
		l, epoch, err := parseEventID(lastEventID)
		// Resumable only if it is a position in this life of the log (a
		// bare integer when the topic has no epoch), nothing after l was
		// evicted and l is not from the future.
		ok := err == nil && epoch == t.epoch && l <= t.lastID && (l == t.lastID || len(t.events) > 0 && l >= oldest-1)
		if ok {
			after = l
		} else {
			frames = append(frames, resetFrame(resetID, t.epoch, lastEventID, oldest))
		}
	}
	for _, ev := range t.events {
		if ev.id > after {
			frames = append(frames, ev.frame)
		}
	}
	return frames, gone, nil
}

func (t *topic) unsubscribe(s subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.subs, s) // no-op if already evicted or the topic was closed
}
