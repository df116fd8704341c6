package cluster

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/fastpath"
	"github.com/xmppgw/xmppgw/internal/redistest"
)

// nopHooks is a fastpath.Hooks whose streams are all available.
type nopHooks struct{}

func (nopHooks) Publish(string, any)                       {}
func (nopHooks) Availability(string) fastpath.Availability { return fastpath.Available }
func (nopHooks) InRoom(string, string) bool                { return false }

func fastpathNode(t *testing.T, srv *redistest.Server, name string) (*FastpathLeader, *Heartbeat) {
	t.Helper()
	c := newNode(t, srv, Config{Node: name, Advertise: name + ".internal:7001", LeaseRenew: 50 * time.Millisecond, LeaseTTL: 300 * time.Millisecond})
	hb, err := c.StartHeartbeat(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = hb.Stop(context.Background()) })
	l := c.NewFastpathLeader(hb, []fastpath.Workgroup{{Name: "help", Members: []string{"agent@example.com"}, Open: true}},
		fastpath.Options{}, slog.New(slog.DiscardHandler))
	l.Start(nopHooks{})
	t.Cleanup(func() { l.Stop(context.Background()) })
	return l, hb
}

// One node at a time runs the queues; its state is in Redis after each
// change, so when it hands them over (Stop) the next leader has the same
// tickets in the same places; a leader whose lease another node took
// stops running them.
func TestFastpathLeader_OneAtATimeAndTheStateMoves(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	ctx := t.Context()
	a, _ := fastpathNode(t, srv, "a")
	require.Eventually(t, func() bool { return a.Local() != nil }, 5*time.Second, 10*time.Millisecond, "the first node leads")
	b, _ := fastpathNode(t, srv, "b")
	addr, err := b.LeaderAddr(ctx)
	require.NoError(t, err)
	require.Equal(t, "a.internal:7001", addr)

	svc := a.Local()
	first, err := svc.Ask(fastpath.AskRequest{Workgroup: "help", User: "u1@example.com", Stream: "s1", Question: "one"})
	require.NoError(t, err)
	second, err := svc.Ask(fastpath.AskRequest{Workgroup: "help", User: "u2@example.com", Stream: "s2", Question: "two"})
	require.NoError(t, err)
	require.NoError(t, a.Persist(ctx, svc))
	time.Sleep(500 * time.Millisecond) // b is Steady by now, and still follows
	require.Nil(t, b.Local(), "two leaders")

	a.Stop(ctx) // hands over at once
	require.Eventually(t, func() bool { return b.Local() != nil }, 5*time.Second, 10*time.Millisecond, "b takes the queues")
	require.Nil(t, a.Local())
	for _, want := range []fastpath.TicketInfo{first, second} {
		got, err := b.Local().Ticket(want.Ticket, want.User, false)
		require.NoError(t, err)
		require.Equal(t, want.Position, got.Position, "ticket %s kept its place", want.Question)
		require.Equal(t, fastpath.StateQueued, got.State)
	}
	addr, err = b.LeaderAddr(ctx)
	require.NoError(t, err)
	require.Equal(t, "b.internal:7001", addr)

	// Split brain: the lease is taken from b (as after b was paused past
	// the TTL and another node won it): b stops running the queues, and a
	// write with its old lease is refused.
	b.mu.Lock()
	old := b.lease
	b.mu.Unlock()
	require.NoError(t, b.c.rdb.Set(ctx, b.c.keys.FastpathLeader(), "c 99 c.internal:7001", time.Minute).Err())
	require.Eventually(t, func() bool { return b.Local() == nil }, 5*time.Second, 10*time.Millisecond, "b steps down")
	err = saveFastpathScript.Run(ctx, b.c.rdb, []string{b.c.keys.FastpathLeader(), b.c.keys.FastpathState()}, old, "{}").Err()
	require.ErrorIs(t, scriptError(err), ErrFenced)
}

// A call that ran on the engine of a leader that stepped down meanwhile
// (its lease taken) changed nothing the cluster keeps: Persist says so
// instead of answering as if the change were saved.
func TestFastpathLeader_PersistFailsForAnEngineThatSteppedDown(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	ctx := t.Context()
	a, _ := fastpathNode(t, srv, "a")
	require.Eventually(t, func() bool { return a.Local() != nil }, 5*time.Second, 10*time.Millisecond, "a leads")
	svc := a.Local() // what a call on a takes, before it runs

	require.NoError(t, a.c.rdb.Set(ctx, a.c.keys.FastpathLeader(), "c 99 c.internal:7001", time.Minute).Err())
	require.Eventually(t, func() bool { return a.Local() == nil }, 5*time.Second, 10*time.Millisecond, "a steps down")
	_, err := svc.Ask(fastpath.AskRequest{Workgroup: "help", User: "u1@example.com", Stream: "s1", Question: "one"})
	require.NoError(t, err, "the call itself runs on the old engine")
	require.ErrorIs(t, a.Persist(ctx, svc), ErrNotFastpathLeader)
}

// The leader judges its leadership by its own fastpath lease: when that
// cannot be renewed (here its key turned into another type, as when the
// Redis holding it fails while the node's lease key is fine) it steps
// down within the TTL, though its node lease still holds.
func TestFastpathLeader_StepsDownWhenItsOwnLeaseCannotBeRenewed(t *testing.T) {
	t.Parallel()
	srv := redistest.ForTest(t)
	ctx := t.Context()
	a, hb := fastpathNode(t, srv, "a")
	require.Eventually(t, func() bool { return a.Local() != nil }, 5*time.Second, 10*time.Millisecond, "a leads")

	key := a.c.keys.FastpathLeader()
	_, err := a.c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		p.HSet(ctx, key, "x", "y")
		return nil
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return a.Local() == nil }, 2*time.Second, 10*time.Millisecond, "a steps down")
	require.True(t, hb.Valid(), "the node lease holds throughout")
}
