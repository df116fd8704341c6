package fastpath

// Stream is what the queues need of one gateway stream.
type Stream interface {
	// PublishEvent sends one JSON-encodable event to the stream's subscribers.
	PublishEvent(event any)
	// Offerable reports whether the stream is online with a presence that
	// takes offers (not dnd, xa or unavailable).
	Offerable() bool
	// InRoom reports whether the stream is in a room (bare JID) now.
	InRoom(room string) bool
}

// StreamHooks are the Hooks of a Service whose agents and users are
// gateway streams, found by id with lookup (ok false: the stream is gone).
func StreamHooks(lookup func(id string) (Stream, bool)) Hooks { return streamHooks(lookup) }

type streamHooks func(id string) (Stream, bool)

func (h streamHooks) Publish(stream string, event any) {
	if st, ok := h(stream); ok {
		st.PublishEvent(event)
	}
}

func (h streamHooks) Availability(stream string) Availability {
	st, ok := h(stream)
	switch {
	case !ok:
		return Gone
	case st.Offerable():
		return Available
	}
	return Away
}

func (h streamHooks) InRoom(stream, room string) bool {
	st, ok := h(stream)
	return ok && st.InRoom(room)
}
