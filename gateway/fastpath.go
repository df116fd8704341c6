package gateway

// Hooks for the gateway-run workgroup queues (package fastpath): it needs
// to send its own JSON events to a stream and to know whether an agent's
// stream would take an offer.

// PublishEvent publishes v, encoded as JSON, as one event on the stream's
// topic (the same channel stanza events use).
func (s *Stream) PublishEvent(v any) { s.publish(v) }

// Presence returns the presence the stream last broadcast with SetPresence
// (zero value: available, as after login).
func (s *Stream) Presence() OutgoingPresence {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.presence
}

// Offerable reports whether the stream is online and its broadcast
// presence is neither dnd, xa nor unavailable.
func (s *Stream) Offerable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.presence
	return s.state == StateOnline && !s.closing && p.Type == "" && p.Show != "dnd" && p.Show != "xa"
}

// InRoom reports whether the stream is in room (a bare room JID) now.
func (s *Stream) InRoom(room string) bool {
	s.rooms.mu.Lock()
	defer s.rooms.mu.Unlock()
	jr, ok := s.rooms.byRoom[room]
	return ok && jr.waiter == nil
}
