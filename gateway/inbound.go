package gateway

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/hjson/hjson-go/v4"
	"mellium.im/xmpp/jid"
)

// handle translates one received top-level element into events, answers
// IQ requests, and routes IQ responses and archive results to waiters.
func (s *Stream) handle(c conn, n xmlNode) {
	switch n.XMLName.Local {
	case "message":
		s.handleMessage(n)
	case "presence":
		ev := presenceEvent(n, s.JID())
		if s.handleRoomPresence(n, ev) {
			return
		}
		s.contacts.update(ev)
		if sub, ok := subscriptionEvent(ev); ok {
			s.publish(sub)
			return
		}
		s.publish(ev)
	case "iq":
		s.handleIQ(c, n)
	}
}

func (s *Stream) handleMessage(n xmlNode) {
	if n.attr("type") == "error" && s.probes.bounced(n) {
		return
	}
	if isAccountProbe(n) && s.mgr.trustedNotifier(n.attr("from")) {
		// The gateway's service account checking that this account
		// exists (account.go): no event.
		return
	}
	if r := n.child(nsMAM, "result"); r != nil {
		s.deliverArchived(r, n.attr("from"))
		return
	}
	if s.handlePubSubEvent(n) {
		return
	}
	for _, dir := range []string{"sent", "received"} {
		cc := n.child(nsCarbons, dir)
		if cc == nil {
			continue
		}
		// XEP-0280 §11: only our own account may send carbons; anything
		// else is a spoofing attempt.
		if from := n.attr("from"); from != "" && from != s.user.String() {
			s.log.Warn("dropped carbon from a foreign JID")
			return
		}
		if inner, stamp := forwardedMessage(cc); inner != nil {
			if ev := s.translateMessage(*inner, messageOrigin{delay: stamp, carbon: dir}); ev != nil {
				s.publish(ev)
			}
		}
		return
	}
	if id := s.rooms.subjectAnswer(n); id != "" {
		answered := s.iqs.deliver(id, n)
		if n.attr("type") == "error" && answered {
			return // the caller of SetSubject hears it
		}
	}
	if inv, ok := mediatedInvitation(n); ok {
		s.checkInvitation(n, inv)
		return
	}
	ev := s.translateMessage(n, messageOrigin{})
	if me, ok := ev.(MessageEvent); ok && me.StanzaID != "" {
		if s.catchUp.hold(me) {
			return // a gap-fill runs: published after it, in order
		}
		if !s.deliveredOnce(me) {
			return // published already (a re-join's history, the gap-fill)
		}
	}
	s.publish(ev)
}

// forwardedMessage unwraps an XEP-0297 <forwarded/> child: the inner
// message and its delay stamp.
func forwardedMessage(n *xmlNode) (*xmlNode, string) {
	fwd := n.child(nsForward, "forwarded")
	if fwd == nil {
		return nil, ""
	}
	stamp := ""
	if d := fwd.child(nsDelay, "delay"); d != nil {
		stamp = d.attr("stamp")
	}
	return fwd.child("", "message"), stamp
}

// messageParts is what the gateway reads out of a message's children.
type messageParts struct {
	body, subject, thread, originID, stanzaID string
	// stanzaIDs are every XEP-0359 stanza-id by its "by": a room's own
	// is trusted for its groupchat messages.
	stanzaIDs           map[string]string
	delay, delayFrom    string
	hasBody             bool
	data                json.RawMessage
	extra               map[string]string
	attachments         []map[string]string
	chatState           string
	markable            bool
	marker, markerID    string
	replaceID, deleteID string
	destroyAfter        int
	command             *xmlNode
	errNode             *xmlNode
	extensions          []string
}

// readParts sorts a message's children into the parts the gateway models
// and keeps everything else as XML in extensions.
func readParts(n xmlNode, ownBare string) messageParts {
	var p messageParts
	for i := range n.Children {
		c := &n.Children[i]
		space, local := c.XMLName.Space, c.XMLName.Local
		switch {
		case local == "body" && (space == nsClient || space == ""):
			p.body, p.hasBody = c.Text, true
		case local == "subject" && (space == nsClient || space == ""):
			p.subject = c.Text
		case local == "thread" && (space == nsClient || space == ""):
			p.thread = c.Text
		case local == "error" && (space == nsClient || space == ""):
			p.errNode = c
		case space == "urn:xmpp:mam:tmp" && local == "archived":
			// The archive id of early XEP-0313 drafts, before XEP-0359's
			// <stanza-id/>, which ejabberd's mod_mam still adds next to it:
			// the same id, kept from clients like the stanza-id itself.
		case space == "urn:xmpp:sid:0" && local == "origin-id":
			p.originID = c.attr("id")
		case space == "urn:xmpp:sid:0" && local == "stanza-id":
			// Only ids our own server assigned are trustworthy (XEP-0359 §5);
			// a room's are, for the room's messages (translateMessage).
			if c.attr("by") == ownBare {
				p.stanzaID = c.attr("id")
			}
			if p.stanzaIDs == nil {
				p.stanzaIDs = map[string]string{}
			}
			p.stanzaIDs[c.attr("by")] = c.attr("id")
		case space == nsDelay && local == "delay":
			p.delay, p.delayFrom = c.attr("stamp"), c.attr("from")
		case space == nsJSON && local == "json":
			p.data = jsonValue(c.Text)
		case space == nsJiveProps && local == "properties":
			for _, prop := range c.Children {
				if prop.childText("", "name") == "data" {
					p.data = jsonValue(prop.childText("", "value"))
				}
			}
		case local == "extraParams":
			p.extra, p.attachments = readExtraParams(c)
		case space == nsChatStates && chatStates[local]:
			p.chatState = local
		case space == nsMarkers && local == "markable":
			p.markable = true
		case space == nsMarkers && (local == "received" || local == "displayed" || local == "acknowledged"):
			p.marker, p.markerID = local, c.attr("id")
		case space == nsCorrect && local == "replace":
			p.replaceID = c.attr("id")
		case space == nsDelete && local == "remove", space == nsRetract && local == "retract":
			p.deleteID = c.attr("id")
		case space == nsDestroy && local == "destroy":
			p.destroyAfter, _ = strconv.Atoi(c.attr("after"))
		case space == nsOOB && local == "x" && c.child("", "type") != nil:
			p.command = c
		default:
			p.extensions = append(p.extensions, c.xmlString())
		}
	}
	return p
}

// readExtraParams reads <extraParams/>: text children as params, and
// <attachment/> children as attribute maps.
func readExtraParams(n *xmlNode) (map[string]string, []map[string]string) {
	params := map[string]string{}
	var attachments []map[string]string
	for _, c := range n.Children {
		if c.XMLName.Local == "attachment" {
			a := map[string]string{}
			for _, at := range c.Attrs {
				if at.Name.Space == "" && at.Name.Local != "xmlns" {
					a[at.Name.Local] = at.Value
				}
			}
			attachments = append(attachments, a)
			continue
		}
		params[c.XMLName.Local] = c.Text
	}
	if len(params) == 0 {
		params = nil
	}
	return params, attachments
}

// jsonValue returns text as JSON: itself when valid, else as a JSON string.
func jsonValue(text string) json.RawMessage {
	if text == "" {
		return nil
	}
	if json.Valid([]byte(text)) {
		return json.RawMessage(text)
	}
	quoted, _ := json.Marshal(text)
	return quoted
}

// stamp normalises an XEP-0082 timestamp to RFC 3339 UTC; without one,
// the receipt time.
func stamp(delay string) (string, bool) {
	if t, ok := parseStamp(delay); ok {
		return t, true
	}
	return time.Now().UTC().Format(time.RFC3339Nano), false
}

func parseStamp(delay string) (string, bool) {
	if delay == "" {
		return "", false
	}
	t, err := time.Parse(time.RFC3339Nano, delay)
	if err != nil {
		return "", false
	}
	return t.UTC().Format(time.RFC3339Nano), true
}

// messageOrigin says how a message reached the stream. delay is the stamp
// of a <forwarded/> wrapper our server or the archive added (it overrides
// the message's own); carbon is "", "sent" or "received" (XEP-0280);
// archive is the bare JID of the archive a MAM result came from.
type messageOrigin struct {
	delay, carbon, archive string
}

// fromRoom reports whether a message from this sender may carry room
// semantics (groupchat, subject): only rooms this stream is in, or the
// room whose archive is being read, are rooms to it. Anyone else can put
// type='groupchat' on a message (XEP-0045 §7.2.4 leaves that to the room).
func (s *Stream) fromRoom(from string, o messageOrigin) bool {
	room := bareOf(from)
	if room == "" || room == s.user.String() {
		return false
	}
	if o.archive != "" && o.archive == room {
		return true
	}
	_, ok := s.rooms.get(room)
	return ok
}

// trustedDelay reports whether a message's own <delay/> was added by
// someone vouching for it: our server (offline storage, XEP-0160) or the
// room it came from (MUC history, XEP-0045 §7.2.15). Any other sender can
// write any stamp (XEP-0203 §3), so it is only a claim.
func (s *Stream) trustedDelay(p messageParts, from string, room bool) bool {
	switch {
	case p.delayFrom == s.user.Domain().String():
		return true
	case room:
		return bareOf(p.delayFrom) == bareOf(from)
	}
	return false
}

// translateMessage turns one message (top-level, carbon-copied or
// archived) into its event.
func (s *Stream) translateMessage(n xmlNode, o messageOrigin) any {
	own := s.user.String()
	from, to, id := n.attr("from"), n.attr("to"), n.attr("id")
	if to == "" {
		to = s.JID()
	}
	typ := n.attr("type")
	if typ == "" {
		typ = "normal" // RFC 6121 §5.2.2
	}
	p := readParts(n, own)
	// Only a groupchat message or one with its own delay needs to know
	// whether its sender is a room: chat messages skip the JID parse and
	// the rooms lock.
	room := (typ == "groupchat" || p.delay != "") && s.fromRoom(from, o)
	delay, claimed := o.delay, ""
	if delay == "" && p.delay != "" {
		if s.trustedDelay(p, from, room) {
			delay = p.delay
		} else {
			claimed, _ = parseStamp(p.delay)
		}
	}
	when, delayed := stamp(delay)
	if typ == "groupchat" && !room {
		typ = "normal" // a plain user's "groupchat" is no room message
	}
	if typ == "error" {
		if id == "" {
			id = s.pending.match(bareOf(from))
		}
		return ErrorEvent{Type: EventError, ID: id, From: from, To: to, Error: stanzaError(p.errNode)}
	}
	if rev := roomMessageEvent(n, p, typ); rev != nil {
		return rev
	}
	switch {
	case p.command != nil:
		return s.commandEvent(p.command, id, from, to)
	case p.marker != "":
		return MarkerEvent{Type: EventMarker, Marker: p.marker, ID: p.markerID, From: from, To: to, ExtraParams: p.extra}
	case p.deleteID != "":
		return DeleteEvent{Type: EventDelete, ID: p.deleteID, From: from, To: to, ExtraParams: p.extra}
	case typ == "headline" && p.extra["moduleIdentifier"] == ModuleSystemNotifications && s.mgr.trustedNotifier(from):
		params := map[string]string{}
		for k, v := range p.extra {
			if k != "moduleIdentifier" {
				params[k] = v
			}
		}
		return SystemEvent{Type: EventSystem, ID: id, From: from, To: to, Body: p.body, Stamp: when, Params: params}
	}
	hasContent := p.hasBody && p.body != "" || p.subject != "" || p.data != nil || p.extra != nil || p.attachments != nil
	if !hasContent && p.replaceID == "" {
		if p.chatState != "" {
			return ChatStateEvent{Type: EventChatState, From: from, To: to, State: p.chatState}
		}
		return RawEvent{Type: EventRaw, From: from, Stanza: n.xmlString()}
	}
	ev := MessageEvent{Type: typ, ID: id, OriginID: p.originID, StanzaID: p.stanzaID, From: from, To: to,
		Body: p.body, Subject: p.subject, Thread: p.thread, Stamp: when, Delayed: delayed, ClaimedStamp: claimed, Data: p.data,
		ExtraParams: p.extra, Attachments: p.attachments, ChatState: p.chatState, Markable: p.markable,
		ReplaceID: p.replaceID, DestroyAfter: p.destroyAfter, Carbon: o.carbon, Extensions: p.extensions}
	if ev.ReplaceID != "" {
		ev.Type = EventEdit
	}
	if typ == "groupchat" {
		if j, err := jid.Parse(from); err == nil {
			ev.Room, ev.Nick = j.Bare().String(), j.Resourcepart()
			// The room's archive id (XEP-0359 by the room, XEP-0313 §5.1.2):
			// what the room's history pages by, and what tells a message
			// the room replays on a re-join from one already published.
			ev.StanzaID = p.stanzaIDs[ev.Room]
		}
	}
	return ev
}

func bareOf(s string) string {
	if j, err := jid.Parse(s); err == nil {
		return j.Bare().String()
	}
	return s
}

// stanzaError reads an <error/> element (RFC 6120 §8.3).
func stanzaError(n *xmlNode) StanzaError {
	se := StanzaError{Type: "cancel", Condition: "undefined-condition"}
	if n == nil {
		return se
	}
	if t := n.attr("type"); t != "" {
		se.Type = t
	}
	for _, c := range n.Children {
		switch {
		case c.XMLName.Local == "text":
			se.Text = c.Text
		case c.XMLName.Space == nsStanzaError:
			se.Condition = c.XMLName.Local
		}
	}
	return se
}

// commandEvent reads an x:oob service command. Its payload is parsed
// leniently (Hjson accepts the unquoted keys and comments the protocol's
// own examples use); what still fails is delivered as raw text.
func (s *Stream) commandEvent(x *xmlNode, id, from, to string) CommandEvent {
	ev := CommandEvent{Type: EventCommand, ID: id, From: from, To: to,
		Command: strings.TrimSpace(x.childText("", "type")), Action: strings.TrimSpace(x.childText("", "action"))}
	if s.commands.answers(id) {
		ev.InReplyTo = id
	}
	raw := strings.TrimSpace(x.childText("", "payload"))
	if raw == "" {
		return ev
	}
	if json.Valid([]byte(raw)) {
		ev.Payload = json.RawMessage(raw)
		return ev
	}
	var v any
	if err := hjson.Unmarshal([]byte(raw), &v); err == nil {
		if b, err := json.Marshal(v); err == nil {
			ev.Payload = b
			return ev
		}
	} else {
		ev.PayloadError = err.Error()
	}
	ev.Payload, _ = json.Marshal(raw)
	if ev.PayloadError == "" {
		ev.PayloadError = "payload is not JSON"
	}
	return ev
}

func presenceEvent(n xmlNode, ownFull string) PresenceEvent {
	ev := PresenceEvent{Type: EventPresence, From: n.attr("from"), To: n.attr("to"), PresenceType: n.attr("type")}
	if ev.To == "" {
		ev.To = ownFull
	}
	for i := range n.Children {
		c := &n.Children[i]
		switch c.XMLName.Local {
		case "show":
			ev.Show = c.Text
		case "status":
			ev.Status = c.Text
		case "priority":
			ev.Priority, _ = strconv.Atoi(strings.TrimSpace(c.Text))
		case "error":
			se := stanzaError(c)
			ev.Error = &se
		default:
			ev.Extensions = append(ev.Extensions, c.xmlString())
		}
	}
	switch ev.PresenceType {
	case "":
		ev.PresenceType = "available"
		if ev.Show == "" {
			ev.Show = "available"
		}
	case "unavailable":
		ev.Show = "offline"
	}
	return ev
}

// handleIQ routes responses to their waiter and answers requests: XEP-0199
// pings and roster pushes (RFC 6121 §2.1.6) get a result, anything else
// service-unavailable (RFC 6120 §8.2.3: every get/set needs an answer).
func (s *Stream) handleIQ(c conn, n xmlNode) {
	typ, id, from := n.attr("type"), n.attr("id"), n.attr("from")
	switch typ {
	case "result", "error":
		if !s.iqs.deliver(id, n) {
			// An answer to a raw IQ a client sent through SendRaw.
			s.publish(RawEvent{Type: EventRaw, From: from, Stanza: n.xmlString()})
		}
		return
	case "get", "set":
	default:
		return
	}
	condition := "service-unavailable"
	if len(n.Children) > 0 {
		payload := n.Children[0].XMLName
		switch {
		case payload.Space == nsPing && typ == "get":
			condition = ""
		case payload.Space == nsRoster && typ == "set" && (from == "" || from == s.user.String()):
			condition = ""
		}
	}
	raw, err := encodeIQReply(from, id, condition)
	if err != nil {
		return
	}
	if err := c.Write(raw); err != nil {
		s.log.Debug("answering IQ", slog.String("error", err.Error()))
	}
	if condition == "" && typ == "set" {
		if q := n.child(nsRoster, "query"); q != nil {
			for i := range q.Children {
				s.publish(RosterEvent{Type: EventRoster, Item: rosterItemOf(&q.Children[i])})
			}
		}
	}
}
