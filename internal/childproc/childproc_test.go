package childproc

import (
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStop_GracefulEndsAWillingProcess(t *testing.T) {
	p, err := Start(exec.Command("sleep", "30"), nil)
	require.NoError(t, err)
	require.False(t, p.Exited())
	require.NoError(t, p.Stop(true, 5*time.Second))
	require.True(t, p.Exited())
	require.Error(t, p.Err(), "sleep was ended by a signal")
}

func TestStop_KillsAProcessThatIgnoresTerm(t *testing.T) {
	// The shell ignores SIGTERM and so does the sleep it starts in its group.
	ran := make(chan struct{})
	p, err := Start(exec.Command("sh", "-c", `trap "" TERM; sleep 30`), func() { close(ran) })
	require.NoError(t, err)
	time.Sleep(200 * time.Millisecond) // let the shell install its trap
	err = p.Stop(true, 300*time.Millisecond)
	require.True(t, errors.Is(err, ErrIgnoredTerm), "got %v", err)
	<-ran
	require.True(t, p.Exited())
}

func TestStop_CrashAndAfterExitedAreQuiet(t *testing.T) {
	p, err := Start(exec.Command("sleep", "30"), nil)
	require.NoError(t, err)
	require.NoError(t, p.Stop(false, 5*time.Second))
	require.NoError(t, p.Stop(true, 5*time.Second), "stopping an ended process is a no-op")
}
