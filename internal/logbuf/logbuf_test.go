package logbuf

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lockedBuffer is an output the test can read while the timer writes.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) snapshot() (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String(), l.writes
}

func TestWriter_BatchesLinesUntilTheDelay(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, 50*time.Millisecond, 1<<20)
	for i := range 100 {
		_, err := w.Write([]byte("line " + strings.Repeat("x", i%7) + "\n"))
		require.NoError(t, err)
	}
	got, writes := out.snapshot()
	require.Empty(t, got, "nothing written before the delay")
	require.Zero(t, writes)
	require.Eventually(t, func() bool {
		got, writes = out.snapshot()
		return strings.Count(got, "\n") == 100
	}, 2*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, writes, "100 lines in one write")
	require.NoError(t, w.Close())
}

func TestWriter_FlushesWhenFull(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, time.Hour, 64)
	line := []byte(strings.Repeat("y", 31) + "\n")
	for range 4 {
		_, err := w.Write(line)
		require.NoError(t, err)
	}
	got, writes := out.snapshot()
	require.Equal(t, 2, writes, "two writes of 64 bytes each")
	require.Equal(t, strings.Repeat(string(line), 4), got)
	require.NoError(t, w.Close())
}

func TestWriter_CloseFlushesThenWritesThrough(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, time.Hour, 1<<20)
	_, _ = w.Write([]byte("before\n"))
	require.NoError(t, w.Close())
	got, _ := out.snapshot()
	require.Equal(t, "before\n", got)
	_, _ = w.Write([]byte("after\n"))
	got, _ = out.snapshot()
	require.Equal(t, "before\nafter\n", got, "writes after Close are not held")
}

func TestHandler_WarningsGoOutAtOnceWithWhatCameBefore(t *testing.T) {
	out := &lockedBuffer{}
	w := New(out, time.Hour, 1<<20)
	log := slog.New(Handler(slog.NewJSONHandler(w, nil), w, slog.LevelWarn)).With(slog.String("tag", "t"))
	log.Info("first")
	got, _ := out.snapshot()
	require.Empty(t, got, "info waits for the delay")
	log.WithGroup("g").Warn("second", slog.Int("n", 1))
	got, _ = out.snapshot()
	require.Contains(t, got, `"msg":"first"`)
	require.Contains(t, got, `"msg":"second"`)
	require.Less(t, strings.Index(got, "first"), strings.Index(got, "second"), "order kept")
	require.NoError(t, w.Close())
}
