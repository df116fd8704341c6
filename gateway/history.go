package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"
)

// History limits (XEP-0059 page sizes).
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// HistoryQuery selects archived messages (XEP-0313 with XEP-0059 paging).
type HistoryQuery struct {
	// Archive is whose archive to query: zero for the user's own, a room
	// JID for a MUC archive.
	Archive jid.JID
	// With limits to one conversation partner.
	With       jid.JID
	Start, End time.Time
	// After pages forwards from that archive id; Before pages backwards.
	// Last (with Before empty) asks for the newest page.
	After, Before string
	Last          bool
	Limit         int
}

// HistoryPage is one page of archived messages, oldest first. First and
// Last are the cursors for the neighbouring pages.
type HistoryPage struct {
	Messages []any  `json:"messages" swaggertype:"array,object"`
	First    string `json:"first,omitempty"`
	Last     string `json:"last,omitempty"`
	Complete bool   `json:"complete"`
	// Skipped lists the archived messages of the page the gateway would
	// not read (nested too deeply, too large, names not
	// namespace-well-formed); they are not in Messages.
	Skipped []SkippedStanza `json:"skipped,omitempty"`
}

// SkippedStanza is a received stanza the gateway skipped rather than read.
type SkippedStanza struct {
	// ID is the archive id (XEP-0359 stanza-id) of a skipped archived message.
	ID     string `json:"id,omitempty"`
	From   string `json:"from,omitempty"`
	Reason string `json:"reason"`
	// msgID and to are the message's own id and addressee, for the error
	// event the gap-fill publishes.
	msgID, to string
}

// archiveQuery collects the results of one archive query.
type archiveQuery struct {
	// archive is the bare JID the query was sent to (the user's own for
	// their archive); results from anyone else are dropped.
	archive string
	msgs    []any
	skipped []SkippedStanza
}

// archiveState collects archive query results and remembers which archived
// messages were already delivered, for the gap-fill after a reconnect.
type archiveState struct {
	mu      sync.Mutex
	queries map[string]*archiveQuery
	lastID  string
	seen    seenIDs
}

// seenIDs remembers the last seenIDsMax ids added, oldest out first.
type seenIDs struct {
	ids   map[string]struct{}
	order []string
}

const seenIDsMax = 4096

// add records id and reports whether it is new.
func (s *seenIDs) add(id string) bool {
	if s.ids == nil {
		s.ids = map[string]struct{}{}
	}
	if _, ok := s.ids[id]; ok {
		return false
	}
	s.ids[id] = struct{}{}
	s.order = append(s.order, id)
	if len(s.order) > seenIDsMax {
		delete(s.ids, s.order[0])
		s.order = s.order[1:]
	}
	return true
}

func (a *archiveState) begin(queryID, archive string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.queries == nil {
		a.queries = map[string]*archiveQuery{}
	}
	a.queries[queryID] = &archiveQuery{archive: archive}
}

// source is the archive a running query reads ("" when none runs).
func (a *archiveState) source(queryID string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if q, ok := a.queries[queryID]; ok {
		return q.archive
	}
	return ""
}

func (a *archiveState) end(queryID string) archiveQuery {
	a.mu.Lock()
	defer a.mu.Unlock()
	q := a.queries[queryID]
	delete(a.queries, queryID)
	if q == nil {
		return archiveQuery{}
	}
	return *q
}

// add collects a result of a query someone waits for (ev), or a result
// the reader skipped (skipped set); results of other queries, and results
// not sent by the archive queried (XEP-0313 §4.2: the archive sends them),
// are dropped.
func (a *archiveState) add(queryID, from string, ev any, skipped *SkippedStanza) {
	a.mu.Lock()
	defer a.mu.Unlock()
	q, ok := a.queries[queryID]
	switch {
	case !ok || from != q.archive || len(q.msgs)+len(q.skipped) >= MaxHistoryLimit:
	case skipped != nil:
		q.skipped = append(q.skipped, *skipped)
	default:
		q.msgs = append(q.msgs, ev)
	}
}

// delivered records an archived message published live; it reports false
// when it had been published already.
func (a *archiveState) delivered(stanzaID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.seen.add(stanzaID) {
		return false
	}
	a.lastID = stanzaID
	return true
}

func (a *archiveState) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastID
}

// deliverArchived routes one <result/> of an archive query to its
// collector; results of queries nobody waits for are dropped.
func (s *Stream) deliverArchived(r *xmlNode, from string) {
	inner, delay := forwardedMessage(r)
	if inner == nil {
		return
	}
	from = s.archiveSender(from)
	archive := s.archive.source(r.attr("queryid"))
	if archive == "" || from != archive {
		return // no such query, or not from its archive: add would drop it
	}
	ev := s.translateMessage(*inner, messageOrigin{delay: delay, archive: archive})
	if me, ok := ev.(MessageEvent); ok {
		me.StanzaID = r.attr("id")
		ev = me
	}
	s.archive.add(r.attr("queryid"), from, ev, nil)
}

// archiveSender is the bare JID an archive result came from; a stanza
// without from comes from the user's own account (RFC 6120 §8.1.2.1).
func (s *Stream) archiveSender(from string) string {
	if from == "" {
		return s.user.String()
	}
	j, err := jid.Parse(from)
	if err != nil || j.Resourcepart() != "" {
		return "" // archives send from bare JIDs; nothing matches ""
	}
	return j.String()
}

// skipArchived records a <result/> the reader skipped (reason) in its
// query's page, so the page says so instead of losing it or timing out.
func (s *Stream) skipArchived(r *xmlNode, from, reason string) {
	sk := SkippedStanza{ID: r.attr("id"), Reason: reason}
	if inner, _ := forwardedMessage(r); inner != nil {
		sk.From, sk.msgID, sk.to = inner.attr("from"), inner.attr("id"), inner.attr("to")
	}
	s.archive.add(r.attr("queryid"), s.archiveSender(from), nil, &sk)
}

// History queries the message archive.
func (s *Stream) History(ctx context.Context, q HistoryQuery) (HistoryPage, error) {
	if q.Limit == 0 {
		q.Limit = DefaultHistoryLimit
	}
	if q.Limit < 1 || q.Limit > MaxHistoryLimit {
		return HistoryPage{}, fmt.Errorf("%w: limit must be 1 to %d", ErrInvalidInput, MaxHistoryLimit)
	}
	if q.After != "" && (q.Before != "" || q.Last) {
		return HistoryPage{}, fmt.Errorf("%w: use either after or before", ErrInvalidInput)
	}
	for _, c := range []string{q.After, q.Before} {
		if c != "" && !cursorPattern.MatchString(c) {
			return HistoryPage{}, fmt.Errorf("%w: malformed cursor", ErrInvalidInput)
		}
	}
	queryID := newStanzaID()
	to, archive := "", s.user.String()
	if !q.Archive.Equal(jid.JID{}) {
		to, archive = q.Archive.String(), q.Archive.Bare().String()
	}
	s.archive.begin(queryID, archive)
	defer s.archive.end(queryID)
	res, err := s.request(ctx, "set", to, mamQuery(queryID, q))
	if err != nil {
		return HistoryPage{}, err
	}
	got := s.archive.end(queryID)
	page := HistoryPage{Messages: got.msgs, Skipped: got.skipped}
	if page.Messages == nil {
		page.Messages = []any{}
	}
	if fin := res.child(nsMAM, "fin"); fin != nil {
		page.Complete = fin.attr("complete") == "true"
		if set := fin.child(nsRSM, "set"); set != nil {
			page.First, page.Last = set.childText("", "first"), set.childText("", "last")
		}
	}
	return page, nil
}

// mamQuery builds the XEP-0313 query with its data form and RSM set.
func mamQuery(queryID string, q HistoryQuery) xmlNode {
	field := func(name, value string) xmlNode {
		f := elem(nsDataForms, "field", "var", name)
		v := elem(nsDataForms, "value")
		v.Text = value
		f.Children = []xmlNode{v}
		return f
	}
	form := elem(nsDataForms, "x", "type", "submit")
	hidden := field("FORM_TYPE", nsMAM)
	hidden.Attrs = append(hidden.Attrs, xmlAttr("type", "hidden"))
	form.Children = append(form.Children, hidden)
	if !q.With.Equal(jid.JID{}) {
		form.Children = append(form.Children, field("with", q.With.String()))
	}
	if !q.Start.IsZero() {
		form.Children = append(form.Children, field("start", q.Start.UTC().Format(time.RFC3339Nano)))
	}
	if !q.End.IsZero() {
		form.Children = append(form.Children, field("end", q.End.UTC().Format(time.RFC3339Nano)))
	}
	set := elem(nsRSM, "set")
	maxNode := elem(nsRSM, "max")
	maxNode.Text = strconv.Itoa(q.Limit)
	set.Children = append(set.Children, maxNode)
	switch {
	case q.After != "":
		n := elem(nsRSM, "after")
		n.Text = q.After
		set.Children = append(set.Children, n)
	case q.Before != "" || q.Last:
		n := elem(nsRSM, "before") // empty <before/> = the last page (XEP-0059 §2.5)
		n.Text = q.Before
		set.Children = append(set.Children, n)
	}
	query := elem(nsMAM, "query", "queryid", queryID)
	query.Children = []xmlNode{form, set}
	return query
}

// gapFill publishes what the archive holds after the last archived message
// this stream delivered, so messages that arrived while the connection was
// down are not lost (the gateway does not use XEP-0198 resumption). Own messages
// from this same resource were seen by the client already and are skipped;
// already-delivered ids are skipped too.
func (s *Stream) gapFill(ctx context.Context, since time.Time) {
	defer s.releaseHeld()
	q := HistoryQuery{After: s.archive.last(), Limit: 100}
	if q.After == "" {
		q.Start = since
	}
	own := s.JID()
	published := 0
	for range 20 { // at most 2000 messages: a longer outage is a reset for the client
		page, err := s.History(ctx, q)
		if err != nil {
			// Only the 1:1 part ends: the rooms' archives are apart.
			s.log.Warn("gap-fill after reconnect failed", slog.String("error", err.Error()))
			break
		}
		for _, m := range page.Messages {
			me, ok := m.(MessageEvent)
			if !ok || me.From == own || me.StanzaID == "" || !s.archive.delivered(me.StanzaID) {
				continue
			}
			s.publish(me)
			published++
		}
		// A skipped message that arrived while the connection was down is
		// reported as the live one would have been, once (by archive id).
		for _, sk := range page.Skipped {
			if sk.From == own || sk.ID == "" || !s.archive.delivered(sk.ID) {
				continue
			}
			s.publish(skippedEvent("message", sk.msgID, sk.From, sk.to, sk.Reason))
			published++
		}
		if page.Complete || page.Last == "" {
			break
		}
		q.After, q.Start = page.Last, time.Time{}
	}
	for _, room := range s.rooms.joined() {
		published += s.roomGapFill(ctx, room, since)
	}
	if published > 0 {
		s.log.Info("gap-fill delivered missed messages", slog.Int("count", published))
	}
}

// roomGapFill publishes what room's archive (XEP-0313 on the room, kept
// by the room: XEP-0045 + MAM) holds after the newest room message the
// stream published, or since since when it published none: a re-join's
// history is bounded by the room (Prosody replays 20 messages) and by
// time, so a long gap needs the archive. It returns how many it published.
func (s *Stream) roomGapFill(ctx context.Context, room string, since time.Time) int {
	rj, err := jid.Parse(room)
	if err != nil {
		return 0
	}
	q := HistoryQuery{Archive: rj, After: s.rooms.lastDelivered(room), Limit: 100}
	if q.After == "" {
		q.Start = since
	}
	published := 0
	for range 20 { // at most 2000 messages per room, as for the user's archive
		page, err := s.History(ctx, q)
		if err != nil {
			s.log.Info("room gap-fill failed", slog.String("room", room), slog.String("error", err.Error()))
			return published
		}
		for _, m := range page.Messages {
			me, ok := m.(MessageEvent)
			if !ok || me.StanzaID == "" {
				continue
			}
			me.Room = room
			if !s.rooms.delivered(room, me.StanzaID) {
				continue
			}
			s.publish(me)
			published++
		}
		if page.Complete || page.Last == "" {
			break
		}
		q.After, q.Start = page.Last, time.Time{}
	}
	return published
}

// catchUp holds archived messages that arrive live while a gap-fill runs
// (after a reconnect or a takeover), so the archive's order wins: a server
// re-delivers what it stored offline at once, live, while a message only
// its archive has (received by the connection that dropped, never
// published) comes from the gap-fill, and it is older. Held messages are
// published after the gap-fill, those it did not already deliver; beyond
// catchUpMax they go out live, unordered, rather than wait.
type catchUp struct {
	mu   sync.Mutex
	on   bool
	held []MessageEvent
}

const catchUpMax = 2048

func (c *catchUp) begin() {
	c.mu.Lock()
	c.on, c.held = true, nil
	c.mu.Unlock()
}

// hold keeps me for later and reports whether it did.
func (c *catchUp) hold(me MessageEvent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.on || len(c.held) >= catchUpMax {
		return false
	}
	c.held = append(c.held, me)
	return true
}

func (c *catchUp) end() []MessageEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	held := c.held
	c.on, c.held = false, nil
	return held
}

// releaseHeld publishes what catchUp held, once each, in arrival order.
func (s *Stream) releaseHeld() {
	for _, me := range s.catchUp.end() {
		if s.deliveredOnce(me) {
			s.publish(me)
		}
	}
}

// deliveredOnce records an archived message as published and reports
// whether it was new: by the room's archive id for a room message, by the
// user's archive id otherwise.
func (s *Stream) deliveredOnce(me MessageEvent) bool {
	if me.Room != "" {
		return s.rooms.delivered(me.Room, me.StanzaID)
	}
	return s.archive.delivered(me.StanzaID)
}
