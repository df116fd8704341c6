package api

import (
	"math"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiterSet holds one token bucket per key (a username, a client IP, a
// stream). Buckets that have refilled completely carry no information, so
// they are dropped when the set grows past its bound.
type limiterSet struct {
	perSecond rate.Limit
	burst     int
	max       int

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newLimiterSet(perMinute float64, burst int) *limiterSet {
	return &limiterSet{perSecond: rate.Limit(perMinute / 60), burst: max(burst, 1), max: 10000,
		m: map[string]*rate.Limiter{}}
}

func (l *limiterSet) get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[key]
	if !ok {
		if len(l.m) >= l.max {
			for k, v := range l.m {
				if v.Tokens() >= float64(l.burst) {
					delete(l.m, k)
				}
			}
		}
		lim = rate.NewLimiter(l.perSecond, l.burst)
		l.m[key] = lim
	}
	return lim
}

// wait returns how long until key may act again (0 if it may now).
func (l *limiterSet) wait(key string) time.Duration {
	tokens := l.get(key).Tokens()
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(l.perSecond) * float64(time.Second))
}

// take spends one token for key, reporting false (and the wait) when none
// is left.
func (l *limiterSet) take(key string) (bool, time.Duration) {
	lim := l.get(key)
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
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
