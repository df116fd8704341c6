package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
)

func TestProfile_PropertiesArePrivate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	e.post(p.alice, http.MethodPost, "/users/theme", "dark & <bold>", http.StatusNoContent)
	e.post(p.alice, http.MethodPost, "/users/lang", "it", http.StatusNoContent)
	e.post(p.alice, http.MethodDelete, "/users/lang", nil, http.StatusNoContent)
	require.JSONEq(t, `{"theme":"dark & <bold>"}`, e.post(p.alice, http.MethodGet, "/users/properties", nil, http.StatusOK))
	// Another user sees only their own (empty) properties; there is no route
	// to anyone else's.
	require.JSONEq(t, `{}`, e.post(p.bob, http.MethodGet, "/users/properties", nil, http.StatusOK))
	e.post(p.alice, http.MethodPost, "/users/bad%20name", "x", http.StatusBadRequest)
	e.post(p.alice, http.MethodPost, "/users/ctl", "a\x00b", http.StatusBadRequest)
}

func TestProfile_BookmarksAndAutojoin(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{gateway: gateway.Config{AutojoinBookmarks: true}})
	user, pass := e.newUser("marks")
	s := e.login(user, pass)
	room := "bm" + user + "@conference." + e.xmpp.Domain
	e.post(s, http.MethodPut, "/bookmarks", []map[string]any{{"room": room, "name": "Book", "nick": "bm", "autojoin": true}}, http.StatusNoContent)
	var marks []map[string]any
	require.NoError(t, json.Unmarshal([]byte(e.post(s, http.MethodGet, "/bookmarks", nil, http.StatusOK)), &marks))
	require.Equal(t, []map[string]any{{"room": room, "name": "Book", "nick": "bm", "autojoin": true}}, marks)
	// A new stream of the same user joins the bookmarked room by itself.
	s2 := e.login(user, pass)
	require.Eventually(t, func() bool {
		var rooms []map[string]any
		_ = json.Unmarshal([]byte(e.post(s2, http.MethodGet, "/rooms", nil, http.StatusOK)), &rooms)
		return len(rooms) == 1 && rooms[0]["room"] == room && rooms[0]["nick"] == "bm"
	}, 10e9, 50e6)
	e.post(s, http.MethodPut, "/bookmarks", []map[string]any{{"room": "not a jid"}}, http.StatusBadRequest)
}

// User search (XEP-0055) on each server's documented directory: Prosody
// has none in core (501); ejabberd's mod_vcard answers with a data form
// only, which the gateway fills in and submits.
func TestUsers_Search(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.login(e.newUser("search"))
	res, body := e.do(http.MethodGet, "/restapi/v1/chat/users", s.Token, nil, "")
	requireError(t, res, body, http.StatusBadRequest)
	if !e.onEjabberd() {
		res, body = e.do(http.MethodGet, "/restapi/v1/chat/users?search=bob", s.Token, nil, "")
		er := requireError(t, res, body, http.StatusNotImplemented)
		require.Contains(t, er.Error, "jabber:iq:search")
		return
	}
	// ejabberd indexes accounts by their vCard: one with a nickname is
	// found by it, one without is not found at all.
	found := e.login(e.newUser("findme"))
	nick := "Nick" + strings.ReplaceAll(found.user, "-", "")
	e.post(found, http.MethodPut, "/vcard", map[string]any{"fn": "Found Person", "nickname": nick}, http.StatusNoContent)
	search := func(term string) []map[string]string {
		t.Helper()
		res, body := e.do(http.MethodGet, "/restapi/v1/chat/users?search="+url.QueryEscape(term), s.Token, nil, "")
		require.Equal(t, http.StatusOK, res.StatusCode, body)
		var hits []map[string]string
		require.NoError(t, json.Unmarshal([]byte(body), &hits), body)
		return hits
	}
	hits := search(nick)
	require.Len(t, hits, 1)
	require.Equal(t, bare(found.JID), hits[0]["jid"])
	require.Equal(t, nick, hits[0]["nick"])
	require.Equal(t, "Found Person", hits[0]["fn"])
	require.Empty(t, search("NoSuchNick"+nick))
}
