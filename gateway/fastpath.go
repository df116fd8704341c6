package gateway

import (
	"context"

	"mellium.im/xmpp/jid"
)

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
	return s.state == StateOnline && !s.closing && s.presence.Offerable()
}

// Offerable reports whether a stream broadcasting this presence takes
// workgroup offers: available, and neither dnd nor xa.
func (p OutgoingPresence) Offerable() bool {
	return p.Type == "" && p.Show != "dnd" && p.Show != "xa"
}

// InRoom reports whether the stream is in room (a bare room JID) now.
func (s *Stream) InRoom(room string) bool {
	s.rooms.mu.Lock()
	defer s.rooms.mu.Unlock()
	jr, ok := s.rooms.byRoom[room]
	return ok && jr.waiter == nil
}

// OpenConversationRoom opens the room of a workgroup conversation between
// this (agent's) stream and user: join (which creates it, this stream its
// owner; XEP-0045 §10.1), configure it members-only, hidden and persistent
// and named after the workgroup and question (§10.2), make user a member
// (§9.3) and invite them with the question as reason (mediated, §7.8.2).
func (s *Stream) OpenConversationRoom(ctx context.Context, room, user jid.JID, workgroup, question string) error {
	if err := s.JoinRoom(ctx, room, JoinOptions{Nick: s.User().Localpart(), MaxStanzas: 0}); err != nil {
		return err
	}
	name := workgroup + ": " + question
	if r := []rune(name); len(r) > 100 {
		name = string(r[:100])
	}
	cfg := RoomConfig{"name": name, "members_only": true, "public": false, "persistent": true}
	if err := s.ConfigureRoom(ctx, room, cfg); err != nil {
		return err
	}
	if err := s.SetAffiliation(ctx, room, user, "member", "workgroup "+workgroup); err != nil {
		return err
	}
	return s.Invite(ctx, room, user, question, false)
}
