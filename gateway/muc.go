package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// MUC namespaces (XEP-0045, XEP-0249).
const (
	nsMUC       = "http://jabber.org/protocol/muc"
	nsMUCUser   = "http://jabber.org/protocol/muc#user"
	nsMUCOwner  = "http://jabber.org/protocol/muc#owner"
	nsMUCAdmin  = "http://jabber.org/protocol/muc#admin"
	nsConfer    = "jabber:x:conference"
	nsDiscoInfo = "http://jabber.org/protocol/disco#info"
	nsDiscoItem = "http://jabber.org/protocol/disco#items"
)

// Room event types.
const (
	EventOccupant   = "occupant"
	EventSubject    = "subject"
	EventInvitation = "invitation"
	EventRoomError  = "room_error"
)

// ErrNickConflict means the nickname is taken in the room (XEP-0045 §7.2.9).
var ErrNickConflict = errors.New("nickname already in use in the room")

// Occupant is someone in a room.
type Occupant struct {
	Nick        string `json:"nick"`
	Role        string `json:"role"`
	Affiliation string `json:"affiliation"`
	// JID is the occupant's real JID when the room shows it.
	JID    string `json:"jid,omitempty"`
	Show   string `json:"show"`
	Status string `json:"status,omitempty"`
}

// OccupantEvent reports an occupant joining, changing, or leaving.
type OccupantEvent struct {
	Type     string `json:"type"`
	Room     string `json:"room"`
	Occupant        // embedded: nick, role, affiliation, jid, show, status
	// Available is false when the occupant left (or was kicked/banned).
	Available bool `json:"available"`
	// Self marks our own occupant (status code 110).
	Self bool `json:"self,omitempty"`
	// Codes are the XEP-0045 status codes (e.g. 307 kicked, 301 banned).
	Codes  []int  `json:"codes,omitempty"`
	Reason string `json:"reason,omitempty"`
	Actor  string `json:"actor,omitempty"`
}

// SubjectEvent is a room subject change.
type SubjectEvent struct {
	Type    string `json:"type"`
	Room    string `json:"room"`
	Nick    string `json:"nick,omitempty"`
	Subject string `json:"subject"`
}

// InvitationEvent is a room invitation, mediated (XEP-0045 §7.8.2) or
// direct (XEP-0249).
type InvitationEvent struct {
	Type     string `json:"type"`
	Room     string `json:"room"`
	From     string `json:"from"`
	Inviter  string `json:"inviter,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Password string `json:"password,omitempty"`
	Direct   bool   `json:"direct"`
}

// RoomErrorEvent reports a room refusing something (nick conflict,
// not-authorized, ...).
type RoomErrorEvent struct {
	Type      string      `json:"type"`
	Room      string      `json:"room"`
	Nick      string      `json:"nick,omitempty"`
	Condition string      `json:"condition"`
	Error     StanzaError `json:"error"`
}

// JoinOptions are the options of joining a room.
type JoinOptions struct {
	Nick     string
	Password string
	// MaxStanzas limits the history replayed on join (-1: server default).
	MaxStanzas int
	// Since limits the replayed history to messages after this time.
	Since time.Time
}

// joinedRoom is a room this stream is in (re-joined after a reconnect).
type joinedRoom struct {
	opts      JoinOptions
	occupants map[string]Occupant
	waiter    chan error // non-nil while a join is pending
	// seated: a join of this room succeeded. It stays set through a
	// re-join after a reconnect or a nick change, so the takeover state
	// keeps the room while the room answers (or the connection is down).
	seated bool
}

// rooms tracks joined rooms and their occupants.
type rooms struct {
	mu     sync.Mutex
	byRoom map[string]*joinedRoom
	// subjects are the subject changes waiting for their room's answer,
	// by room: the message id and the subject asked for.
	subjects map[string]pendingSubject
	// seen are the room messages published, by "room id": a re-join's
	// history replay (after a reconnect or a takeover) repeats some.
	seen seenIDs
	// last is, by room, the archive id of the newest room message
	// published: where a gap-fill from the room's archive starts.
	last map[string]string
}

// delivered records a room message's archive id and reports whether it is
// new.
func (r *rooms) delivered(room, stanzaID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.seen.add(room + " " + stanzaID) {
		return false
	}
	if r.last == nil {
		r.last = map[string]string{}
	}
	r.last[room] = stanzaID
	return true
}

// lastDelivered is the archive id of the newest message published from
// room ("" for none).
func (r *rooms) lastDelivered(room string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last[room]
}

// joined lists the rooms the stream is in.
func (r *rooms) joined() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.byRoom))
	for room := range r.byRoom {
		out = append(out, room)
	}
	sort.Strings(out)
	return out
}

// pendingSubject is a subject change sent to a room. The room answers with
// an error carrying its id, or broadcasts the new subject; Prosody's
// broadcast is a new message without the id (its muc/subject.lib.lua), so
// the subject text is what matches it.
type pendingSubject struct {
	id, subject string
}

// subjectAnswer returns the id of the subject change a message from a
// room answers ("" for none): an error with that id, or the room's
// broadcast of that subject (XEP-0045 §8.1).
func (r *rooms) subjectAnswer(n xmlNode) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.subjects) == 0 {
		return ""
	}
	room := bareOf(n.attr("from"))
	ps, ok := r.subjects[room]
	if !ok {
		return ""
	}
	switch typ := n.attr("type"); typ {
	case "error":
		if n.attr("id") != ps.id {
			return ""
		}
	case "groupchat":
		p := readParts(n, "")
		if p.hasBody || n.attr("id") != ps.id && p.subject != ps.subject {
			return ""
		}
	default:
		return ""
	}
	delete(r.subjects, room)
	return ps.id
}

// expectSubject records a subject change sent to room; the returned func
// forgets it.
func (r *rooms) expectSubject(room string, ps pendingSubject) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.subjects == nil {
		r.subjects = map[string]pendingSubject{}
	}
	r.subjects[room] = ps
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.subjects[room] == ps {
			delete(r.subjects, room)
		}
	}
}

// inRoom reports whether the room has confirmed our presence: a join (or
// the re-join after a reconnect) still waiting for the room does not count,
// since the room would refuse our messages.
func (s *Stream) inRoom(room string) bool {
	s.rooms.mu.Lock()
	defer s.rooms.mu.Unlock()
	jr, ok := s.rooms.byRoom[room]
	return ok && jr.waiter == nil
}

// awaitRejoin marks every room as not yet confirmed after a drop: the
// server forgot our occupancy with the old session, and until the re-join
// is answered the room would refuse our messages.
func (r *rooms) awaitRejoin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, jr := range r.byRoom {
		if jr.waiter == nil {
			jr.waiter = make(chan error, 1)
		}
	}
}

func (r *rooms) get(room string) (*joinedRoom, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	jr, ok := r.byRoom[room]
	return jr, ok
}

// JoinedRoom is a room this stream is in, with our own occupant.
type JoinedRoom struct {
	Room        string `json:"room"`
	Nick        string `json:"nick"`
	Role        string `json:"role"`
	Affiliation string `json:"affiliation"`
	Occupants   int    `json:"occupants"`
}

// JoinRoom enters a room and waits for the room's answer: our own presence
// (status 110) or an error presence (XEP-0045 §7.2).
func (s *Stream) JoinRoom(ctx context.Context, room jid.JID, opts JoinOptions) error {
	if opts.Nick == "" {
		opts.Nick = s.user.Localpart()
	}
	occupant, err := room.Bare().WithResource(opts.Nick)
	if err != nil {
		return fmt.Errorf("%w: nickname %q: %v", ErrInvalidAddress, opts.Nick, err)
	}
	if err := checkText("password", opts.Password); err != nil {
		return err
	}
	key := room.Bare().String()
	waiter := make(chan error, 1)
	s.rooms.mu.Lock()
	if s.rooms.byRoom == nil {
		s.rooms.byRoom = map[string]*joinedRoom{}
	}
	jr := s.rooms.byRoom[key]
	prev, wasIn := JoinOptions{}, jr != nil && jr.waiter == nil
	if jr == nil {
		jr = &joinedRoom{occupants: map[string]Occupant{}}
		s.rooms.byRoom[key] = jr
	} else {
		prev = jr.opts
	}
	jr.opts, jr.waiter = opts, waiter
	s.rooms.mu.Unlock()
	// A failed (re)join of a room we are already in (a nick change to a
	// taken nick, say) leaves us in the room under the old options.
	failed := func() {
		defer s.stateChanged()
		s.rooms.mu.Lock()
		defer s.rooms.mu.Unlock()
		if wasIn {
			jr.opts, jr.waiter = prev, nil
			return
		}
		delete(s.rooms.byRoom, key)
	}
	if err := s.sendNode(ctx, joinPresence(occupant, opts)); err != nil {
		failed()
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	select {
	case err := <-waiter:
		if err != nil {
			failed()
			return err
		}
		s.stateChanged()
		return nil
	case <-ctx.Done():
		failed()
		return fmt.Errorf("%w: the room did not answer", ErrServerTimeout)
	case <-s.done:
		return ErrStreamClosed
	}
}

func joinPresence(occupant jid.JID, opts JoinOptions) xmlNode {
	x := elem(nsMUC, "x")
	if opts.Password != "" {
		pw := elem(nsMUC, "password")
		pw.Text = opts.Password
		x.Children = append(x.Children, pw)
	}
	hist := elem(nsMUC, "history")
	if opts.MaxStanzas >= 0 {
		hist.Attrs = append(hist.Attrs, xmlAttr("maxstanzas", strconv.Itoa(opts.MaxStanzas)))
	}
	if !opts.Since.IsZero() {
		hist.Attrs = append(hist.Attrs, xmlAttr("since", opts.Since.UTC().Format(time.RFC3339)))
	}
	if len(hist.Attrs) > 0 {
		x.Children = append(x.Children, hist)
	}
	p := elem("", "presence", "to", occupant.String())
	p.Children = []xmlNode{x}
	return p
}

func (s *Stream) dropRoom(key string) {
	s.rooms.mu.Lock()
	delete(s.rooms.byRoom, key)
	s.rooms.mu.Unlock()
	s.stateChanged()
}

// LeaveRoom exits a room.
func (s *Stream) LeaveRoom(ctx context.Context, room jid.JID) error {
	key := room.Bare().String()
	jr, ok := s.rooms.get(key)
	if !ok {
		return fmt.Errorf("%w: not in room %s", ErrNotInRoom, key)
	}
	occupant, err := room.Bare().WithResource(jr.opts.Nick)
	if err != nil {
		return err
	}
	s.dropRoom(key)
	return s.sendNode(ctx, elem("", "presence", "to", occupant.String(), "type", "unavailable"))
}

// ErrNotInRoom means the stream has not joined the room.
var ErrNotInRoom = errors.New("not in that room")

// JoinedRooms lists the rooms this stream is in (the membership model).
func (s *Stream) JoinedRooms() []JoinedRoom {
	s.rooms.mu.Lock()
	defer s.rooms.mu.Unlock()
	out := []JoinedRoom{}
	for room, jr := range s.rooms.byRoom {
		if jr.waiter != nil {
			continue
		}
		me := jr.occupants[jr.opts.Nick]
		out = append(out, JoinedRoom{Room: room, Nick: jr.opts.Nick, Role: me.Role, Affiliation: me.Affiliation, Occupants: len(jr.occupants)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Room < out[j].Room })
	return out
}

// Occupants lists a joined room's occupants.
func (s *Stream) Occupants(room jid.JID) ([]Occupant, error) {
	s.rooms.mu.Lock()
	defer s.rooms.mu.Unlock()
	jr, ok := s.rooms.byRoom[room.Bare().String()]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotInRoom, room.Bare())
	}
	out := make([]Occupant, 0, len(jr.occupants))
	for _, o := range jr.occupants {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Nick < out[j].Nick })
	return out, nil
}

// handleRoomPresence folds a presence from a joined room into occupant
// state and events; it reports false for presences of other senders.
func (s *Stream) handleRoomPresence(n xmlNode, ev PresenceEvent) bool {
	from, err := jid.Parse(ev.From)
	if err != nil {
		return false
	}
	key, nick := from.Bare().String(), from.Resourcepart()
	s.rooms.mu.Lock()
	jr, ok := s.rooms.byRoom[key]
	if !ok {
		s.rooms.mu.Unlock()
		return false
	}
	if ev.PresenceType == "error" {
		waiter := jr.waiter
		jr.waiter = nil
		s.rooms.mu.Unlock()
		se := StanzaError{Type: "cancel", Condition: "undefined-condition"}
		if ev.Error != nil {
			se = *ev.Error
		}
		s.publish(RoomErrorEvent{Type: EventRoomError, Room: key, Nick: nick, Condition: se.Condition, Error: se})
		if waiter != nil {
			if se.Condition == "conflict" {
				waiter <- ErrNickConflict
			} else {
				waiter <- &IQError{se}
			}
		}
		return true
	}
	if nick == "" {
		// The room's own presence, not an occupant's: ejabberd sends one
		// from the room's bare JID on join to announce the room avatar
		// (vcard-temp:x:update, XEP-0153). Nothing to fold in.
		s.rooms.mu.Unlock()
		return true
	}
	oe := OccupantEvent{Type: EventOccupant, Room: key, Occupant: Occupant{Nick: nick, Show: ev.Show, Status: ev.Status},
		Available: ev.PresenceType == "available"}
	if x := n.child(nsMUCUser, "x"); x != nil {
		if item := x.child(nsMUCUser, "item"); item != nil {
			oe.Role, oe.Affiliation, oe.JID = item.attr("role"), item.attr("affiliation"), item.attr("jid")
			oe.Reason = item.childText(nsMUCUser, "reason")
			if a := item.child(nsMUCUser, "actor"); a != nil {
				oe.Actor = a.attr("nick")
			}
		}
		for _, st := range x.Children {
			if st.XMLName.Local == "status" {
				if code, err := strconv.Atoi(st.attr("code")); err == nil {
					oe.Codes = append(oe.Codes, code)
					oe.Self = oe.Self || code == 110
				}
			}
		}
	}
	oe.Self = oe.Self || nick == jr.opts.Nick
	var waiter chan error
	switch {
	case oe.Available:
		jr.occupants[nick] = oe.Occupant
		if oe.Self && jr.waiter != nil {
			waiter, jr.waiter, jr.seated = jr.waiter, nil, true
		}
	case slices.Contains(oe.Codes, 303):
		// A nick change (XEP-0045 §7.6): the old nick leaves, the new one
		// arrives next; we stay in the room.
		delete(jr.occupants, nick)
	default:
		delete(jr.occupants, nick)
		if oe.Self {
			delete(s.rooms.byRoom, key) // we left, were kicked or banned
			defer s.stateChanged()
		}
	}
	s.rooms.mu.Unlock()
	s.publish(oe)
	if waiter != nil {
		waiter <- nil
	}
	return true
}

// rejoinRooms enters again, after a reconnect, every room the stream was
// in (the server forgot our occupancy with the old session).
func (s *Stream) rejoinRooms(ctx context.Context) {
	s.rooms.mu.Lock()
	var todo []struct {
		room string
		opts JoinOptions
	}
	for room, jr := range s.rooms.byRoom {
		opts := jr.opts
		opts.Since = time.Now().Add(-time.Minute) // do not replay the whole history again
		todo = append(todo, struct {
			room string
			opts JoinOptions
		}{room, opts})
		jr.occupants = map[string]Occupant{}
	}
	s.rooms.mu.Unlock()
	for _, t := range todo {
		room, err := jid.Parse(t.room)
		if err != nil {
			continue
		}
		if err := s.JoinRoom(ctx, room, t.opts); err != nil {
			s.log.Warn("re-joining a room after reconnect failed", "room", t.room, "error", err.Error())
		}
	}
}

// roomMessageEvent recognises subject changes and invitations; it returns
// nil for ordinary messages.
func roomMessageEvent(n xmlNode, p messageParts, typ string) any {
	from := n.attr("from")
	if typ == "groupchat" && p.subject != "" && !p.hasBody {
		fj, _ := jid.Parse(from)
		return SubjectEvent{Type: EventSubject, Room: fj.Bare().String(), Nick: fj.Resourcepart(), Subject: p.subject}
	}
	// A direct invitation (XEP-0249) is only ever the sender's word: the
	// inviter is the sender, whatever the element claims.
	if x := n.child(nsConfer, "x"); x != nil {
		if room, err := jid.Parse(x.attr("jid")); err == nil && room.Localpart() != "" && room.Resourcepart() == "" {
			return InvitationEvent{Type: EventInvitation, Room: room.String(), From: from, Inviter: from,
				Reason: x.attr("reason"), Password: x.attr("password"), Direct: true}
		}
	}
	return nil
}

// mediatedInvitation reads a mediated invitation (XEP-0045 §7.8.2): the
// room sends it from its bare JID, naming the inviter.
func mediatedInvitation(n xmlNode) (InvitationEvent, bool) {
	x := n.child(nsMUCUser, "x")
	if x == nil {
		return InvitationEvent{}, false
	}
	inv := x.child(nsMUCUser, "invite")
	if inv == nil {
		return InvitationEvent{}, false
	}
	from := n.attr("from")
	return InvitationEvent{Type: EventInvitation, Room: bareOf(from), From: from, Inviter: inv.attr("from"),
		Reason: inv.childText(nsMUCUser, "reason"), Password: x.childText(nsMUCUser, "password")}, true
}

// maxInvitationChecks bounds the disco#info lookups one stream runs at
// once for invitations from services it does not know yet; beyond it an
// invitation is delivered as the plain message it claims to be.
const maxInvitationChecks = 4

// mucServiceCacheSize bounds the manager's cache of which domains are MUC
// services.
const mucServiceCacheSize = 1024

// checkInvitation publishes a mediated invitation only when it comes from
// a room the server vouches for: a bare room JID (localpart, no resource)
// on a service whose disco#info identity is a MUC service (XEP-0045 §6.1,
// category "conference"). The server stamps every sender's address
// (RFC 6120 §8.1.2.1), so a user cannot send from a room's JID; a user's
// own message claiming an inviter is delivered as what it is, a message
// from that user (the muc#user element kept in extensions). The verdict
// per service is cached by the manager; the first invitation from an
// unknown service waits for the lookup (in its own goroutine, so the
// reader keeps going).
func (s *Stream) checkInvitation(n xmlNode, inv InvitationEvent) {
	plain := func() {
		if ev := s.translateMessage(n, messageOrigin{}); ev != nil {
			s.publish(ev)
		}
	}
	room, err := jid.Parse(inv.From)
	if err != nil || room.Localpart() == "" || room.Resourcepart() != "" {
		plain()
		return
	}
	service := room.Domain()
	if isMUC, known := s.mgr.mucServices.Get(service.String()); known {
		if isMUC {
			s.publish(inv)
		} else {
			plain()
		}
		return
	}
	select {
	case s.invitationChecks <- struct{}{}:
	default:
		plain()
		return
	}
	s.mgr.wg.Add(1)
	go func() {
		defer s.mgr.wg.Done()
		defer func() { <-s.invitationChecks }()
		info, err := s.DiscoInfo(s.stopCtx, service)
		if err != nil {
			var iqErr *IQError
			if !errors.As(err, &iqErr) {
				plain() // unknown yet (connection lost, timeout): not cached
				return
			}
		}
		isMUC := slices.ContainsFunc(info.Identities, func(id map[string]string) bool {
			return id["category"] == "conference"
		})
		s.mgr.mucServices.Add(service.String(), isMUC)
		if isMUC {
			s.publish(inv)
		} else {
			plain()
		}
	}()
}

// Invite invites someone to a room: mediated through the room (XEP-0045
// §7.8.2), or directly (XEP-0249).
func (s *Stream) Invite(ctx context.Context, room, who jid.JID, reason string, direct bool) error {
	if err := checkText("reason", reason); err != nil {
		return err
	}
	if direct {
		x := elem(nsConfer, "x", "jid", room.Bare().String())
		if reason != "" {
			x.Attrs = append(x.Attrs, xmlAttr("reason", reason))
		}
		if jr, ok := s.rooms.get(room.Bare().String()); ok && jr.opts.Password != "" {
			x.Attrs = append(x.Attrs, xmlAttr("password", jr.opts.Password))
		}
		return s.sendNode(ctx, messageEnvelope(who, "normal", newStanzaID(), x))
	}
	inv := elem(nsMUCUser, "invite", "to", who.Bare().String())
	if reason != "" {
		r := elem(nsMUCUser, "reason")
		r.Text = reason
		inv.Children = []xmlNode{r}
	}
	x := elem(nsMUCUser, "x")
	x.Children = []xmlNode{inv}
	m := elem("", "message", "to", room.Bare().String(), "id", newStanzaID())
	m.Children = []xmlNode{x}
	return s.sendNode(ctx, m)
}

// SetSubject changes a room's subject and waits for the room's answer: the
// new subject broadcast to the occupants, or the room's refusal (a visitor,
// or a room where only moderators may change it: forbidden) as an
// *IQError, so the caller hears the outcome instead of a later event.
func (s *Stream) SetSubject(ctx context.Context, room jid.JID, subject string) error {
	if err := checkText("subject", subject); err != nil {
		return err
	}
	key := room.Bare().String()
	if !s.inRoom(key) {
		return fmt.Errorf("%w: join %s first", ErrNotInRoom, key)
	}
	sub := elem("", "subject")
	sub.Text = subject
	id := newStanzaID()
	w := s.iqs.wait(id)
	defer s.iqs.forget(id)
	defer s.rooms.expectSubject(key, pendingSubject{id: id, subject: subject})()
	if err := s.sendNode(ctx, messageEnvelope(room.Bare(), "groupchat", id, sub)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := s.awaitAnswer(ctx, w)
	return err
}

// SendRoomMessage posts to a joined room.
func (s *Stream) SendRoomMessage(ctx context.Context, m OutgoingMessage) (string, error) {
	if !s.inRoom(m.To.Bare().String()) {
		return "", fmt.Errorf("%w: join %s first", ErrNotInRoom, m.To.Bare())
	}
	m.To, m.Type = m.To.Bare(), "groupchat"
	return s.sendPrepared(ctx, m, true)
}

// RoomConfig is a room configuration (the muc#roomconfig form, XEP-0045
// §10.2) in JSON: well-known keys plus any other form field by var name.
type RoomConfig map[string]any

// roomConfigFields maps friendly names to muc#roomconfig field vars.
var roomConfigFields = map[string]string{
	"name": "muc#roomconfig_roomname", "description": "muc#roomconfig_roomdesc",
	"persistent": "muc#roomconfig_persistentroom", "public": "muc#roomconfig_publicroom",
	"members_only": "muc#roomconfig_membersonly", "moderated": "muc#roomconfig_moderatedroom",
	"password": "muc#roomconfig_roomsecret", "password_protected": "muc#roomconfig_passwordprotectedroom",
	"max_users": "muc#roomconfig_maxusers", "whois": "muc#roomconfig_whois",
	"change_subject": "muc#roomconfig_changesubject", "allow_invites": "muc#roomconfig_allowinvites",
	"history_length": "muc#roomconfig_historylength",
}

// ConfigureRoom submits the owner configuration form.
func (s *Stream) ConfigureRoom(ctx context.Context, room jid.JID, cfg RoomConfig) error {
	form := elem(nsDataForms, "x", "type", "submit")
	ft := elem(nsDataForms, "field", "var", "FORM_TYPE")
	v := elem(nsDataForms, "value")
	v.Text = "http://jabber.org/protocol/muc#roomconfig"
	ft.Children = []xmlNode{v}
	form.Children = append(form.Children, ft)
	if pw, ok := cfg["password"].(string); ok && pw != "" {
		if _, set := cfg["password_protected"]; !set {
			cfg["password_protected"] = true
		}
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := k
		if v, ok := roomConfigFields[k]; ok {
			name = v
		}
		if !extraParamName.MatchString(stripHash(name)) {
			return fmt.Errorf("%w: configuration key %q", ErrInvalidInput, k)
		}
		var val string
		switch t := cfg[k].(type) {
		case bool:
			val = map[bool]string{true: "1", false: "0"}[t]
		case float64:
			val = strconv.FormatFloat(t, 'f', -1, 64)
		case int:
			val = strconv.Itoa(t)
		case string:
			val = t
		default:
			return fmt.Errorf("%w: configuration value of %q must be a string, number or boolean", ErrInvalidInput, k)
		}
		if err := checkText(k, val); err != nil {
			return err
		}
		f := elem(nsDataForms, "field", "var", name)
		fv := elem(nsDataForms, "value")
		fv.Text = val
		f.Children = []xmlNode{fv}
		form.Children = append(form.Children, f)
	}
	q := elem(nsMUCOwner, "query")
	q.Children = []xmlNode{form}
	_, err := s.request(ctx, "set", room.Bare().String(), q)
	return err
}

// stripHash lets field vars such as muc#roomconfig_roomname pass the name check.
func stripHash(s string) string {
	out := []rune{}
	for _, r := range s {
		if r != '#' {
			out = append(out, r)
		}
	}
	return string(out)
}

// RoomConfiguration reads the owner configuration form.
func (s *Stream) RoomConfiguration(ctx context.Context, room jid.JID) (map[string]any, error) {
	res, err := s.request(ctx, "get", room.Bare().String(), elem(nsMUCOwner, "query"))
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	friendly := map[string]string{}
	for k, v := range roomConfigFields {
		friendly[v] = k
	}
	q := res.child(nsMUCOwner, "query")
	if q == nil {
		return out, nil
	}
	form := q.child(nsDataForms, "x")
	if form == nil {
		return out, nil
	}
	for _, f := range form.Children {
		name := f.attr("var")
		if f.XMLName.Local != "field" || name == "" || name == "FORM_TYPE" {
			continue
		}
		var vals []string
		for _, v := range f.Children {
			if v.XMLName.Local == "value" {
				vals = append(vals, v.Text)
			}
		}
		key := name
		if k, ok := friendly[name]; ok {
			key = k
		}
		switch {
		case f.attr("type") == "boolean" && len(vals) == 1:
			out[key] = vals[0] == "1" || vals[0] == "true"
		case len(vals) == 1:
			out[key] = vals[0]
		case len(vals) > 1:
			out[key] = vals
		default:
			out[key] = ""
		}
	}
	return out, nil
}

// DestroyRoom destroys a room (owner only).
func (s *Stream) DestroyRoom(ctx context.Context, room jid.JID, reason string) error {
	if err := checkText("reason", reason); err != nil {
		return err
	}
	d := elem(nsMUCOwner, "destroy")
	if reason != "" {
		r := elem(nsMUCOwner, "reason")
		r.Text = reason
		d.Children = []xmlNode{r}
	}
	q := elem(nsMUCOwner, "query")
	q.Children = []xmlNode{d}
	_, err := s.request(ctx, "set", room.Bare().String(), q)
	return err
}

// Valid MUC affiliations and roles.
var (
	affiliations = map[string]bool{"owner": true, "admin": true, "member": true, "outcast": true, "none": true}
	roles        = map[string]bool{"moderator": true, "participant": true, "visitor": true, "none": true}
)

// SetAffiliation sets a user's affiliation (owner, admin, member, outcast
// = ban, none) by real JID.
func (s *Stream) SetAffiliation(ctx context.Context, room, who jid.JID, affiliation, reason string) error {
	if !affiliations[affiliation] {
		return fmt.Errorf("%w: affiliation must be owner, admin, member, outcast or none", ErrInvalidInput)
	}
	return s.mucAdmin(ctx, room, reason, "jid", who.Bare().String(), "affiliation", affiliation)
}

// SetRole sets an occupant's role by nickname (none = kick, participant =
// voice, visitor = no voice, moderator).
func (s *Stream) SetRole(ctx context.Context, room jid.JID, nick, role, reason string) error {
	if !roles[role] {
		return fmt.Errorf("%w: role must be moderator, participant, visitor or none", ErrInvalidInput)
	}
	if err := checkText("nick", nick); err != nil || nick == "" {
		return fmt.Errorf("%w: nick is required", ErrInvalidInput)
	}
	return s.mucAdmin(ctx, room, reason, "nick", nick, "role", role)
}

func (s *Stream) mucAdmin(ctx context.Context, room jid.JID, reason string, attrs ...string) error {
	if err := checkText("reason", reason); err != nil {
		return err
	}
	item := elem(nsMUCAdmin, "item", attrs...)
	if reason != "" {
		r := elem(nsMUCAdmin, "reason")
		r.Text = reason
		item.Children = []xmlNode{r}
	}
	q := elem(nsMUCAdmin, "query")
	q.Children = []xmlNode{item}
	_, err := s.request(ctx, "set", room.Bare().String(), q)
	return err
}

// RoomInfo is what disco#info says about a room (or any entity).
type RoomInfo struct {
	JID        string              `json:"jid"`
	Name       string              `json:"name,omitempty"`
	Identities []map[string]string `json:"identities"`
	Features   []string            `json:"features"`
	// Fields are the muc#roominfo extension fields (description, occupants, ...).
	Fields map[string]string `json:"fields,omitempty"`
}

// DiscoInfo asks an entity for its identity and features (XEP-0030).
func (s *Stream) DiscoInfo(ctx context.Context, of jid.JID) (RoomInfo, error) {
	res, err := s.request(ctx, "get", of.String(), elem(nsDiscoInfo, "query"))
	if err != nil {
		return RoomInfo{}, err
	}
	info := RoomInfo{JID: of.String(), Identities: []map[string]string{}, Features: []string{}}
	q := res.child(nsDiscoInfo, "query")
	if q == nil {
		return info, nil
	}
	for _, c := range q.Children {
		switch c.XMLName.Local {
		case "identity":
			id := map[string]string{"category": c.attr("category"), "type": c.attr("type")}
			if name := c.attr("name"); name != "" {
				id["name"] = name
				if info.Name == "" {
					info.Name = name
				}
			}
			info.Identities = append(info.Identities, id)
		case "feature":
			info.Features = append(info.Features, c.attr("var"))
		case "x":
			for _, f := range c.Children {
				if v := f.attr("var"); v != "" && v != "FORM_TYPE" {
					if info.Fields == nil {
						info.Fields = map[string]string{}
					}
					info.Fields[v] = f.childText("", "value")
				}
			}
		}
	}
	return info, nil
}

// DiscoItem is one item of a disco#items answer.
type DiscoItem struct {
	JID  string `json:"jid"`
	Name string `json:"name,omitempty"`
	Node string `json:"node,omitempty"`
}

// DiscoItems lists an entity's items (XEP-0030): a MUC service's rooms.
func (s *Stream) DiscoItems(ctx context.Context, of jid.JID) ([]DiscoItem, error) {
	res, err := s.request(ctx, "get", of.String(), elem(nsDiscoItem, "query"))
	if err != nil {
		return nil, err
	}
	out := []DiscoItem{}
	if q := res.child(nsDiscoItem, "query"); q != nil {
		for _, c := range q.Children {
			if c.XMLName.Local == "item" {
				out = append(out, DiscoItem{JID: c.attr("jid"), Name: c.attr("name"), Node: c.attr("node")})
			}
		}
	}
	return out, nil
}
