package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xmppgw/xmppgw/gateway"
)

// Heartbeat keeps this node's lease: the key Keys.Node(node) with a PX TTL
// of Config.LeaseTTL, renewed every Config.LeaseRenew. A node whose key
// expired counts as dead; its streams may be claimed by survivors.
type Heartbeat struct {
	c      *Cluster
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	validUntil time.Time // start of the last successful renewal + TTL
	err        error     // last renewal error, nil after a success
	renewed    bool      // a renewal has succeeded
	heldSince  time.Time // the renewal that took the lease after a lapse or a failed renewal
	// incarnation is the Keys.Incarnation value this node last saw;
	// checkDue says it must be read again.
	incarnation string
	checkDue    bool
	onLost      []func() // WhenStoreLost callbacks
}

// WhenStoreLost registers f to run (in the heartbeat's goroutine) when
// Redis lost its data (restarted without persistence, or flushed), so what
// this node had registered is gone too and must be written again: a
// renewal finds the node's lease key gone although the lease was valid,
// or, after the lease lapsed (a Redis outage longer than the TTL), finds
// the cluster's incarnation key gone or changed. f must not block for
// long: the next renewal waits for it.
func (h *Heartbeat) WhenStoreLost(f func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onLost = append(h.onLost, f)
}

// StartHeartbeat takes the node's lease (one synchronous SET, so a node
// that cannot reach Redis fails to start) and renews it until Stop or ctx
// ends.
func (c *Cluster) StartHeartbeat(ctx context.Context) (*Heartbeat, error) {
	h := &Heartbeat{c: c, done: make(chan struct{})}
	if err := h.renew(ctx); err != nil {
		return nil, fmt.Errorf("cluster: node lease: %w", err)
	}
	ctx, h.cancel = context.WithCancel(ctx)
	go h.run(ctx) // exits when ctx ends
	return h, nil
}

func (h *Heartbeat) run(ctx context.Context) {
	defer close(h.done)
	t := time.NewTicker(h.c.cfg.LeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, h.c.cfg.LeaseRenew)
			_ = h.renew(rctx) // recorded in h.err; Valid turns false in time
			cancel()
		}
	}
}

func (h *Heartbeat) renew(ctx context.Context) error {
	// Measured from before the SET: Redis may have applied it at any
	// moment after this, so the lease surely lasts until start + TTL.
	start := time.Now()
	// GET returns the key's old value: none while the lease was still
	// valid means the key was lost, not expired.
	err := h.c.rdb.SetArgs(ctx, h.c.keys.Node(h.c.cfg.Node), h.c.cfg.Advertise, redis.SetArgs{TTL: h.c.cfg.LeaseTTL, Get: true}).Err()
	missing := errors.Is(err, redis.Nil)
	if missing {
		err = nil
	}
	h.mu.Lock()
	lost := missing && h.renewed && start.Before(h.validUntil)
	if err == nil && (!h.renewed || missing) {
		// The first lease, or the key was gone: lost (above) or expired
		// after a lapse, which only the incarnation key can tell apart
		// from a data loss. Checked until a check succeeds.
		h.checkDue = true
	}
	check := err == nil && h.checkDue
	h.mu.Unlock()
	if check {
		if changed, ierr := h.checkIncarnation(ctx); ierr == nil {
			h.mu.Lock()
			h.checkDue = false
			h.mu.Unlock()
			lost = lost || changed
		}
	}
	h.mu.Lock()
	failedBefore := h.err != nil
	h.err = err
	if err == nil {
		// The SET applied before now, not surely before start: the lease
		// was held throughout only if the previous one still held now.
		// After a failed renewal the lease may have held, but the other
		// nodes' renewals failed too and their leases may have expired
		// meanwhile: Steady counts a TTL from here as after a lapse.
		if now := time.Now(); !h.renewed || !now.Before(h.validUntil) || failedBefore {
			h.heldSince = now // first lease, the last one lapsed, or the last renewal failed
		}
		h.validUntil, h.renewed = start.Add(h.c.cfg.LeaseTTL), true
	}
	callbacks := h.onLost
	h.mu.Unlock()
	if lost {
		for _, f := range callbacks {
			f()
		}
	}
	return err
}

// checkIncarnation reads the cluster's incarnation key, creating it when
// missing, and reports whether it differs from the one this node saw last
// (false the first time).
func (h *Heartbeat) checkIncarnation(ctx context.Context) (bool, error) {
	key := h.c.keys.Incarnation()
	if err := h.c.rdb.SetNX(ctx, key, randomHex(8), 0).Err(); err != nil {
		return false, fmt.Errorf("cluster: incarnation: %w", err)
	}
	v, err := h.c.rdb.Get(ctx, key).Result()
	if err != nil {
		return false, fmt.Errorf("cluster: incarnation: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	changed := h.incarnation != "" && h.incarnation != v
	h.incarnation = v
	return changed, nil
}

// Valid reports whether the node's lease is certainly still held. Once it
// is false, survivors may have claimed the node's streams, and the node
// must stop acting as their owner (issue 18, split brain); its fences are
// checked by the scripts anyway.
func (h *Heartbeat) Valid() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return time.Now().Before(h.validUntil)
}

// Steady reports whether the node has held its lease without a lapse or a
// failed renewal for at least one lease TTL. Only then may it judge other
// nodes dead by their expired leases: after a Redis outage, even one
// shorter than the TTL, other nodes' leases may have expired only because
// their renewals failed, and each needs a renewal interval to take its
// lease again; a node that came back first must not take the others'
// streams meanwhile.
func (h *Heartbeat) Steady() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	return h.renewed && h.err == nil && now.Before(h.validUntil) && now.Sub(h.heldSince) >= h.c.cfg.LeaseTTL
}

// Err is the last renewal's error, nil after a successful one.
func (h *Heartbeat) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Stop ends the renewals and deletes the lease key (a clean exit: the
// node is dead to the cluster at once instead of after the TTL). It is
// idempotent; ctx bounds the delete.
func (h *Heartbeat) Stop(ctx context.Context) error {
	h.cancel()
	<-h.done
	if err := h.c.rdb.Del(ctx, h.c.keys.Node(h.c.cfg.Node)).Err(); err != nil {
		return fmt.Errorf("cluster: dropping node lease: %w", err)
	}
	return nil
}

// NodeAddr returns the address a live node advertised (Config.Advertise),
// and false when the node is dead.
func (c *Cluster) NodeAddr(ctx context.Context, node string) (string, bool, error) {
	addr, err := c.rdb.Get(ctx, c.keys.Node(node)).Result()
	if errors.Is(err, redis.Nil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("cluster: node %s address: %w", node, err)
	}
	return addr, true, nil
}

// OthersAlive counts the live nodes other than this one (their lease keys;
// SCAN, so on a Redis Cluster only the keys of the node the client asks).
func (c *Cluster) OthersAlive(ctx context.Context) (int, error) {
	self := c.keys.Node(c.cfg.Node)
	n := 0
	iter := c.rdb.Scan(ctx, 0, c.keys.Node("*"), 100).Iterator()
	for iter.Next(ctx) {
		if iter.Val() != self {
			n++
		}
	}
	if err := iter.Err(); err != nil {
		return 0, fmt.Errorf("cluster: live nodes: %w", err)
	}
	return n, nil
}

// NodeAlive reports whether node's lease key exists.
func (c *Cluster) NodeAlive(ctx context.Context, node string) (bool, error) {
	n, err := c.rdb.Exists(ctx, c.keys.Node(node)).Result()
	if err != nil {
		return false, fmt.Errorf("cluster: node %s alive: %w", node, err)
	}
	return n == 1, nil
}

// OwnerAddr returns the internal address of the live node that owns the
// stream, "" when the stream is not registered or its owner is dead (a
// takeover's business, issue 18), and a gateway.StreamLostError when the
// stream was lost with its node.
func (c *Cluster) OwnerAddr(ctx context.Context, streamID string) (addr string, owner string, err error) {
	rec, err := c.Get(ctx, streamID)
	if errors.Is(err, ErrNotRegistered) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	if rec.State[StateLost] != "" {
		return "", rec.Owner, gateway.StreamLostError{User: rec.JID}
	}
	addr, alive, err := c.NodeAddr(ctx, rec.Owner)
	if err != nil || !alive {
		return "", rec.Owner, err
	}
	return addr, rec.Owner, nil
}
