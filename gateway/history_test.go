package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Archive results count only when they come from the archive the query
// went to (XEP-0313 §4.2); anyone who learnt a query id cannot slip
// messages into a history page.
func TestArchiveState_KeepsOnlyResultsFromTheQueriedArchive(t *testing.T) {
	t.Parallel()
	var a archiveState
	a.begin("q1", "room@conference.example.org")
	a.add("q1", "room@conference.example.org", "real", nil)
	a.add("q1", "mallory@example.org", "forged", nil)
	a.add("q1", "", "no sender", nil)
	a.add("q2", "room@conference.example.org", "other query", nil)
	a.add("q1", "mallory@example.org", nil, &SkippedStanza{Reason: "forged skip"})
	got := a.end("q1")
	require.Equal(t, []any{"real"}, got.msgs)
	require.Empty(t, got.skipped)
	require.Empty(t, a.source("q1"), "an ended query has no source")
}

// A user's archive that fails to answer ends only the 1:1 part of a
// gap-fill: the rooms' archives are still read, so room messages missed
// while the connection was down are not lost with it.
func TestGapFill_RoomsStillFilledWhenTheUsersArchiveFails(t *testing.T) {
	t.Parallel()
	const room = "room@conference.example.com"
	var c *scriptedConn
	var mu sync.Mutex
	var asked []string // the archives the MAM queries went to ("" = the user's own)
	st, c0, pub := scriptedStream(t, func(n xmlNode) *xmlNode {
		q := n.child(nsMAM, "query")
		if q == nil {
			return nil
		}
		mu.Lock()
		asked = append(asked, n.attr("to"))
		mu.Unlock()
		if n.attr("to") == "" {
			e := elem("", "iq", "type", "error")
			xe := elem("", "error", "type", "wait")
			xe.Children = []xmlNode{elem("urn:ietf:params:xml:ns:xmpp-stanzas", "internal-server-error")}
			e.Children = []xmlNode{xe}
			return &e
		}
		c.inject(t, `<message from='`+room+`'><result xmlns='urn:xmpp:mam:2' queryid='`+q.attr("queryid")+`' id='r1'>`+
			`<forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2026-12-07T10:00:00Z'/>`+
			`<message xmlns='jabber:client' from='`+room+`/bob' type='groupchat'><body>missed</body></message></forwarded></result></message>`)
		fin := elem("", "iq", "type", "result", "from", n.attr("to"))
		f := elem(nsMAM, "fin", "complete", "true")
		set := elem(nsRSM, "set")
		first, last := elem("", "first"), elem("", "last")
		first.Text, last.Text = "r1", "r1"
		set.Children = []xmlNode{first, last}
		f.Children = []xmlNode{set}
		fin.Children = []xmlNode{f}
		return &fin
	})
	c = c0
	st.rooms.mu.Lock()
	if st.rooms.byRoom == nil {
		st.rooms.byRoom = map[string]*joinedRoom{}
	}
	st.rooms.byRoom[room] = &joinedRoom{opts: JoinOptions{Nick: "alice"}, seated: true}
	st.rooms.mu.Unlock()

	st.gapFill(context.Background(), time.Now().Add(-time.Minute))

	mu.Lock()
	require.Equal(t, []string{"", room}, asked, "the user's archive first, then the room's")
	mu.Unlock()
	var bodies []any
	pub.mu.Lock()
	for _, e := range pub.events {
		if e["body"] != nil {
			bodies = append(bodies, e["body"])
		}
	}
	pub.mu.Unlock()
	require.Equal(t, []any{"missed"}, bodies, "the room's missed message is published")
}
