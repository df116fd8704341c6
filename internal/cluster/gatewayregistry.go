package cluster

import (
	"context"
	"encoding/json"
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

// SaveState implements gateway.StreamRegistry: the stream's presence and
// rooms go to its record (StatePresence, StateRooms) if this node's fence
// still holds; a stale fence, or a record gone, is gateway.ErrNotOwner.
func (r *GatewayRegistry) SaveState(ctx context.Context, id string, st gateway.TakeoverState) error {
	fence, ok := r.Fence(id)
	if !ok {
		return fmt.Errorf("%w: this node did not register stream %s", gateway.ErrNotOwner, short(id))
	}
	presence, err := json.Marshal(st.Presence)
	if err != nil {
		return err
	}
	rooms, err := json.Marshal(st.Rooms)
	if err != nil {
		return err
	}
	err = r.c.SetState(ctx, id, fence, map[string]string{StatePresence: string(presence), StateRooms: string(rooms)})
	if errors.Is(err, ErrFenced) || errors.Is(err, ErrNotRegistered) {
		r.mu.Lock()
		delete(r.fences, id) // the record is the new owner's: never unregister it
		r.mu.Unlock()
		return fmt.Errorf("%w: %v", gateway.ErrNotOwner, err)
	}
	return err
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
