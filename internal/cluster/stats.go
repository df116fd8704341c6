package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RoundTripBuckets are the upper bounds, in seconds, of the Redis
// round-trip histogram: from a loopback command (~100 µs) to a Redis about
// to be declared unreachable.
var RoundTripBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// Histogram is a snapshot of the round-trip histogram: Buckets[i] counts
// the round trips of at most RoundTripBuckets[i] seconds (cumulative, as
// Prometheus wants them).
type Histogram struct {
	Count   uint64
	Sum     float64 // seconds
	Buckets []uint64
}

// roundTrips measures every command and pipeline the node sends (a
// go-redis hook), pub/sub traffic excepted: its Receive blocks by design.
type roundTrips struct {
	mu      sync.Mutex
	count   uint64
	sum     float64
	buckets []uint64 // not cumulative; Snapshot adds them up
}

func newRoundTrips() *roundTrips {
	return &roundTrips{buckets: make([]uint64, len(RoundTripBuckets))}
}

func (r *roundTrips) observe(d time.Duration) {
	s := d.Seconds()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.sum += s
	for i, le := range RoundTripBuckets {
		if s <= le {
			r.buckets[i]++
			return
		}
	}
}

func (r *roundTrips) snapshot() Histogram {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := Histogram{Count: r.count, Sum: r.sum, Buckets: make([]uint64, len(r.buckets))}
	var acc uint64
	for i, n := range r.buckets {
		acc += n
		h.Buckets[i] = acc
	}
	return h
}

// DialHook, ProcessHook and ProcessPipelineHook implement redis.Hook.
func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		r.observe(time.Since(start))
		return err
	}
}

func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		r.observe(time.Since(start))
		return err
	}
}

var _ redis.Hook = (*roundTrips)(nil)

// RoundTrips is the histogram of this node's Redis round trips so far
// (/metrics: xmppgw_cluster_redis_round_trip_seconds).
func (c *Cluster) RoundTrips() Histogram { return c.trips.snapshot() }
