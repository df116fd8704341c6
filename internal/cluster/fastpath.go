package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/gateway"
)

// The workgroup queues (fastpath) of a cluster run on one node at a time,
// the leader, which holds the fastpath lease (issue 17 item 6, issue 18):
// one engine keeps every queue whole (an asker on one node meets an agent
// on another), and its state is in Redis after every change, so a node
// that takes the lease over resumes the queues: waiting users keep their
// positions, pending offers are made again (fastpath.Restore).
//
// The lease is the key Keys.FastpathLeader, "<node> <epoch> <address>"
// with a PX TTL of Config.LeaseTTL; the epoch (Keys.FastpathEpoch, raised
// by each new leader) fences the state writes, so a leader that lost the
// lease (paused, partitioned) cannot overwrite its successor's state.

// acquireFastpathScript takes the lease if free, or renews it if this node
// holds it. KEYS: leader, epoch. ARGV: node, address, ttl ms. Returns the
// lease epoch this node holds, 0 if another node leads.
var acquireFastpathScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur then
  local node, epoch = string.match(cur, '^(%S+) (%d+) ')
  if node == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[3])
    return tonumber(epoch)
  end
  return 0
end
local epoch = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch .. ' ' .. ARGV[2], 'PX', ARGV[3])
return epoch
`)

// renewFastpathScript renews the lease only for the holder of that epoch.
// KEYS: leader. ARGV: "<node> <epoch> <address>", ttl ms. 1 = renewed.
var renewFastpathScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`)

// releaseFastpathScript drops the lease if this node still holds it.
// KEYS: leader. ARGV: the lease value.
var releaseFastpathScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
`)

// saveFastpathScript writes the engine state if the caller still holds
// the lease of its epoch. KEYS: leader, state. ARGV: lease value, state.
var saveFastpathScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED fastpath lease lost') end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`)

// FastpathLeader runs this node's part of the cluster's workgroup queues:
// it competes for the lease, and while it holds it runs the engine with
// the state from Redis, saving it after every change.
type FastpathLeader struct {
	c     *Cluster
	beat  *Heartbeat
	seed  []fastpath.Workgroup
	opts  fastpath.Options
	hooks fastpath.Hooks
	log   *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	svc     *fastpath.Service // nil while another node leads
	lease   string            // the lease value held, "" = none
	until   time.Time         // start of the last successful take or renewal + TTL
	saved   uint64            // the engine Version last written
	stopped bool
}

// NewFastpathLeader returns this node's part of the cluster's queues;
// Start begins competing for the lease. seed are the workgroups the first
// leader of a cluster starts with (XMPPGW_WORKGROUPS_FILE) when Redis has
// no state yet.
func (c *Cluster) NewFastpathLeader(beat *Heartbeat, seed []fastpath.Workgroup, opts fastpath.Options, log *slog.Logger) *FastpathLeader {
	return &FastpathLeader{c: c, beat: beat, seed: seed, opts: opts, log: log, done: make(chan struct{})}
}

// Start competes for the fastpath lease every lease renewal while the
// node's own lease holds (unlike stream takeovers, a node need not be
// Steady: taking a lease nobody holds moves no stream, and a leader that
// comes back from an outage to find it taken just steps down); hooks connect the engine, when it runs here, to
// the cluster's streams. Stop ends it.
func (l *FastpathLeader) Start(hooks fastpath.Hooks) {
	ctx, cancel := context.WithCancel(context.Background())
	l.mu.Lock()
	l.hooks, l.cancel = hooks, cancel
	l.mu.Unlock()
	go l.run(ctx) // exits when Stop cancels ctx
}

// Local is the engine when this node leads, else nil.
func (l *FastpathLeader) Local() *fastpath.Service {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.svc
}

// LeaderAddr is the internal address of the node leading the queues; ""
// when no node holds the lease (between a leader's death and its
// successor's start).
func (l *FastpathLeader) LeaderAddr(ctx context.Context) (string, error) {
	v, err := l.c.rdb.Get(ctx, l.c.keys.FastpathLeader()).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cluster: fastpath leader: %w", err)
	}
	parts := strings.SplitN(v, " ", 3)
	if len(parts) != 3 {
		return "", fmt.Errorf("cluster: fastpath leader: malformed lease %q", v)
	}
	return parts[2], nil
}

// Persist writes the state of svc, the engine a call ran on, if it
// changed since the last write (a leader calls it after each request, so
// what it answered survives its death). It fails with ErrNotFastpathLeader
// when svc no longer runs the queues (the node stepped down while the call
// ran): the call must not answer as if its change were kept. A lost lease
// stops the engine here.
func (l *FastpathLeader) Persist(ctx context.Context, svc *fastpath.Service) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if svc == nil || svc != l.svc {
		return ErrNotFastpathLeader
	}
	return l.persistLocked(ctx)
}

func (l *FastpathLeader) persistLocked(ctx context.Context) error {
	if l.svc == nil {
		return nil
	}
	if l.svc.Version() == l.saved {
		return nil
	}
	snap := l.svc.Snapshot() // its Version is the one it was taken at
	state, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("cluster: fastpath state: %w", err)
	}
	err = saveFastpathScript.Run(ctx, l.c.rdb, []string{l.c.keys.FastpathLeader(), l.c.keys.FastpathState()}, l.lease, state).Err()
	if err != nil {
		err = scriptError(err)
		if errors.Is(err, ErrFenced) {
			l.stepDownLocked("another node took the fastpath lease")
		}
		return fmt.Errorf("cluster: saving the fastpath state: %w", err)
	}
	l.saved = snap.Version
	return nil
}

func (l *FastpathLeader) run(ctx context.Context) {
	defer close(l.done)
	every := l.c.cfg.LeaseRenew
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		l.round(rctx)
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round renews (and saves) as leader, or tries to become it.
func (l *FastpathLeader) round(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	// Measured from before the call, as the node lease is (Heartbeat.renew).
	start := time.Now()
	if l.svc != nil {
		ok, err := renewFastpathScript.Run(ctx, l.c.rdb, []string{l.c.keys.FastpathLeader()}, l.lease, l.c.cfg.LeaseTTL.Milliseconds()).Int()
		switch {
		case err == nil && ok == 1:
			l.until = start.Add(l.c.cfg.LeaseTTL)
			if err := l.persistLocked(ctx); err != nil {
				l.log.Warn("cluster: saving the fastpath state", slog.String("error", err.Error()))
			}
		case err == nil:
			l.stepDownLocked("the fastpath lease was taken over")
		case !time.Now().Before(l.until):
			// Its own lease, not the node's (the two keys may live on
			// different Redis nodes): unrenewed past the TTL, another
			// node may lead by now.
			l.stepDownLocked("the fastpath lease could not be renewed")
		}
		return
	}
	if !l.beat.Valid() {
		return
	}
	k := l.c.keys
	epoch, err := acquireFastpathScript.Run(ctx, l.c.rdb, []string{k.FastpathLeader(), k.FastpathEpoch()},
		l.c.cfg.Node, l.c.cfg.Advertise, l.c.cfg.LeaseTTL.Milliseconds()).Int64()
	if err != nil || epoch == 0 {
		return
	}
	lease := l.c.cfg.Node + " " + strconv.FormatInt(epoch, 10) + " " + l.c.cfg.Advertise
	svc, err := l.load(ctx)
	if err != nil {
		l.log.Error("cluster: cannot take the workgroup queues over; leaving them to another node", slog.String("error", err.Error()))
		_ = releaseFastpathScript.Run(ctx, l.c.rdb, []string{k.FastpathLeader()}, lease).Err()
		return
	}
	svc.Bind(l.hooks)
	svc.Start()
	l.svc, l.lease, l.until, l.saved = svc, lease, start.Add(l.c.cfg.LeaseTTL), svc.Version()
	l.log.Info("cluster: this node runs the workgroup queues", slog.Int64("lease_epoch", epoch))
}

// load is the engine from the state in Redis, or from the seed when the
// cluster has none yet (its first leader).
func (l *FastpathLeader) load(ctx context.Context) (*fastpath.Service, error) {
	raw, err := l.c.rdb.Get(ctx, l.c.keys.FastpathState()).Bytes()
	if errors.Is(err, redis.Nil) {
		return fastpath.New(l.opts, l.seed)
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: reading the fastpath state: %w", err)
	}
	var st fastpath.State
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("cluster: fastpath state: %w", err)
	}
	return fastpath.Restore(l.opts, st)
}

func (l *FastpathLeader) stepDownLocked(why string) {
	if l.svc == nil {
		return
	}
	l.svc.Close()
	l.svc, l.lease = nil, ""
	l.log.Warn("cluster: this node no longer runs the workgroup queues", slog.String("reason", why))
}

// Stop saves the state, hands the lease back (so another node takes the
// queues at once, not after the TTL) and ends the engine and the loop. It
// is idempotent; ctx bounds the Redis calls.
func (l *FastpathLeader) Stop(ctx context.Context) {
	l.mu.Lock()
	cancel := l.cancel
	l.mu.Unlock()
	if cancel == nil {
		return // never started
	}
	cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	l.stopped = true
	if l.svc == nil {
		return
	}
	if err := l.persistLocked(ctx); err != nil {
		l.log.Warn("cluster: saving the fastpath state before leaving", slog.String("error", err.Error()))
	}
	if l.lease != "" {
		_ = releaseFastpathScript.Run(ctx, l.c.rdb, []string{l.c.keys.FastpathLeader()}, l.lease).Err()
	}
	l.stepDownLocked("the node is stopping")
}

// StreamPresence is what the cluster knows of a stream for the leader's
// hooks: whether it is registered (and not lost), its last broadcast
// presence and its rooms, from the takeover state on its record.
func (c *Cluster) StreamPresence(ctx context.Context, streamID string) (gateway.TakeoverState, bool, error) {
	rec, err := c.Get(ctx, streamID)
	if errors.Is(err, ErrNotRegistered) {
		return gateway.TakeoverState{}, false, nil
	}
	if err != nil {
		return gateway.TakeoverState{}, false, err
	}
	if rec.State[StateLost] != "" {
		return gateway.TakeoverState{}, false, nil
	}
	st, err := decodeState(rec.State)
	return st, true, err
}
