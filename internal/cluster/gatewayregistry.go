package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/xmppgw/xmppgw/gateway"
)

// GatewayRegistry puts the gateway's streams in the cluster's registry,
// with the caps counted cluster-wide, and keeps each stream's lease fence
// for Unregister.
type GatewayRegistry struct {
	c    *Cluster
	caps Caps
	log  *slog.Logger

	mu     sync.Mutex
	fences map[string]LeaseFence
}

// Register implements gateway.StreamRegistry.
func (r *GatewayRegistry) Register(ctx context.Context, s gateway.RegisteredStream) error {
	fence, err := r.c.Register(ctx, StreamRecord{ID: s.ID, JID: s.JID, Resource: s.Resource,
		Created: s.Created, OnBehalf: s.OnBehalf}, r.caps)
	switch {
	case errors.Is(err, ErrUserCap):
		return fmt.Errorf("%w (cluster-wide)", gateway.ErrTooManyStreams)
	case errors.Is(err, ErrTotalCap):
		return fmt.Errorf("%w (cluster-wide)", gateway.ErrCapacity)
	case err != nil:
		return fmt.Errorf("%w: %v", gateway.ErrRegistryUnavailable, err)
	}
	r.mu.Lock()
	r.fences[s.ID] = fence
	r.mu.Unlock()
	return nil
}

// Unregister implements gateway.StreamRegistry.
func (r *GatewayRegistry) Unregister(ctx context.Context, id string) {
	r.mu.Lock()
	fence, ok := r.fences[id]
	delete(r.fences, id)
	r.mu.Unlock()
	if !ok {
		return
	}
	if err := r.c.Unregister(ctx, id, fence); err != nil && !errors.Is(err, ErrNotRegistered) {
		r.log.Warn("unregistering a stream", slog.String("error", err.Error()))
	}
}

// Fence returns the lease fence of a stream this node registered.
func (r *GatewayRegistry) Fence(id string) (LeaseFence, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.fences[id]
	return f, ok
}

// NewGatewayRegistry returns the registry the gateway's Manager uses in
// cluster mode (gateway.Config.Registry).
func (c *Cluster) NewGatewayRegistry(caps Caps, log *slog.Logger) *GatewayRegistry {
	return &GatewayRegistry{c: c, caps: caps, log: log, fences: map[string]LeaseFence{}}
}
