package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Hub is a node's one pub/sub connection, shared by every Subscription and
// revocation watch on the node: it SUBSCRIBEs a channel while at least one
// local listener wants it and UNSUBSCRIBEs it after the last one left.
//
// Pub/sub is fire-and-forget (a disconnected client misses messages), so
// the Hub tells its listeners to resync whenever it may have missed
// something: after a reconnect, once a channel is subscribed again, and
// when a listener's bounded inbox overflowed. Listeners resync from the
// event log, which holds everything pub/sub carried.
type Hub struct {
	c      *Cluster
	ctx    context.Context // ends the Hub's goroutines
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	ps     *redis.PubSub
	chans  map[string]*hubChan
	closed bool

	lastSeen   atomic.Int64 // unix ns of the last reply on the connection
	reconnects atomic.Int64
}

// Reconnects counts how often the Hub replaced its connection (for
// /metrics).
func (h *Hub) Reconnects() int64 { return h.reconnects.Load() }

// chanState is where a channel is in SUBSCRIBE/UNSUBSCRIBE; at most one of
// the two is in flight per channel, so every confirmation Redis sends can
// be matched to the command it answers.
type chanState int

const (
	subscribing   chanState = iota // SUBSCRIBE sent, confirmation awaited
	subscribed                     // confirmed: messages flow
	unsubscribing                  // UNSUBSCRIBE sent, confirmation awaited
)

type hubChan struct {
	state chanState
	// ready is closed at the channel's first confirmation; listeners that
	// join wait on it before reading history (subscribe, then read).
	ready     chan struct{}
	everReady bool
	ls        map[*listener]struct{}
}

// listener is one local consumer of a channel: a bounded inbox of
// messages and a wake-up for "you may have missed messages: resync".
type listener struct {
	inbox chan frame
	wake  chan struct{}
}

// frame is what a listener receives: a pub/sub message, or what this
// node's own EventPublisher hands its listeners while Redis does not
// answer (Hub.provisional, Hub.abandon).
type frame struct {
	raw   string // the pub/sub message, when local is nil
	local *localFrame
}

// localFrame is an event of a stream this node owns that could not reach
// Redis yet: delivered to the node's own subscribers now, with the offset
// Redis will give it (Subscription matches the two up), or, with abandon,
// word that such events will never reach the log (the node lost the
// stream meanwhile), so subscribers must be reset.
type localFrame struct {
	ev      Event
	abandon bool
}

func newListener(size int) *listener {
	return &listener{inbox: make(chan frame, size), wake: make(chan struct{}, 1)}
}

// offer never blocks the Hub's receive loop: a full inbox turns into a
// resync, which re-reads the missed events from the log.
func (l *listener) offer(f frame) {
	select {
	case l.inbox <- f:
	default:
		l.resync()
	}
}

func (l *listener) resync() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// NewHub starts the node's pub/sub connection (lazily dialled) and its two
// goroutines, the receive loop and the liveness watchdog. Close ends them.
func (c *Cluster) NewHub() *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{c: c, ctx: ctx, cancel: cancel, chans: map[string]*hubChan{}}
	h.ps = c.rdb.Subscribe(ctx)
	h.lastSeen.Store(time.Now().UnixNano())
	h.wg.Add(2)
	go h.receiveLoop()
	go h.watchdog()
	return h
}

// Close ends every Subscription and watch of the Hub and its goroutines,
// and closes the connection. It is idempotent.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.cancel()
	err := h.ps.Close() // interrupts a blocked Receive
	h.mu.Unlock()
	h.wg.Wait()
	if errors.Is(err, redis.ErrClosed) {
		err = nil
	}
	return err
}

// join adds l to the channel and returns once Redis confirmed the
// subscription (or ctx ends), so history read afterwards cannot miss an
// event published between the read and the subscription.
func (h *Hub) join(ctx context.Context, name string, l *listener) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrClosed
	}
	ch := h.chans[name]
	send := false
	if ch == nil {
		ch = &hubChan{state: subscribing, ready: make(chan struct{}), ls: map[*listener]struct{}{}}
		h.chans[name] = ch
		send = true
	}
	// In unsubscribing the confirmation handler subscribes again, since
	// the channel has a listener by then.
	ch.ls[l] = struct{}{}
	ready, ps := ch.ready, h.ps
	h.mu.Unlock()
	if send {
		// A failed write is retried by the reconnect that follows it, which
		// subscribes every channel with listeners.
		_ = ps.Subscribe(ctx, name)
	}
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		h.leave(name, l)
		return ctx.Err()
	case <-h.ctx.Done():
		h.leave(name, l)
		return ErrClosed
	}
}

// leave removes l; the last listener's departure unsubscribes the channel.
func (h *Hub) leave(name string, l *listener) {
	h.mu.Lock()
	ch := h.chans[name]
	if ch == nil {
		h.mu.Unlock()
		return
	}
	delete(ch.ls, l)
	send := len(ch.ls) == 0 && ch.state == subscribed && !h.closed
	if send {
		h.unsubscribingLocked(ch)
	}
	ps := h.ps
	h.mu.Unlock()
	if send {
		ctx, cancel := context.WithTimeout(h.ctx, 5*time.Second)
		_ = ps.Unsubscribe(ctx, name) // on failure the reconnect drops it
		cancel()
	}
}

// unsubscribingLocked marks ch as unsubscribing; listeners joining now wait
// for the new subscription rather than the old one's readiness.
func (h *Hub) unsubscribingLocked(ch *hubChan) {
	ch.state = unsubscribing
	ch.ready = make(chan struct{})
	ch.everReady = false
}

func (h *Hub) receiveLoop() {
	defer h.wg.Done()
	backoff := time.Duration(0)
	for {
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		msg, err := ps.Receive(h.ctx)
		if h.ctx.Err() != nil {
			return
		}
		if err != nil {
			// Lost connection, or the watchdog closed a silent one: start
			// over on a new connection after a pause that grows while Redis
			// stays away (50 ms to 2 s).
			backoff = min(max(2*backoff, 50*time.Millisecond), 2*time.Second)
			select {
			case <-h.ctx.Done():
				return
			case <-time.After(backoff):
			}
			h.reconnect()
			continue
		}
		backoff = 0
		h.lastSeen.Store(time.Now().UnixNano())
		h.handle(msg)
	}
}

// reconnect replaces the PubSub and subscribes again every channel that
// has listeners; their confirmations trigger the listeners' resync.
func (h *Hub) reconnect() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	old := h.ps
	h.ps = h.c.rdb.Subscribe(h.ctx)
	h.reconnects.Add(1)
	var names []string
	for name, ch := range h.chans {
		if len(ch.ls) == 0 {
			delete(h.chans, name)
			continue
		}
		ch.state = subscribing
		names = append(names, name)
	}
	ps := h.ps
	h.lastSeen.Store(time.Now().UnixNano())
	h.mu.Unlock()
	_ = old.Close()
	if len(names) > 0 {
		_ = ps.Subscribe(h.ctx, names...) // a failure shows up in Receive
	}
}

func (h *Hub) handle(msg any) {
	var resub, unsub string
	h.mu.Lock()
	switch m := msg.(type) {
	case *redis.Message:
		if ch := h.chans[m.Channel]; ch != nil {
			for l := range ch.ls {
				l.offer(frame{raw: m.Payload})
			}
		}
	case *redis.Subscription:
		ch := h.chans[m.Channel]
		if ch == nil {
			break
		}
		switch {
		case m.Kind == "subscribe" && ch.state == subscribing:
			ch.state = subscribed
			if !ch.everReady {
				ch.everReady = true
				close(ch.ready)
			} else {
				// Subscribed again after a reconnect: whatever was published
				// in between is only in the log.
				for l := range ch.ls {
					l.resync()
				}
			}
			if len(ch.ls) == 0 {
				h.unsubscribingLocked(ch)
				unsub = m.Channel
			}
		case m.Kind == "subscribe" && ch.state == subscribed:
			// A duplicate confirmation (go-redis resubscribed on its own).
			for l := range ch.ls {
				l.resync()
			}
		case m.Kind == "unsubscribe" && ch.state == unsubscribing:
			if len(ch.ls) == 0 {
				delete(h.chans, m.Channel)
			} else {
				ch.state = subscribing
				resub = m.Channel
			}
		}
	}
	ps := h.ps
	h.mu.Unlock()
	if resub != "" {
		_ = ps.Subscribe(h.ctx, resub)
	}
	if unsub != "" {
		_ = ps.Unsubscribe(h.ctx, unsub)
	}
}

// provisional hands ev, an event of streamID this node could not publish
// yet, to the node's own listeners of the stream (issue 18: while Redis is
// down a node keeps serving the streams it owns to its local subscribers).
func (h *Hub) provisional(streamID string, ev Event) {
	h.local(streamID, &localFrame{ev: ev})
}

// abandon tells the node's listeners of streamID that the provisional
// events they got will never be in the stream's log.
func (h *Hub) abandon(streamID string) {
	h.local(streamID, &localFrame{abandon: true})
}

func (h *Hub) local(streamID string, lf *localFrame) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.chans[h.c.keys.Channel(streamID)]; ch != nil {
		for l := range ch.ls {
			l.offer(frame{local: lf})
		}
	}
}

// watchdog pings the connection every PingInterval and closes it when
// nothing came back for three intervals: a hung or paused Redis keeps the
// TCP connection open, and Receive would wait forever.
func (h *Hub) watchdog() {
	defer h.wg.Done()
	every := h.c.cfg.PingInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		if time.Since(time.Unix(0, h.lastSeen.Load())) > 3*every {
			_ = ps.Close() // Receive fails and the loop reconnects
			continue
		}
		ctx, cancel := context.WithTimeout(h.ctx, every)
		_ = ps.Ping(ctx)
		cancel()
	}
}
