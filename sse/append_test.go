package sse

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// next reads one event of sub with a deadline.
func nextEvent(t *testing.T, sub *Subscription) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ev, err := sub.Next(ctx)
	require.NoError(t, err)
	return ev
}

func resetOf(t *testing.T, ev Event) resetEvent {
	t.Helper()
	var r resetEvent
	require.NoError(t, json.Unmarshal(ev.Data, &r))
	require.Equal(t, "reset", r.Type, "want a reset event, got %s", ev.Data)
	return r
}

// Topics fed by Append carry the log's ids and epoch: the ids clients see
// are "<offset>.<epoch>", a resume needs the same epoch, and a change of
// epoch or a gap turns into a reset for live subscribers too.
func TestAppend_IDsFromTheLogWithTheirEpoch(t *testing.T) {
	b := NewBroker(WithReplaySize(4))
	defer b.Close()
	require.False(t, b.Append("t", 5, "e1", []byte(`{}`)), "closed topic")
	b.Open("t")

	// The first Append sets where the topic starts: no reset, nobody missed anything.
	for off := uint64(5); off <= 7; off++ {
		require.True(t, b.Append("t", off, "e1", []byte(`{"n":`+EventID(off, "")+`}`)))
	}
	require.EqualValues(t, 7, b.LastID("t"))

	sub, err := b.Subscribe("t", "")
	require.NoError(t, err)
	defer sub.Close()
	for off := uint64(5); off <= 7; off++ {
		ev := nextEvent(t, sub)
		require.Equal(t, Event{ID: off, Epoch: "e1", Data: []byte(`{"n":` + EventID(off, "") + `}`)}, ev)
	}

	// Resuming: same epoch continues; a bare integer or another epoch cannot
	// be checked against this log and gets a reset first.
	for _, tc := range []struct {
		last      string
		reset     bool
		firstNext uint64
	}{
		{"6.e1", false, 7},
		{"4.e1", false, 5},
		{"6", true, 5},
		{"6.e0", true, 5},
		{"3.e1", true, 5}, // older than the retained events
		{"9.e1", true, 5}, // from the future
	} {
		s, err := b.Subscribe("t", tc.last)
		require.NoError(t, err)
		ev := nextEvent(t, s)
		if tc.reset {
			r := resetOf(t, ev)
			require.Equal(t, tc.last, r.LastEventID)
			require.EqualValues(t, 5, r.OldestID, tc.last)
			require.Equal(t, Event{ID: 4, Epoch: "e1"}, Event{ID: ev.ID, Epoch: ev.Epoch}, tc.last)
			ev = nextEvent(t, s)
		}
		require.Equal(t, tc.firstNext, ev.ID, tc.last)
		s.Close()
	}

	// A new epoch (Redis lost the log): live subscribers are told, and what
	// follows has the new epoch's ids.
	require.True(t, b.Append("t", 1, "e2", []byte(`{"n":1}`)))
	r := nextEvent(t, sub)
	require.Equal(t, "7.e1", resetOf(t, r).LastEventID)
	require.Equal(t, "0.e2", EventID(r.ID, r.Epoch))
	require.Equal(t, "1.e2", EventID(nextEvent(t, sub).ID, "e2"))

	// A gap in the same epoch is a reset as well; Rebase says so explicitly.
	require.True(t, b.Append("t", 3, "e2", []byte(`{}`)))
	r = nextEvent(t, sub)
	require.Equal(t, "1.e2", resetOf(t, r).LastEventID)
	require.EqualValues(t, 3, resetOf(t, r).OldestID)
	require.EqualValues(t, 3, nextEvent(t, sub).ID)
	require.True(t, b.Rebase("t", 10, "e2"))
	r = nextEvent(t, sub)
	require.Equal(t, "3.e2", resetOf(t, r).LastEventID)
	require.EqualValues(t, 10, r.ID)
	require.True(t, b.Rebase("t", 10, "e2"), "same position: nothing to say")
	require.True(t, b.Append("t", 11, "e2", []byte(`{"n":11}`)))
	require.EqualValues(t, 11, nextEvent(t, sub).ID)

	// A resume at the rebased position continues without a reset.
	s, err := b.Subscribe("t", "10.e2")
	require.NoError(t, err)
	require.EqualValues(t, 11, nextEvent(t, s).ID)
	s.Close()
}

// The ids of the broker's own topics stay bare integers.
func TestEventID_Forms(t *testing.T) {
	require.Equal(t, "12", EventID(12, ""))
	require.Equal(t, "12.ab", EventID(12, "ab"))
	id, epoch, err := parseEventID("12.ab")
	require.NoError(t, err)
	require.Equal(t, uint64(12), id)
	require.Equal(t, "ab", epoch)
	_, _, err = parseEventID("x.ab")
	require.Error(t, err)
	require.Equal(t, "id: 3.e\ndata: {}\n\n", string(frame(3, "e", []byte(`{}`))))
}
