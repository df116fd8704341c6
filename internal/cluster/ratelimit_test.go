package cluster

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/internal/redistest"
)

// countingLimits is a fallback that records being asked and refuses.
type countingLimits struct{ asked int }

func (c *countingLimits) Wait(string) time.Duration { c.asked++; return time.Minute }
func (c *countingLimits) Take(string) (bool, time.Duration) {
	c.asked++
	return false, time.Minute
}
func (c *countingLimits) Untouched(string) bool { c.asked++; return false }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Two nodes share one bucket per key: a guesser spreading its attempts
// over the nodes gets no more than the burst in all.
func TestRateLimiter_NodesShareTheBudget(t *testing.T) {
	srv := redistest.ForTest(t)
	a, b := newNode(t, srv, Config{Node: "a"}), newNode(t, srv, Config{Node: "b"})
	fa, fb := &countingLimits{}, &countingLimits{}
	la, lb := a.Limiter("login-pair", 5, 5, fa, quiet), b.Limiter("login-pair", 5, 5, fb, quiet)

	require.True(t, la.Untouched("alice|203.0.113.7"))
	require.Zero(t, la.Wait("alice|203.0.113.7"))
	for i := range 5 {
		l := la
		if i%2 == 1 {
			l = lb
		}
		ok, _ := l.Take("alice|203.0.113.7")
		require.True(t, ok, "attempt %d of the burst", i+1)
	}
	ok, wait := lb.Take("alice|203.0.113.7")
	require.False(t, ok, "the sixth attempt, on either node, is refused")
	require.InDelta(t, 12*time.Second, wait, float64(2*time.Second), "one token of 5/min comes back in 12 s")
	w := la.Wait("alice|203.0.113.7")
	require.InDelta(t, 12*time.Second, w, float64(2*time.Second))
	require.False(t, la.Untouched("alice|203.0.113.7"))

	// Other keys, and the same key in another set, are their own buckets.
	require.True(t, lb.Untouched("alice|198.51.100.1"))
	other := b.Limiter("login-name", 5, 5, fb, quiet)
	require.True(t, other.Untouched("alice|203.0.113.7"))
	require.Zero(t, fa.asked+fb.asked, "Redis answered: no fallback")
}

// With Redis gone the node's own buckets decide; nobody is locked out for
// the outage, and the shared buckets are used again once Redis is back.
func TestRateLimiter_FallsBackWhileRedisIsDown(t *testing.T) {
	srv := redistest.ForTest(t)
	c := newNode(t, srv, Config{Node: "a"})
	fallback := &countingLimits{}
	l := c.Limiter("login-address", 60, 2, fallback, quiet)
	ok, _ := l.Take("stream-1")
	require.True(t, ok)
	require.NoError(t, srv.Kill())
	ok, wait := l.Take("stream-1")
	require.False(t, ok, "the fallback's answer")
	require.Equal(t, time.Minute, wait)
	require.Equal(t, time.Minute, l.Wait("stream-1"))
	require.False(t, l.Untouched("stream-1"))
	require.Equal(t, 3, fallback.asked)
	require.NoError(t, srv.Restart(t.Context()))
	require.Eventually(t, func() bool { ok, _ := l.Take("stream-1"); return ok }, 5*time.Second, 100*time.Millisecond)
}
