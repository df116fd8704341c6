package api

import (
	"math"
	"net/http"
	"net/netip"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// KeyedLimiter is what the handlers need from a set of token buckets, one
// per key (a stream, a client address, a name): small, so cluster mode can
// put a Redis-backed one behind it (Config.Limiters).
type KeyedLimiter interface {
	// Wait returns how long until key may act again (0 if it may now).
	Wait(key string) time.Duration
	// Take spends one token for key, reporting false (and the wait) when
	// none is left.
	Take(key string) (bool, time.Duration)
	// Untouched reports whether key's bucket is full: it has spent nothing
	// lately.
	Untouched(key string) bool
}

// LimiterFactory builds one named set of buckets that refill perMinute
// tokens a minute and hold burst at most. The names are stable
// ("login-pair", "login-address", "login-name"): a shared store keys the
// sets by them.
type LimiterFactory func(name string, perMinute float64, burst int) KeyedLimiter

// NewLocalLimiter is the in-process LimiterFactory (the default, and what
// a shared one falls back on while its store is unreachable).
func NewLocalLimiter(_ string, perMinute float64, burst int) KeyedLimiter {
	return newLimiterSet(perMinute, burst)
}

// limiterSetSize bounds each set. A bucket evicted as least recently used
// has usually refilled already; one still spent costs at most its burst.
const limiterSetSize = 1 << 16

// limiterSet holds one token bucket per key in a bounded LRU, so neither a
// flood of new keys nor a long uptime grows it (and no scan runs per key).
type limiterSet struct {
	perSecond rate.Limit
	burst     int
	m         *lru.Cache[string, *rate.Limiter]
}

func newLimiterSet(perMinute float64, burst int) *limiterSet {
	m, err := lru.New[string, *rate.Limiter](limiterSetSize)
	if err != nil { // only for a size <= 0
		panic(err)
	}
	return &limiterSet{perSecond: rate.Limit(perMinute / 60), burst: max(burst, 1), m: m}
}

func (l *limiterSet) get(key string) *rate.Limiter {
	lim, ok := l.m.Get(key)
	if !ok {
		// PeekOrAdd keeps a concurrent caller's bucket for the same key.
		lim = rate.NewLimiter(l.perSecond, l.burst)
		if prev, found, _ := l.m.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	return lim
}

// Wait implements KeyedLimiter.
func (l *limiterSet) Wait(key string) time.Duration {
	lim, ok := l.m.Peek(key)
	if !ok {
		return 0
	}
	tokens := lim.Tokens()
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(l.perSecond) * float64(time.Second))
}

// Take implements KeyedLimiter.
func (l *limiterSet) Take(key string) (bool, time.Duration) {
	r := l.get(key).Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// Untouched implements KeyedLimiter.
func (l *limiterSet) Untouched(key string) bool {
	lim, ok := l.m.Peek(key)
	return !ok || lim.Tokens() >= float64(l.burst)
}

// tooMany builds the 429 for a wait, rounded up to whole seconds for
// Retry-After (RFC 9110 §10.2.3).
func tooMany(e *apiError, wait time.Duration) *apiError {
	c := *e
	c.retryAfter = int(math.Ceil(wait.Seconds()))
	if c.retryAfter < 1 {
		c.retryAfter = 1
	}
	return &c
}

// clientIP is the peer address, or — only when the peer is a configured
// trusted proxy — the right-most X-Forwarded-For entry that is not itself
// a trusted proxy. A client-supplied header is never believed by default
// (the ancestor's IP allowlist fell to exactly that).
func (s *Server) clientIP(r *http.Request) string {
	if ip, ok := forwardedClient(r); ok && ip != "" {
		return ip // forwarded by a node of the cluster, which saw the client
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip := ap.Addr().Unmap()
	if !s.trustedProxy(ip) {
		return ip.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		hop = hop.Unmap()
		if !s.trustedProxy(hop) {
			return hop.String()
		}
		ip = hop
	}
	return ip.String()
}

func (s *Server) trustedProxy(ip netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
