package api

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
)

func TestClientIP_TrustsOnlyConfiguredProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted []string
		remote  string
		xff     string
		want    string
	}{
		{"no proxy configured: header ignored", nil, "203.0.113.9:4000", "198.51.100.1", "203.0.113.9"},
		{"untrusted peer: header ignored", []string{"10.0.0.0/8"}, "203.0.113.9:4000", "198.51.100.1", "203.0.113.9"},
		{"trusted peer: client from header", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "198.51.100.1", "198.51.100.1"},
		{"spoofed left entries skipped", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "1.1.1.1, 198.51.100.1, 10.9.9.9", "198.51.100.1"},
		{"garbage stops the walk", []string{"10.0.0.0/8"}, "10.1.2.3:4000", "198.51.100.1, nonsense", "10.1.2.3"},
		{"v4-mapped v6 peer", []string{"127.0.0.1/32"}, "[::ffff:127.0.0.1]:80", "192.0.2.7", "192.0.2.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var prefixes []netip.Prefix
			for _, p := range tt.trusted {
				prefixes = append(prefixes, netip.MustParsePrefix(p))
			}
			s := NewServer(Config{JWTSecret: testSecret, TrustedProxies: prefixes}, nil, nil, nil)
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			require.Equal(t, tt.want, s.clientIP(r))
		})
	}
}

func TestLimiterSet(t *testing.T) {
	t.Parallel()
	l := newLimiterSet(60, 3) // one per second, burst 3
	for range 3 {
		ok, _ := l.Take("k")
		require.True(t, ok)
	}
	ok, wait := l.Take("k")
	require.False(t, ok)
	require.Greater(t, wait, 500*time.Millisecond)
	require.LessOrEqual(t, wait, time.Second)
	require.Greater(t, l.Wait("k"), time.Duration(0))
	require.Zero(t, l.Wait("other"), "keys are independent")
	e := tooMany(errLoginRateLimited, 1500*time.Millisecond)
	require.Equal(t, 2, e.retryAfter, "Retry-After rounds up")
	require.Equal(t, 0, errLoginRateLimited.retryAfter, "the table stays untouched")
	require.True(t, l.Untouched("other"))
	require.False(t, l.Untouched("k"))
}

func TestTokens_RevocationClosesWatchers(t *testing.T) {
	t.Parallel()
	tk := newTokens(testSecret, tokenIssuer, time.Hour)
	user, err := gateway.UserJID("alice", "localhost")
	require.NoError(t, err)
	raw1, _, err := tk.issue(user, "sid-1")
	require.NoError(t, err)
	raw2, _, err := tk.issue(user, "sid-1")
	require.NoError(t, err)
	raw3, _, err := tk.issue(user, "sid-2")
	require.NoError(t, err)
	c1, _ := tk.verify(raw1)
	c2, _ := tk.verify(raw2)
	c3, _ := tk.verify(raw3)
	watch1, release1 := tk.watch(c1)
	done1 := watch1.Done()
	defer release1()
	watch2, release2 := tk.watch(c2)
	done2 := watch2.Done()
	defer release2()
	watch3, release3 := tk.watch(c3)
	done3 := watch3.Done()
	defer release3()

	tk.revoke(c1)
	requireClosed(t, done1)
	requireOpen(t, done2)
	_, err = tk.verify(raw1)
	require.ErrorIs(t, err, errTokenRevoked)
	_, err = tk.verify(raw2)
	require.NoError(t, err, "revoking one token leaves its siblings")

	tk.revokeStream("sid-1")
	requireClosed(t, done2)
	requireOpen(t, done3)
	_, err = tk.verify(raw2)
	require.ErrorIs(t, err, errTokenRevoked)
	_, err = tk.verify(raw3)
	require.NoError(t, err)

	admin, _, err := tk.issueAdmin("ops", time.Minute)
	require.NoError(t, err)
	ac, err := tk.verify(admin)
	require.NoError(t, err)
	require.Equal(t, roleAdmin, ac.Role)
}

func requireClosed(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	default:
		t.Fatal("channel still open")
	}
}

func requireOpen(t *testing.T, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
		t.Fatal("channel closed")
	default:
	}
}

func TestTokens_CachedTokensStillExpire(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tk := newTokens(testSecret, tokenIssuer, time.Minute)
	tk.now = func() time.Time { return now }
	user, err := gateway.UserJID("alice", "localhost")
	require.NoError(t, err)
	raw, _, err := tk.issue(user, "sid-1")
	require.NoError(t, err)
	_, err = tk.verify(raw)
	require.NoError(t, err)
	_, err = tk.verify(raw)
	require.NoError(t, err, "served from the cache")
	now = now.Add(2 * time.Minute)
	_, err = tk.verify(raw)
	require.ErrorIs(t, err, errTokenExpired)
}
