package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	// streams is what Restore writes again after Redis lost its data: each
	// registered stream's record and its last saved state.
	streams map[string]registeredStream
}

type registeredStream struct {
	rec   StreamRecord
	state map[string]string
}

// Register implements gateway.StreamRegistry.
func (r *GatewayRegistry) Register(ctx context.Context, s gateway.RegisteredStream) error {
	rec := StreamRecord{ID: s.ID, JID: s.JID, Resource: s.Resource, Created: s.Created, OnBehalf: s.OnBehalf}
	if rec.Created.IsZero() {
		rec.Created = time.Now()
	}
	fence, err := r.c.Register(ctx, rec, r.caps)
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
	r.streams[s.ID] = registeredStream{rec: rec}
	r.mu.Unlock()
	return nil
}

// Unregister implements gateway.StreamRegistry.
func (r *GatewayRegistry) Unregister(ctx context.Context, id string) {
	r.mu.Lock()
	fence, ok := r.fences[id]
	delete(r.fences, id)
	delete(r.streams, id)
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
	fields, err := encodeState(st)
	if err != nil {
		return err
	}
	err = r.c.SetState(ctx, id, fence, fields)
	switch {
	case errors.Is(err, ErrFenced):
		r.mu.Lock()
		delete(r.fences, id) // the record is the new owner's: never unregister it
		delete(r.streams, id)
		r.mu.Unlock()
		return fmt.Errorf("%w: %v", gateway.ErrNotOwner, err)
	case err != nil:
		// ErrNotRegistered too: Redis may have lost its data, and Restore
		// writes the record again; the gateway retries.
		return err
	}
	r.mu.Lock()
	if st, ok := r.streams[id]; ok {
		st.state = fields
		r.streams[id] = st
	}
	r.mu.Unlock()
	return nil
}

// Restore registers again, with their last saved state, the streams this
// node registered whose records are gone: run it when Redis lost its data
// (Heartbeat.WhenStoreLost). A record that exists is left alone (another
// node may own the stream now; the fences decide). Each restored stream
// gets a new fence; its event log starts a new epoch, which subscribers see
// as a "reset" (docs/cluster.md).
func (r *GatewayRegistry) Restore(ctx context.Context) {
	r.mu.Lock()
	todo := make([]registeredStream, 0, len(r.streams))
	for _, st := range r.streams {
		todo = append(todo, st)
	}
	r.mu.Unlock()
	restored := 0
	for _, st := range todo {
		fence, err := r.c.Register(ctx, st.rec, Caps{}) // admitted already: no caps
		if errors.Is(err, ErrStreamExists) {
			continue
		}
		if err != nil {
			r.log.Warn("cluster: registering a stream again after Redis lost its data", slog.String("stream", short(st.rec.ID)), slog.String("error", err.Error()))
			continue
		}
		if st.state != nil {
			if err := r.c.SetState(ctx, st.rec.ID, fence, st.state); err != nil {
				r.log.Warn("cluster: restoring a stream's state", slog.String("stream", short(st.rec.ID)), slog.String("error", err.Error()))
			}
		}
		r.mu.Lock()
		_, still := r.streams[st.rec.ID]
		if still {
			r.fences[st.rec.ID] = fence
			restored++
		}
		r.mu.Unlock()
		if !still { // it ended meanwhile: take the record back out
			_ = r.c.Unregister(ctx, st.rec.ID, fence)
		}
	}
	r.log.Warn("cluster: Redis lost its data; streams registered again", slog.Int("streams", restored))
}

// Adopt makes a stream this node claimed (fence) one of its own, before
// the gateway re-opens it: its events and state are written under fence.
func (r *GatewayRegistry) Adopt(rec StreamRecord, fence LeaseFence) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fences[rec.ID] = fence
	r.streams[rec.ID] = registeredStream{rec: StreamRecord{ID: rec.ID, JID: rec.JID, Resource: rec.Resource,
		Created: rec.Created, OnBehalf: rec.OnBehalf}, state: rec.State}
}

// Release implements gateway.StreamRegistry: the stream moved to another
// node, so this node forgets it (no Unregister: the record is the new
// owner's, and Restore must not write it again).
func (r *GatewayRegistry) Release(id string) {
	r.mu.Lock()
	delete(r.fences, id)
	delete(r.streams, id)
	r.mu.Unlock()
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
	return &GatewayRegistry{c: c, caps: caps, log: log, fences: map[string]LeaseFence{}, streams: map[string]registeredStream{}}
}
