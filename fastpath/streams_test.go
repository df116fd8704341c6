package fastpath

import (
	"testing"

	"github.com/stretchr/testify/require"
)

type fakeStream struct {
	offerable bool
	rooms     []string
	events    []any
}

func (f *fakeStream) PublishEvent(ev any) { f.events = append(f.events, ev) }
func (f *fakeStream) Offerable() bool     { return f.offerable }
func (f *fakeStream) InRoom(room string) bool {
	for _, r := range f.rooms {
		if r == room {
			return true
		}
	}
	return false
}

// StreamHooks maps a stream lookup onto what the queues ask: a missing
// stream is Gone and in no room, events reach only the stream named.
func TestStreamHooks(t *testing.T) {
	t.Parallel()
	agent := &fakeStream{offerable: true, rooms: []string{"wg-1@conference.example.com"}}
	busy := &fakeStream{}
	h := StreamHooks(func(id string) (Stream, bool) {
		switch id {
		case "agent":
			return agent, true
		case "busy":
			return busy, true
		}
		return nil, false
	})
	require.Equal(t, Available, h.Availability("agent"))
	require.Equal(t, Away, h.Availability("busy"))
	require.Equal(t, Gone, h.Availability("nobody"))
	require.True(t, h.InRoom("agent", "wg-1@conference.example.com"))
	require.False(t, h.InRoom("agent", "other@conference.example.com"))
	require.False(t, h.InRoom("nobody", "wg-1@conference.example.com"))
	h.Publish("agent", "offer")
	h.Publish("nobody", "lost")
	require.Equal(t, []any{"offer"}, agent.events)
	require.Empty(t, busy.events)
}
