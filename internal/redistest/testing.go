package redistest

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ForTest starts redis-server for a test and stops it in t.Cleanup, logging
// its output when the test failed. Any failure, including redis-server not
// being installed, fails the test: it never skips, so CI cannot pass
// without the real server.
func ForTest(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*startTimeout)
	defer cancel()
	s, err := Start(ctx, o)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) {
			t.Fatalf("real Redis needed: %v", err)
		}
		t.Fatalf("starting redis-server: %v\n(Debian's redis-server is expected: run `make deps` or `apt-get install -y redis-server`)", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis-server output tail (%s):\n%s", s.Addr, s.LogTail(30))
		}
		start := time.Now()
		if err := s.Stop(); err != nil {
			t.Errorf("stopping redis-server (after %v): %v", time.Since(start).Round(time.Millisecond), err)
		}
	})
	return s
}
