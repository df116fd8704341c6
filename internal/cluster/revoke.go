package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Revoke stores a token id (JWT jti) as revoked until the token's own
// expiry, then broadcasts it so every node closes that token's SSE/WS
// streams (issue 17: within 1 s). A token already expired needs neither.
func (c *Cluster) Revoke(ctx context.Context, jti string, until time.Time) error {
	if jti == "" {
		return errors.New("cluster: revoke: empty token id")
	}
	if !until.After(time.Now()) {
		return nil
	}
	ms := until.UnixMilli()
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		// Stored before it is announced: a node that hears of it and
		// checks Revoked (or one that missed it and resyncs) finds it.
		p.Do(ctx, "SET", c.keys.Revoked(jti), ms, "PXAT", ms)
		p.Publish(ctx, c.keys.Revocations(), strconv.FormatInt(ms, 10)+","+jti)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: revoke: %w", err)
	}
	return nil
}

// Revoked reports whether the token id is revoked (and not yet expired).
func (c *Cluster) Revoked(ctx context.Context, jti string) (bool, error) {
	n, err := c.rdb.Exists(ctx, c.keys.Revoked(jti)).Result()
	if err != nil {
		return false, fmt.Errorf("cluster: revoked: %w", err)
	}
	return n == 1, nil
}

// Revocation is one broadcast revocation, or a Resync notice.
type Revocation struct {
	JTI   string
	Until time.Time
	// Resync means revocations may have been missed (pub/sub reconnected,
	// or the watch's queue overflowed): check the node's live tokens with
	// Revoked. JTI is empty then.
	Resync bool
}

// RevocationWatch delivers the cluster's revocations to this node.
type RevocationWatch struct {
	// C is closed when the watch ends (its context ended, Close, or the
	// Hub closed).
	C <-chan Revocation

	hub    *Hub
	l      *listener
	out    chan Revocation
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// WatchRevocations subscribes to the revocation channel and returns once
// Redis confirmed it. buffer is the length of C (0 = DefaultSubscriptionBuffer).
func (h *Hub) WatchRevocations(ctx context.Context, buffer int) (*RevocationWatch, error) {
	if buffer <= 0 {
		buffer = DefaultSubscriptionBuffer
	}
	w := &RevocationWatch{hub: h, l: newListener(buffer), out: make(chan Revocation, buffer), done: make(chan struct{})}
	w.C = w.out
	name := h.c.keys.Revocations()
	if err := h.join(ctx, name, w.l); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	stopAfter := context.AfterFunc(h.ctx, cancel)
	go func() { // exits when runCtx ends
		defer close(w.done)
		defer close(w.out)
		defer h.leave(name, w.l)
		defer stopAfter()
		w.run(runCtx)
	}()
	return w, nil
}

// Close ends the watch and waits for its goroutine. It is idempotent.
func (w *RevocationWatch) Close() {
	w.once.Do(w.cancel)
	<-w.done
}

func (w *RevocationWatch) run(ctx context.Context) {
	for {
		var r Revocation
		select {
		case <-ctx.Done():
			return
		case <-w.l.wake:
			r = Revocation{Resync: true}
		case f := <-w.l.inbox:
			ms, jti, ok := strings.Cut(f.raw, ",")
			until, err := strconv.ParseInt(ms, 10, 64)
			if !ok || err != nil || jti == "" {
				continue // not a revocation this package wrote
			}
			r = Revocation{JTI: jti, Until: time.UnixMilli(until)}
		}
		select {
		case w.out <- r:
		case <-ctx.Done():
			return
		}
	}
}
