package prosody

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ForTest starts Prosody for a test and stops it in t.Cleanup. When
// opts.Dir is empty it uses t.TempDir(), so Stop followed by Restart keeps
// the data and the testing package removes the directory at the end. Any
// failure, including Prosody not being installed, fails the test: it never
// skips.
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
			t.Fatalf("real Prosody needed: %v", err)
		}
		t.Fatalf("starting Prosody: %v\n(Prosody 0.12 from Debian is expected: run `make deps` or `apt-get install -y prosody`)", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log tail (%s):\n%s", s.Dir, s.LogTail(40))
		}
		start := time.Now()
		if err := s.Stop(); err != nil {
			t.Errorf("stopping Prosody (after %v): %v", time.Since(start).Round(time.Millisecond), err)
		}
	})
	return s
}
