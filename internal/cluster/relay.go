package cluster

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// LocalTopics is where a Relay mirrors the cluster's event logs: the node's
// SSE broker (sse.Broker), whose topics then serve SSE and WebSocket
// subscribers exactly as in single-node mode, with the log's ids.
type LocalTopics interface {
	Open(topic string)
	Append(topic string, id uint64, epoch string, data []byte) bool
	Rebase(topic string, id uint64, epoch string) bool
	CloseTopic(topic string)
}

// DefaultRelayLinger is how long a Relay keeps mirroring a stream after
// its last local subscriber left: a page reload or an EventSource
// reconnect finds the mirror still warm.
const DefaultRelayLinger = 10 * time.Second

// Relay mirrors, on one node, the event logs of the streams that have
// subscribers on this node, whichever node owns them: one Subscription per
// stream (subscribe first, then read the history, so nothing falls between
// replay and live) feeding the local topic of that stream id. A node
// subscribes only to the streams it has subscribers for. While a stream is
// mirrored its id is kept in the stream's watchers set, so its owner knows
// someone is listening (EventPublisher.Subscribers, the idle timeout).
type Relay struct {
	c      *Cluster
	hub    *Hub
	topics LocalTopics
	log    *slog.Logger
	linger time.Duration

	ctx    context.Context // ends the mirrors and the watcher refresh
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	mirrors  map[string]*mirror
	stopping map[string]*mirror // stopped mirrors whose goroutine has not exited yet
	closed   bool
}

type mirror struct {
	id     string
	refs   int
	ready  chan struct{} // closed once the log's history is in the topic, or on failure
	err    error         // why it failed or ended; set before ready closes, or with ended
	ended  bool          // the owner's end marker was read
	cancel context.CancelFunc
	done   chan struct{} // closed when the goroutine exited and the topic is closed
	exited bool          // the goroutine is past its cleanup (guarded by Relay.mu)
	linger *time.Timer
}

// NewRelay starts a Relay over hub feeding topics; linger 0 means
// DefaultRelayLinger. Close ends it.
func (c *Cluster) NewRelay(hub *Hub, topics LocalTopics, linger time.Duration, log *slog.Logger) *Relay {
	if linger <= 0 {
		linger = DefaultRelayLinger
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Relay{c: c, hub: hub, topics: topics, log: log, linger: linger, ctx: ctx, cancel: cancel,
		mirrors: map[string]*mirror{}, stopping: map[string]*mirror{}}
	r.wg.Add(1)
	go r.refreshWatchers()
	return r
}

// Acquire makes sure the stream's events are mirrored into the local topic
// named by its id, and returns once that topic holds the log's history (so
// a Last-Event-ID can be judged against it), or ctx's error. Call release
// when the subscriber is gone (once; later calls do nothing). It fails with
// ErrStreamEnded when the log ends with its owner's end marker, and ErrClosed
// after Close.
func (r *Relay) Acquire(ctx context.Context, streamID string) (release func(), err error) {
	if err := checkStreamID(streamID); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	m := r.mirrors[streamID]
	if m == nil {
		m = r.startLocked(streamID)
	}
	m.refs++
	if m.linger != nil {
		m.linger.Stop()
		m.linger = nil
	}
	r.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { r.release(m) }) }

	select {
	case <-m.ready:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	r.mu.Lock()
	err = m.err
	r.mu.Unlock()
	if err != nil {
		release()
		return nil, err
	}
	return release, nil
}

// startLocked creates the stream's mirror and its goroutine, which first
// waits for a previous mirror of the same stream to have closed its topic.
func (r *Relay) startLocked(id string) *mirror {
	ctx, cancel := context.WithCancel(r.ctx)
	m := &mirror{id: id, ready: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	r.mirrors[id] = m
	prev := r.stopping[id]
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if prev != nil {
			<-prev.done
		}
		r.run(ctx, m)
	}()
	return m
}

func (r *Relay) release(m *mirror) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.refs--
	if m.refs > 0 || r.mirrors[m.id] != m {
		return
	}
	if m.err != nil {
		r.stopLocked(m) // ended or failed: nothing to keep warm
		return
	}
	m.linger = time.AfterFunc(r.linger, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if m.refs == 0 && r.mirrors[m.id] == m {
			r.stopLocked(m)
		}
	})
}

func (r *Relay) stopLocked(m *mirror) {
	delete(r.mirrors, m.id)
	if !m.exited { // else its goroutine already wound down (the log ended)
		r.stopping[m.id] = m
	}
	m.cancel()
}

// stoppingCount is how many stopped mirrors still wind down (for tests).
func (r *Relay) stoppingCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.stopping)
}

// run is a mirror's goroutine: the stream's Subscription into its topic,
// until the mirror is stopped or the log ends.
func (r *Relay) run(ctx context.Context, m *mirror) {
	r.topics.Open(m.id)
	defer func() {
		r.topics.CloseTopic(m.id)
		r.unwatch(m.id)
		r.mu.Lock()
		m.exited = true
		if r.stopping[m.id] == m {
			delete(r.stopping, m.id)
		}
		if m.err == nil {
			m.err = ErrClosed
		}
		r.mu.Unlock()
		select {
		case <-m.ready:
		default:
			close(m.ready)
		}
		close(m.done)
	}()
	r.watch(ctx, m.id)
	sub, err := r.hub.Subscribe(ctx, m.id, 0, "", 0)
	if err != nil {
		r.fail(m, err)
		return
	}
	defer sub.Close()
	for ev := range sub.C {
		switch {
		case ev.Synced:
			close(m.ready)
		case ev.Reset:
			r.topics.Rebase(m.id, ev.Offset, ev.Epoch)
		case len(ev.Payload) == 0:
			// The owner's end marker (EventPublisher.CloseTopic): the
			// topic's subscribers get what is queued, then end.
			r.mu.Lock()
			m.ended, m.err = true, ErrStreamEnded
			if m.refs == 0 && r.mirrors[m.id] == m {
				r.stopLocked(m)
			}
			r.mu.Unlock()
			select {
			case <-m.ready:
			default: // the history ended with the marker
				close(m.ready)
			}
			return
		default:
			r.topics.Append(m.id, ev.Offset, ev.Epoch, ev.Payload)
		}
	}
}

func (r *Relay) fail(m *mirror, err error) {
	r.mu.Lock()
	m.err = err
	if r.mirrors[m.id] == m {
		r.stopLocked(m)
	}
	r.mu.Unlock()
}

// watcherTTL is how long a watchers entry outlives its last refresh: a few
// lease intervals, so a node that died stops counting soon after.
func (r *Relay) watcherTTL() time.Duration { return 3 * r.c.cfg.LeaseTTL }

func (r *Relay) watch(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := r.addWatchers(ctx, []string{id}); err != nil {
		r.log.Debug("cluster: marking a stream watched", slog.String("error", err.Error()))
	}
}

func (r *Relay) unwatch(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.c.rdb.ZRem(ctx, r.c.keys.Watchers(id), r.c.cfg.Node).Err() // else it expires
}

// addWatchers records this node in the watchers set of each stream, in
// one pipelined round trip.
func (r *Relay) addWatchers(ctx context.Context, ids []string) error {
	ttl := r.watcherTTL()
	until := float64(time.Now().Add(ttl).UnixMilli())
	_, err := r.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			key := r.c.keys.Watchers(id)
			p.ZAdd(ctx, key, redis.Z{Score: until, Member: r.c.cfg.Node})
			p.PExpire(ctx, key, ttl)
		}
		return nil
	})
	return err
}

// refreshWatchers renews this node's watchers entries every lease renew
// interval until Close.
func (r *Relay) refreshWatchers() {
	defer r.wg.Done()
	t := time.NewTicker(r.c.cfg.LeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		r.mu.Lock()
		ids := make([]string, 0, len(r.mirrors))
		for id := range r.mirrors {
			ids = append(ids, id)
		}
		r.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.c.cfg.LeaseRenew)
		if err := r.addWatchers(ctx, ids); err != nil {
			r.log.Debug("cluster: renewing watched streams", slog.String("error", err.Error()))
		}
		cancel()
	}
}

// Watched reports whether any live node has subscribers to the stream's
// events (its watchers set has an unexpired entry).
func (c *Cluster) Watched(ctx context.Context, streamID string) (bool, error) {
	n, err := c.rdb.ZCount(ctx, c.keys.Watchers(streamID),
		strconv.FormatInt(time.Now().UnixMilli(), 10), "+inf").Result()
	return n > 0, err
}

// Mirrored reports how many streams the Relay mirrors now (for /metrics).
func (r *Relay) Mirrored() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.mirrors)
}

// Close stops every mirror (their topics close: local subscribers get what
// is queued, then end, and reconnect elsewhere) and waits for the Relay's
// goroutines. It is idempotent.
func (r *Relay) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	for _, m := range r.mirrors {
		if m.linger != nil {
			m.linger.Stop()
		}
		r.stopLocked(m)
	}
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}
