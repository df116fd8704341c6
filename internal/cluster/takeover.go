package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/xmppgw/xmppgw/gateway"
)

// StateLost marks a record whose stream died with its node and was not
// re-opened (its value is the reason). The record then stays for LostTTL so
// every node can answer the stream's calls with 410, and leaves the
// registry's sets (it counts against no cap and is swept no more).
const StateLost = "lost"

// LostTTL is how long a lost stream's record (and its log, whose last
// events are the "lost" event and the end marker) stays readable.
const LostTTL = time.Hour

// lostScript marks a claimed record lost and gives it a TTL. KEYS: record.
// ARGV: fence, reason, ttl ms.
var lostScript = redis.NewScript(fenceCheck + `
redis.call('HSET', KEYS[1], '` + statePrefix + StateLost + `', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {rec[1], rec[3]}
`)

// DeadOwnerStreams returns the registered streams whose owner's lease has
// expired: a takeover's work (issue 18).
func (c *Cluster) DeadOwnerStreams(ctx context.Context) ([]StreamRecord, error) {
	recs, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	var dead []StreamRecord
	for _, r := range recs {
		a, ok := alive[r.Owner]
		if !ok {
			if a, err = c.NodeAlive(ctx, r.Owner); err != nil {
				return nil, err
			}
			alive[r.Owner] = a
		}
		if !a && r.State[StateLost] == "" {
			dead = append(dead, r)
		}
	}
	return dead, nil
}

// MarkLost ends a stream this node claimed but cannot re-open: its log gets
// a "stream" event with state "lost" (subscribers on every node see it) and
// the end marker, and its record is marked lost for LostTTL.
//
// The record is marked first: a client that reads the event and calls at
// once must get the 410, not a forward to a claimer without the stream.
func (c *Cluster) MarkLost(ctx context.Context, rec StreamRecord, fence LeaseFence, reason string) error {
	ev, err := json.Marshal(gateway.StreamEvent{Type: gateway.EventStream, State: gateway.StateLost, JID: rec.JID, Reason: reason})
	if err != nil {
		return err
	}
	k := c.keys
	res, err := lostScript.Run(ctx, c.rdb, []string{k.Record(rec.ID)}, fence.Node, fence.Epoch, reason, LostTTL.Milliseconds()).StringSlice()
	if err != nil {
		return fmt.Errorf("cluster: mark %s lost: %w", rec.ID, scriptError(err))
	}
	if len(res) == 2 {
		c.unindex(ctx, rec.ID, res[0], res[1])
	}
	for _, payload := range [][]byte{ev, endMarker} {
		if _, _, err := c.Publish(ctx, rec.ID, payload, fence); err != nil {
			return err
		}
	}
	// The log lives as long as the record (Publish gave it the history TTL).
	for _, key := range []string{k.Meta(rec.ID), k.Events(rec.ID)} {
		if err := c.rdb.PExpire(ctx, key, LostTTL).Err(); err != nil {
			return fmt.Errorf("cluster: mark %s lost: %w", rec.ID, err)
		}
	}
	return nil
}

// Takeover sweeps the cluster for streams of dead nodes and claims them,
// one claimer per stream (Claim), and hands each to the Adopter to re-open
// (issue 18); a stream that cannot be re-opened is marked lost, so its
// clients learn it at once (a "lost" event, 410 on calls) instead of
// waiting on a stream nobody serves.
type Takeover struct {
	c      *Cluster
	log    *slog.Logger
	adopt  Adopter
	steady func() bool
	cancel context.CancelFunc
	done   chan struct{}
}

// Adopter re-opens a stream this node claimed (gateway side); its error
// says why it could not, and the stream is then marked lost with it.
type Adopter func(ctx context.Context, rec StreamRecord, fence LeaseFence) error

// lostReason is what a lost stream's clients are told.
const lostReason = "the gateway node holding the stream stopped; log in again"

// adoptTimeout bounds one re-open (an XMPP login, rooms, no gap-fill: that
// runs after).
const adoptTimeout = 30 * time.Second

// StartTakeover sweeps every interval until Stop, while beat is Steady (a
// node whose own lease lapsed or whose renewal failed, as happens in a
// Redis outage, first holds it again for a TTL: the others need that long
// to come back too); adopt nil marks every claimed stream lost.
func (c *Cluster) StartTakeover(interval time.Duration, beat *Heartbeat, adopt Adopter, log *slog.Logger) *Takeover {
	ctx, cancel := context.WithCancel(context.Background())
	t := &Takeover{c: c, log: log, adopt: adopt, steady: beat.Steady, cancel: cancel, done: make(chan struct{})}
	go t.run(ctx, interval) // exits when Stop cancels ctx
	return t
}

func (t *Takeover) run(ctx context.Context, interval time.Duration) {
	defer close(t.done)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if t.steady() {
				t.sweep(ctx)
			}
		}
	}
}

// sweep claims and ends the dead nodes' streams once.
func (t *Takeover) sweep(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dead, err := t.c.DeadOwnerStreams(sctx)
	if err != nil {
		t.log.Debug("cluster: takeover sweep", slog.String("error", err.Error()))
		return
	}
	for _, rec := range dead {
		fence, err := t.c.Claim(sctx, rec.ID, rec.Owner)
		if errors.Is(err, ErrClaimLost) || errors.Is(err, ErrNotRegistered) {
			continue // another survivor has it, or it ended
		}
		if err != nil {
			t.log.Warn("cluster: claiming a dead node's stream", slog.String("stream", short(rec.ID)), slog.String("error", err.Error()))
			continue
		}
		reason := lostReason
		if t.adopt != nil {
			actx, cancel := context.WithTimeout(ctx, adoptTimeout)
			err := t.adopt(actx, rec, fence)
			cancel()
			if err == nil {
				t.log.Info("cluster: stream taken over", slog.String("stream", short(rec.ID)), slog.String("from", rec.Owner))
				continue
			}
			reason = lostReason + " (" + err.Error() + ")"
		}
		if err := t.c.MarkLost(sctx, rec, fence, reason); err != nil {
			t.log.Warn("cluster: marking a stream lost", slog.String("stream", short(rec.ID)), slog.String("error", err.Error()))
			continue
		}
		t.log.Warn("cluster: stream lost with its node", slog.String("stream", short(rec.ID)), slog.String("node", rec.Owner), slog.String("reason", reason))
	}
}

// Stop ends the sweeps and waits for the current one. Idempotent.
func (t *Takeover) Stop() {
	t.cancel()
	<-t.done
}
