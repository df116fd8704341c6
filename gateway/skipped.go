package gateway

import "log/slog"

// skipCondition is the stanza error condition of a skipped stanza (RFC
// 6120 §8.3.3.12: the gateway understands it but will not process it).
const skipCondition = "not-acceptable"

// skippedEvent is the error event for a received stanza the gateway would
// not read: who sent it and why, never its payload.
func skippedEvent(kind, id, from, to, reason string) ErrorEvent {
	return ErrorEvent{Type: EventError, ID: id, From: from, To: to, Skipped: kind,
		Error: StanzaError{Type: "cancel", Condition: skipCondition, Text: reason}}
}

// handleSkipped deals with a top-level element readStanza did not read
// whole (n.bad says why), as one stanza: the connection stays up. Whatever
// waits for it hears of it (an archive query, an IQ request); the
// subscribers get one error event naming the sender, which for a
// forwarded copy (XEP-0280 carbon) is the original sender. A pubsub
// notification whose only bad parts are items is delivered with those
// items marked skipped.
func (s *Stream) handleSkipped(c conn, n xmlNode) {
	kind, id, from, to := n.XMLName.Local, n.attr("id"), n.attr("from"), n.attr("to")
	switch kind {
	case "message":
		if r := n.child(nsMAM, "result"); r != nil {
			s.skipArchived(r, n.attr("from"), n.bad)
			return
		}
		if n.child(nsPubSubEvent, "event") != nil && n.badOnlyInside(isPubSubItem) {
			s.handlePubSubEvent(n)
			return
		}
		for _, dir := range []string{"sent", "received"} {
			cc := n.child(nsCarbons, dir)
			if cc == nil {
				continue
			}
			// XEP-0280 §11: only our own account sends carbons.
			if from != "" && from != s.user.String() {
				s.log.Warn("dropped a skipped carbon from a foreign JID")
				return
			}
			if inner, _ := forwardedMessage(cc); inner != nil {
				id, from, to = inner.attr("id"), inner.attr("from"), inner.attr("to")
			}
			break
		}
		// Once per archived message: the gap-fill after a reconnect
		// reports the ones that arrived while the connection was down.
		for _, c := range n.Children {
			if c.XMLName.Space == nsOriginID && c.XMLName.Local == "stanza-id" && c.attr("by") == s.user.String() {
				if !s.archive.delivered(c.attr("id")) {
					return
				}
				break
			}
		}
	case "iq":
		switch n.attr("type") {
		case "result", "error":
			if s.iqs.deliver(id, n) {
				return // the request reports it (ErrStanzaSkipped)
			}
		case "get", "set":
			// RFC 6120 §8.2.3: every request gets an answer.
			if raw, err := encodeIQReply(from, id, skipCondition); err == nil {
				if err := c.Write(raw); err != nil {
					s.log.Debug("answering a skipped IQ", slog.String("error", err.Error()))
				}
			}
		}
	case "presence":
	default:
		// Not a stanza (e.g. a stream management element): nobody to tell.
		s.log.Info("skipped a top-level element", slog.String("element", kind), slog.String("reason", n.bad))
		return
	}
	s.log.Info("skipped a stanza", slog.String("stanza", kind), slog.String("reason", n.bad))
	if to == "" {
		to = s.JID()
	}
	s.publish(skippedEvent(kind, id, from, to, n.bad))
}
