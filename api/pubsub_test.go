package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pubsubMatrix: the pubsub and WebSocket routes. The pubsub requests name a
// service that is no JID, so authorized callers get 400 (authentication
// and stream ownership are decided first); a plain GET on the WebSocket
// route is 426 once authorized.
var pubsubMatrix = func() map[string]routeCase {
	m := map[string]routeCase{}
	ops := []struct{ method, route, path string }{
		{"GET", "/pubsub/{service}/{node}/subscriptions", "/pubsub/bad@@svc/n/subscriptions"},
		{"POST", "/pubsub/{service}/{node}/subscriptions", "/pubsub/bad@@svc/n/subscriptions"},
		{"DELETE", "/pubsub/{service}/{node}/subscriptions/{subid}", "/pubsub/bad@@svc/n/subscriptions/-"},
		{"POST", "/pubsub/{service}/{node}/items", "/pubsub/bad@@svc/n/items"},
		{"GET", "/pubsub/{service}/{node}/items", "/pubsub/bad@@svc/n/items"},
		{"GET", "/pubsub/{service}/{node}/items/{id}", "/pubsub/bad@@svc/n/items/x"},
		{"DELETE", "/pubsub/{service}/{node}/items/{id}", "/pubsub/bad@@svc/n/items/x"},
	}
	const chat = "/restapi/v1/chat"
	for _, o := range ops {
		m[o.method+" "+chat+o.route] = routeCase{path: chat + o.path, want: [6]int{401, 400, 400, 401, 401, 400}}
		m[o.method+" "+chat+"/{streamid}"+o.route] = routeCase{path: chat + "/{streamid}" + o.path, want: [6]int{401, 404, 400, 401, 401, 400}}
	}
	m["GET "+chat+"/ws"] = routeCase{want: [6]int{401, 426, 426, 401, 401, 400}}
	m["GET "+chat+"/{streamid}/ws"] = routeCase{want: [6]int{401, 404, 426, 401, 401, 426}}
	return m
}()

func init() {
	for k, v := range pubsubMatrix {
		matrix[k] = v
	}
}

// createPubSubNode creates a node on the server's pubsub service that
// publisher (a bare JID) may publish to (testxmpp.CreatePubSubNode).
func createPubSubNode(t *testing.T, e *testEnv, node, publisher string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, e.xmpp.CreatePubSubNode(ctx, node, publisher))
}

func pubsubPath(service, node string) string {
	return "/pubsub/" + url.PathEscape(service) + "/" + url.PathEscape(node)
}

func decodeInto[T any](t *testing.T, body string) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal([]byte(body), &v), body)
	return v
}

func TestPubSub_ServiceSubscribePublishReuseUnsubscribe(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	node := "news/" + p.alice.user
	createPubSubNode(t, e, node, p.bobBare)
	path := pubsubPath(e.xmpp.PubSubDomain, node)

	sub := decodeInto[map[string]any](t, e.post(p.alice, http.MethodPost, path+"/subscriptions",
		map[string]any{"depth": "all", "expire": "1h", "type": "items"}, http.StatusOK))
	require.Equal(t, "subscribed", sub["state"])
	require.Equal(t, p.alice.JID, sub["jid"], "the full JID subscribes")
	require.Nil(t, sub["reused"])
	requireSubID(t, e, sub)

	// bob publishes JSON; alice's stream gets the notification.
	pub := decodeInto[PublishResponse](t, e.post(p.bob, http.MethodPost, path+"/items",
		map[string]any{"id": "i1", "payload_json": map[string]any{"call": "ringing"}}, http.StatusCreated))
	require.Equal(t, "i1", pub.ID)
	_, ev := p.aliceEv.next(t, ofType("pubsub"))
	require.Equal(t, e.xmpp.PubSubDomain, ev["service"])
	require.Equal(t, node, ev["node"])
	items := ev["items"].([]any)
	require.Len(t, items, 1)
	item := items[0].(map[string]any)
	require.Equal(t, "i1", item["id"])
	require.Equal(t, map[string]any{"call": "ringing"}, item["payload_json"])
	require.Contains(t, item["payload"], "urn:xmpp:json:0")

	// Subscribing again reuses (renews) the subscription: still exactly one.
	again := decodeInto[map[string]any](t, e.post(p.alice, http.MethodPost, path+"/subscriptions",
		map[string]any{"expire": "2h"}, http.StatusOK))
	require.Equal(t, true, again["reused"])
	subs := decodeInto[[]map[string]any](t, e.post(p.alice, http.MethodGet, path+"/subscriptions", nil, http.StatusOK))
	require.Len(t, subs, 1)
	require.Equal(t, p.alice.JID, subs[0]["jid"])

	// An XML item, read back, then retracted.
	e.post(p.bob, http.MethodPost, path+"/items", map[string]any{"id": "i2", "payload": `<call xmlns="urn:example:call" state="up"/>`}, http.StatusCreated)
	_, ev = p.aliceEv.next(t, ofType("pubsub"))
	require.Contains(t, ev["items"].([]any)[0].(map[string]any)["payload"], `<call xmlns="urn:example:call" state="up">`)
	got := decodeInto[map[string]any](t, e.post(p.alice, http.MethodGet, path+"/items/i1", nil, http.StatusOK))
	require.Equal(t, map[string]any{"call": "ringing"}, got["payload_json"])
	list := decodeInto[[]map[string]any](t, e.post(p.alice, http.MethodGet, path+"/items", nil, http.StatusOK))
	require.Len(t, list, 2)
	e.post(p.bob, http.MethodDelete, path+"/items/i2", nil, http.StatusNoContent)
	_, ev = p.aliceEv.next(t, ofType("pubsub"))
	require.Equal(t, []any{"i2"}, ev["retract"])
	e.post(p.alice, http.MethodGet, path+"/items/i2", nil, http.StatusNotFound)

	// alice may not publish (not a publisher); bad payloads are 400.
	e.post(p.alice, http.MethodPost, path+"/items", map[string]any{"payload": `<x xmlns="urn:x"/>`}, http.StatusForbidden)
	e.post(p.bob, http.MethodPost, path+"/items", map[string]any{"payload": `<x/>`}, http.StatusBadRequest)
	e.post(p.bob, http.MethodPost, path+"/items", map[string]any{}, http.StatusBadRequest)

	// Unsubscribe: no more notifications (a chat message from bob arrives first).
	e.post(p.alice, http.MethodDelete, path+"/subscriptions/-", nil, http.StatusNoContent)
	require.Empty(t, decodeInto[[]map[string]any](t, e.post(p.alice, http.MethodGet, path+"/subscriptions", nil, http.StatusOK)))
	e.post(p.alice, http.MethodDelete, path+"/subscriptions/-", nil, http.StatusNotFound)
	e.post(p.bob, http.MethodPost, path+"/items", map[string]any{"id": "i3", "payload_json": 3}, http.StatusCreated)
	e.post(p.bob, http.MethodPost, "/messages/"+p.aliceBare, "after unsubscribe", http.StatusAccepted)
	_, ev = p.aliceEv.next(t, func(m map[string]any) bool { return m["type"] == "pubsub" || m["type"] == "chat" })
	require.Equal(t, "chat", ev["type"], "no notification after unsubscribing")

	// Invalid names never reach the server.
	e.post(p.alice, http.MethodGet, "/pubsub/"+url.PathEscape("alice@x/res")+"/n/items", nil, http.StatusBadRequest)
	e.post(p.alice, http.MethodGet, "/pubsub/pubsub.x/"+url.PathEscape("a\x01b")+"/items", nil, http.StatusBadRequest)
}

func TestPubSub_PEP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	const node = "urn:example:status"
	path := pubsubPath(p.bobBare, node)
	// bob's first publish creates his PEP node, open so alice may subscribe.
	e.post(p.bob, http.MethodPost, path+"/items", map[string]any{"id": "current", "payload": `<status xmlns="urn:example:status">busy</status>`, "access_model": "open"}, http.StatusCreated)
	sub := decodeInto[map[string]any](t, e.post(p.alice, http.MethodPost, path+"/subscriptions", nil, http.StatusOK))
	require.Equal(t, "subscribed", sub["state"])
	requireSubID(t, e, sub)
	e.post(p.bob, http.MethodPost, path+"/items", map[string]any{"id": "current", "payload": `<status xmlns="urn:example:status">free</status>`}, http.StatusCreated)
	_, ev := p.aliceEv.next(t, func(m map[string]any) bool {
		return m["type"] == "pubsub" && strings.Contains(fmt.Sprint(m["items"]), "free")
	})
	require.Equal(t, p.bobBare, ev["service"])
	require.Equal(t, node, ev["node"])
	items := decodeInto[[]map[string]any](t, e.post(p.alice, http.MethodGet, path+"/items", nil, http.StatusOK))
	require.Len(t, items, 1)
	require.Contains(t, items[0]["payload"], "free")
	// "-" is this stream's subscription whatever its subid.
	e.post(p.alice, http.MethodDelete, path+"/subscriptions/-", nil, http.StatusNoContent)
	require.Empty(t, decodeInto[[]map[string]any](t, e.post(p.alice, http.MethodGet, path+"/subscriptions", nil, http.StatusOK)))
	e.post(p.alice, http.MethodDelete, path+"/subscriptions/-", nil, http.StatusNotFound)
}

// requireSubID asserts each server's documented subscription ids: ejabberd
// gives every subscription one (pubsub service and PEP), Prosody none.
func requireSubID(t *testing.T, e *testEnv, sub map[string]any) {
	t.Helper()
	if e.onEjabberd() {
		require.NotEmpty(t, sub["subid"], "ejabberd assigns a subid")
	} else {
		require.Nil(t, sub["subid"], "Prosody assigns no subid")
	}
}

// Publishing to a node of the pubsub service that nobody created: Prosody
// refuses with forbidden (its component lets only admins create nodes),
// ejabberd creates the node with the publisher as owner (XEP-0060 §7.1.4
// auto-create, on by default), so the item is there afterwards.
func TestPubSub_PublishToMissingNodePerServer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPair(t, e)
	path := pubsubPath(e.xmpp.PubSubDomain, "auto/"+p.bob.user)
	res, body := e.do(http.MethodPost, "/restapi/v1/chat/"+p.bob.StreamID+path+"/items", p.bob.Token,
		jsonBody(map[string]any{"id": "first", "payload_json": 1}), "application/json")
	if !e.onEjabberd() {
		er := requireError(t, res, body, http.StatusForbidden)
		require.Contains(t, er.Error, "forbidden")
		e.post(p.alice, http.MethodGet, path+"/items", nil, http.StatusNotFound)
		return
	}
	require.Equal(t, http.StatusCreated, res.StatusCode, body)
	items := decodeInto[[]map[string]any](t, e.post(p.alice, http.MethodGet, path+"/items", nil, http.StatusOK))
	require.Len(t, items, 1)
	require.Equal(t, "first", items[0]["id"])
}
