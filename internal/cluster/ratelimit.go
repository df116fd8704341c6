package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Limits is a set of the limiter methods the API's handlers use (the
// same method set as api.KeyedLimiter, which this package does not import).
type Limits interface {
	Wait(key string) time.Duration
	Take(key string) (bool, time.Duration)
	Untouched(key string) bool
}

// limitTimeout bounds one limiter round trip; a request must not hang on a
// slow Redis for its rate check.
const limitTimeout = 500 * time.Millisecond

// RateLimiter is one named set of token buckets shared by every node
// through Redis (GCRA, one Lua call per check: redis_rate v10), so a
// guesser cannot multiply its budget by the number of nodes. While Redis
// does not answer, it uses fallback, this node's own buckets: stricter
// than nothing, and a Redis outage locks nobody out (issue 18).
type RateLimiter struct {
	lim      *redis_rate.Limiter
	limit    redis_rate.Limit
	prefix   string
	fallback Limits
	log      *slog.Logger
	degraded atomic.Bool // Redis failed on the last call: logged once per outage
}

// Limiter returns the set name of this cluster with perMinute tokens a
// minute and burst at most.
func (c *Cluster) Limiter(name string, perMinute float64, burst int, fallback Limits, log *slog.Logger) *RateLimiter {
	rate := max(int(math.Round(perMinute)), 1)
	return &RateLimiter{lim: redis_rate.NewLimiter(c.rdb), prefix: c.keys.prefix + ":" + name + ":",
		limit: redis_rate.Limit{Rate: rate, Period: time.Minute, Burst: max(burst, 1)}, fallback: fallback, log: log}
}

// key hashes what callers pass (user names, addresses): bounded length,
// and no user text in Redis key names.
func (l *RateLimiter) key(k string) string {
	sum := sha256.Sum256([]byte(k))
	return l.prefix + hex.EncodeToString(sum[:16])
}

func (l *RateLimiter) allow(key string, n int) (*redis_rate.Result, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), limitTimeout)
	defer cancel()
	res, err := l.lim.AllowN(ctx, l.key(key), l.limit, n)
	if err != nil {
		if !l.degraded.Swap(true) {
			l.log.Warn("shared rate limit unavailable, using this node's", slog.String("limit", l.prefix), slog.String("error", err.Error()))
		}
		return nil, false
	}
	if l.degraded.Swap(false) {
		l.log.Info("shared rate limit back", slog.String("limit", l.prefix))
	}
	return res, true
}

// emission is the time one token takes to come back.
func (l *RateLimiter) emission() time.Duration { return l.limit.Period / time.Duration(l.limit.Rate) }

// Wait implements Limits: 0 while a token is left, else until one is.
func (l *RateLimiter) Wait(key string) time.Duration {
	res, ok := l.allow(key, 0) // n = 0 reads the bucket without spending
	if !ok {
		return l.fallback.Wait(key)
	}
	if res.Remaining >= 1 {
		return 0
	}
	// ResetAfter is until the bucket is full; one token comes back
	// (Burst-1) emissions before that.
	return max(res.ResetAfter-time.Duration(l.limit.Burst-1)*l.emission(), time.Millisecond)
}

// Take implements Limits.
func (l *RateLimiter) Take(key string) (bool, time.Duration) {
	res, ok := l.allow(key, 1)
	if !ok {
		return l.fallback.Take(key)
	}
	if res.Allowed == 0 {
		return false, max(res.RetryAfter, time.Millisecond)
	}
	return true, 0
}

// Untouched implements Limits.
func (l *RateLimiter) Untouched(key string) bool {
	res, ok := l.allow(key, 0)
	if !ok {
		return l.fallback.Untouched(key)
	}
	return res.Remaining >= l.limit.Burst
}
