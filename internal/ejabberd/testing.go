package ejabberd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ForTest starts ejabberd for a test and stops it in t.Cleanup. When
// opts.Dir is empty it uses t.TempDir(), so Kill followed by Restart keeps
// the data. Any failure, including ejabberd not being installed, fails the
// test: it never skips.
func ForTest(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*startTimeout)
	defer cancel()
	s, err := Start(ctx, opts)
	if err != nil {
		if errors.Is(err, ErrNotInstalled) {
			t.Fatalf("real ejabberd needed: %v", err)
		}
		t.Fatalf("starting ejabberd: %v\n(ejabberd 23.01 from Debian is expected: `bash scripts/install-deps.sh ejabberd`)", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("ejabberd log tail (%s):\n%s", s.Dir, s.LogTail(40))
		}
		start := time.Now()
		if err := s.Stop(); err != nil {
			t.Errorf("stopping ejabberd (after %v): %v", time.Since(start).Round(time.Millisecond), err)
		}
	})
	return s
}
