package gateway

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
)

// idleConn returns every byte once, in order, whether read by ReadByte or
// Read and whatever the sizes of the writes; after a burst that filled its
// small buffer it borrows a large one and gives it back once a read finds
// the socket drained.
func TestIdleConn_ReadsEveryByteAndGivesBackItsBuffer(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer client.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	want := make([]byte, 200_000)
	for i := range want {
		want[i] = byte(rng.IntN(256))
	}
	written := make(chan error, 1)
	go func() {
		rest := want
		for len(rest) > 0 {
			n := min(len(rest), 1+rng.IntN(3*busyReadBytes))
			if _, err := server.Write(rest[:n]); err != nil {
				written <- err
				return
			}
			rest = rest[n:]
		}
		written <- server.Close()
	}()

	c := newIdleConn(client)
	var got bytes.Buffer
	sawBusy := false
	for {
		if got.Len()%7 == 0 {
			p := make([]byte, 1+got.Len()%300)
			n, err := c.Read(p)
			got.Write(p[:n])
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
		} else {
			b, err := c.ReadByte()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			got.WriteByte(b)
		}
		sawBusy = sawBusy || c.busy != nil
	}
	require.NoError(t, <-written)
	require.Equal(t, want, got.Bytes())
	require.True(t, sawBusy, "writes larger than the small buffer are read into a borrowed one")
	_, err := c.ReadByte()
	require.ErrorIs(t, err, io.EOF, "the end stays the end")
}

// An idle stream holds no borrowed buffer: after a burst, the first read
// that leaves the socket drained gives it back.
func TestIdleConn_IdleHoldsOnlyTheSmallBuffer(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	c := newIdleConn(client)
	burst := bytes.Repeat([]byte("x"), idleReadBytes) // fills the small buffer exactly
	go func() {
		_, _ = server.Write(burst)
		_, _ = server.Write([]byte("tail")) // a short read: the socket is drained
		_, _ = server.Write([]byte("!"))
	}()
	for range len(burst) {
		_, err := c.ReadByte()
		require.NoError(t, err)
	}
	require.NotNil(t, c.busy, "a full read borrows the large buffer for what follows")
	for range len("tail") {
		_, err := c.ReadByte()
		require.NoError(t, err)
	}
	b, err := c.ReadByte()
	require.NoError(t, err)
	require.Equal(t, byte('!'), b)
	require.Nil(t, c.busy, "a drained socket gives the large buffer back")
}
