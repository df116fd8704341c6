package gateway

import (
	"math/rand/v2"
	"time"
)

// backoff is one stream's reconnect schedule: exponential with jitter, it
// starts over only once a connection has stayed up for stableAfter, and a
// stream whose connections keep dropping before that gives up after
// maxFlaps drops in a row. Failed logins do not count towards giving up:
// a server that is down for a while (a restart) is waited for at the
// capped delay, as before; a server that accepts the login and then drops
// the connection again and again is not retried forever. Not safe for
// concurrent use: the stream's goroutine owns it.
type backoff struct {
	min, max    time.Duration
	stableAfter time.Duration
	maxFlaps    int
	// int64n draws the jitter; nil = math/rand/v2 (tests fix it).
	int64n func(n int64) int64

	failures int // failed logins and quick drops since the last stable connection
	flaps    int // quick drops in a row
}

// newBackoff returns the schedule the manager's config asks for.
func newBackoff(cfg Config) *backoff {
	return &backoff{min: cfg.ReconnectMin, max: cfg.ReconnectMax, stableAfter: cfg.StableAfter, maxFlaps: cfg.MaxFlaps}
}

// next returns the wait before the next login attempt: min doubled for
// every failure since the last stable connection, capped at max, then
// ±25 % jitter so that every stream of a restarted server does not log in
// at the same instant.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.failures && d < b.max; i++ {
		d *= 2
	}
	d = min(d, b.max)
	draw := b.int64n
	if draw == nil {
		draw = rand.Int64N
	}
	return d/4*3 + time.Duration(draw(int64(d/2)+1))
}

// failed records a failed login attempt.
func (b *backoff) failed() { b.failures++ }

// dropped records that a connection dropped after being up for upFor. It
// reports false when the stream should give up: the connection dropped
// before it was stable more than maxFlaps times in a row.
func (b *backoff) dropped(upFor time.Duration) bool {
	if upFor >= b.stableAfter {
		b.failures, b.flaps = 0, 0
		return true
	}
	b.failures++
	b.flaps++
	return b.flaps <= b.maxFlaps
}
