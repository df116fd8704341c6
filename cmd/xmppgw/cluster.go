package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/xmppgw/xmppgw/api"
	"github.com/xmppgw/xmppgw/gateway"
	"github.com/xmppgw/xmppgw/internal/cluster"
)

// clusterNode is this process's membership of the cluster (cluster mode
// only): the Redis handle, the node's lease, the pub/sub hub and the
// internal listener, closed in reverse order by leave.
type clusterNode struct {
	c        *cluster.Cluster
	beat     *cluster.Heartbeat
	hub      *cluster.Hub
	internal *http.Server
	ln       net.Listener
	watch    *cluster.RevocationWatch
	followed chan struct{} // closed when the revocation follower exits
	events   *cluster.EventPublisher
	relay    *cluster.Relay
	takeover *cluster.Takeover
	queues   *cluster.FastpathLeader
	hooks    *api.FastpathHooks
}

// runQueues has this node compete for the cluster's workgroup queues
// (fastpath), with hooks reaching the streams on every node.
func (n *clusterNode) runQueues(srv *api.Server) {
	n.hooks = srv.NewFastpathHooks()
	n.queues.Start(n.hooks)
}

// stopQueues hands the queues to another node (state saved, lease
// dropped) and ends the hooks. It is idempotent.
func (n *clusterNode) stopQueues(ctx context.Context) {
	if n.queues != nil {
		n.queues.Stop(ctx)
	}
	if n.hooks != nil {
		n.hooks.Close()
	}
}

// shareEvents makes the cluster carry the streams' events: the gateway
// publishes to Redis through the returned Publisher, and the relay mirrors
// into broker the streams this node's subscribers read.
func (n *clusterNode) shareEvents(reg *cluster.GatewayRegistry, broker cluster.LocalTopics, log *slog.Logger) *cluster.EventPublisher {
	n.events = n.c.NewEventPublisher(reg, n.hub, log)
	n.relay = n.c.NewRelay(n.hub, broker, 0, log)
	return n.events
}

// stats are the node's cluster figures for /metrics.
func (n *clusterNode) stats() api.ClusterStats {
	st := api.ClusterStats{RoundTrips: n.c.RoundTrips(), PubSubReconnects: uint64(max(n.hub.Reconnects(), 0))}
	if n.events != nil {
		st.EventsDropped, st.EventsProvisional = n.events.Dropped(), n.events.Provisional()
	}
	if n.relay != nil {
		st.Mirrored = n.relay.Mirrored()
	}
	return st
}

// stopEvents ends the mirrors and the publisher's queues (after the
// streams closed, so their last events are written). It is idempotent.
func (n *clusterNode) stopEvents() {
	if n.relay != nil {
		n.relay.Close()
	}
	if n.events != nil {
		n.events.Close()
	}
}

// joinCluster connects to Redis, takes the node's lease and listens on the
// internal address; any failure undoes what was done and is fatal (a node
// that cannot join must not serve as if it had).
func joinCluster(ctx context.Context, cfg config) (*clusterNode, error) {
	openCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := cluster.Open(openCtx, cfg.RedisURL, cfg.Cluster)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Cluster.Advertise)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("XMPPGW_CLUSTER_LISTEN: %w", err)
	}
	beat, err := c.StartHeartbeat(ctx)
	if err != nil {
		_ = ln.Close()
		_ = c.Close()
		return nil, err
	}
	return &clusterNode{c: c, beat: beat, hub: c.NewHub(), ln: ln}, nil
}

// serve answers the other nodes on the internal listener until leave.
func (n *clusterNode) serve(h http.Handler, serveErr chan<- error) {
	n.internal = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	go func() { serveErr <- n.internal.Serve(n.ln) }()
}

// followRevocations applies the other nodes' token revocations to srv
// until leave (issue 17: their event streams end within a second).
func (n *clusterNode) followRevocations(ctx context.Context, srv *api.Server, log *slog.Logger) error {
	w, err := n.hub.WatchRevocations(ctx, 0)
	if err != nil {
		return err
	}
	n.watch, n.followed = w, make(chan struct{})
	go func() { // exits when the watch ends (leave closes it)
		defer close(n.followed)
		for rev := range w.C {
			if !rev.Resync {
				srv.ApplyRevocation(rev.JTI, rev.Until)
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := srv.ResyncRevocations(rctx); err != nil {
				log.Warn("re-checking revocations", slog.String("error", err.Error()))
			}
			cancel()
		}
	}()
	return nil
}

// ready is the node's part of /readyz: Redis answers and the lease holds.
func (n *clusterNode) ready(ctx context.Context) error {
	if !n.beat.Valid() {
		if err := n.beat.Err(); err != nil {
			return fmt.Errorf("lease not renewed: %w", err)
		}
		return errors.New("lease not renewed")
	}
	return n.c.Redis().Ping(ctx).Err()
}

// leave drops the lease at once (the node is dead to the others now, not
// after the TTL) and closes the hub, the listener and the client.
// takeOver starts the sweep that claims dead nodes' streams and re-opens
// them here (issue 18), until leave.
func (n *clusterNode) takeOver(reg *cluster.GatewayRegistry, mgr *gateway.Manager, log *slog.Logger) {
	n.takeover = n.c.StartTakeover(n.c.Config().LeaseRenew, n.beat, reg.Adopter(mgr), log)
}

// drain hands this node's streams to the others (issue 18): it stops
// claiming, drops its lease so the others' takeover sweeps claim its
// streams and re-open them, and keeps serving each one until it sees it
// claimed (then it lets go without a goodbye, as any stale owner does);
// the new owner gap-fills from the archive what came in between. It
// returns when no stream is left, or at timeout with the rest, which
// shutdown closes as usual.
func (n *clusterNode) drain(mgr *gateway.Manager, timeout time.Duration, log *slog.Logger) {
	qctx, qcancel := context.WithTimeout(context.Background(), 5*time.Second)
	n.stopQueues(qctx) // another node takes the queues at once
	qcancel()
	if n.takeover != nil {
		n.takeover.Stop()
		n.takeover = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	others := func() int {
		k, err := n.c.OthersAlive(ctx)
		if err != nil {
			return 0 // Redis is not answering: nobody can take over
		}
		return k
	}
	if others() == 0 {
		log.Info("draining: no other node to take the streams over; closing them")
		return
	}
	if err := n.beat.Stop(ctx); err != nil {
		log.Warn("draining: dropping the lease", slog.String("error", err.Error()))
		return
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		left := mgr.YieldTakenOver()
		if left == 0 {
			log.Info("drained: every stream taken over by another node")
			return
		}
		if others() == 0 {
			log.Warn("draining: the other nodes are gone; closing the streams left", slog.Int("streams", left))
			return
		}
		select {
		case <-ctx.Done():
			log.Warn("drain timeout: closing the streams no node took", slog.Int("streams", left))
			return
		case <-t.C:
		}
	}
}

func (n *clusterNode) leave(ctx context.Context, log *slog.Logger) {
	n.stopQueues(ctx)
	if n.takeover != nil {
		n.takeover.Stop()
	}
	n.stopEvents()
	if n.watch != nil {
		n.watch.Close()
		<-n.followed
	}
	if err := n.beat.Stop(ctx); err != nil {
		log.Warn("dropping the cluster lease", slog.String("error", err.Error()))
	}
	_ = n.hub.Close()
	if n.internal != nil {
		_ = n.internal.Shutdown(ctx)
	} else {
		_ = n.ln.Close()
	}
	_ = n.c.Close()
}
