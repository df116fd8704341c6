package redistest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestServer_RestartPauseKill(t *testing.T) {
	t.Parallel()
	s := ForTest(t)
	ctx := t.Context()
	require.NoError(t, Ping(ctx, s.Addr))
	port := s.Port

	require.NoError(t, s.Restart(ctx))
	require.Equal(t, port, s.Port, "Restart keeps the port")
	require.NoError(t, Ping(ctx, s.Addr))

	require.NoError(t, s.Pause())
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := Ping(short, s.Addr)
	cancel()
	require.Error(t, err, "a paused server answers nothing")
	require.NoError(t, s.Resume())
	require.NoError(t, Ping(ctx, s.Addr))

	require.NoError(t, s.Kill())
	require.False(t, s.Running())
	require.Error(t, Ping(ctx, s.Addr))
	require.NoError(t, s.Restart(ctx))
	require.NoError(t, Ping(ctx, s.Addr))
}

func TestServer_StopWhilePaused(t *testing.T) {
	t.Parallel()
	s, err := Start(t.Context(), Options{})
	require.NoError(t, err)
	require.NoError(t, s.Pause())
	start := time.Now()
	require.NoError(t, s.Stop(), "Stop continues a paused server so SIGTERM works")
	require.Less(t, time.Since(start), stopTimeout)
	require.False(t, s.Running())
	require.NoDirExists(t, s.Dir, "Start's own temp dir is removed")
}
