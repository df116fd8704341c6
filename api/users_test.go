package api

import (
	"encoding/json"
	"net/http"
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

func TestUsers_SearchWithoutDirectoryIs501(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s := e.login(e.newUser("search"))
	res, body := e.do(http.MethodGet, "/restapi/v1/chat/users?search=bob", s.Token, nil, "")
	er := requireError(t, res, body, http.StatusNotImplemented)
	require.Contains(t, er.Error, "jabber:iq:search")
	res, body = e.do(http.MethodGet, "/restapi/v1/chat/users", s.Token, nil, "")
	requireError(t, res, body, http.StatusBadRequest)
}
