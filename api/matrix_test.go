package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/gateway"
)

// identity is who a matrix request claims to be.
type identity int

const (
	idNone    identity = iota // no credentials
	idOther                   // another user's valid token
	idUser                    // the owner's valid token
	idRevoked                 // the owner's revoked token
	idExpired                 // the owner's expired token
	idAdmin                   // admin Basic credentials
)

// rawProbe is a harmless raw stanza: a message to the owner.
const rawProbe = `<message to="{jid}" type="chat"><body>raw</body></message>`

var identities = []identity{idNone, idOther, idUser, idRevoked, idExpired, idAdmin}

func (i identity) String() string {
	return [...]string{"none", "other-user", "user", "revoked", "expired", "admin"}[i]
}

// routeCase is one route's request and the status each identity gets.
type routeCase struct {
	// fresh: the request ends a stream, so every identity gets new ones.
	fresh bool
	// path overrides the route pattern (to aim {jid} at a peer, say);
	// placeholders {streamid}, {username}, {jid}, {peer}, {room}, {ident}
	// (the identity's name), ... are filled in.
	path string
	body string
	ct   string
	want [6]int // indexed by identity
}

// matrix lists every route the router has. A route added without an entry
// here fails TestAuthorizationMatrix: authorization must be decided, not
// inherited by accident.
var matrix = map[string]routeCase{
	"GET /healthz":              {want: [6]int{200, 200, 200, 200, 200, 200}},
	"GET /metrics":              {want: [6]int{401, 403, 403, 401, 401, 200}},
	"GET /readyz":               {want: [6]int{200, 200, 200, 200, 200, 200}},
	"GET /openapi/swagger.json": {want: [6]int{200, 200, 200, 200, 200, 200}},
	"GET /openapi/swagger.yaml": {want: [6]int{200, 200, 200, 200, 200, 200}},
	// Logins without a password: only admins may open a stream for someone.
	"POST /restapi/v1/chat/login": {body: `{"username":"{username}"}`, ct: "application/json",
		want: [6]int{401, 401, 401, 401, 401, 200}},
	"POST /restapi/v1/chat/{username}/login": {want: [6]int{401, 401, 401, 401, 401, 200}},
	"DELETE /restapi/v1/chat/token":          {want: [6]int{401, 204, 204, 401, 401, 400}},
	// Summary forms act on the token's own stream (the other user's token
	// reaches the other user's stream); admins must name a stream.
	"POST /restapi/v1/chat/logoff":                       {fresh: true, want: [6]int{401, 204, 204, 401, 401, 400}},
	"POST /restapi/v1/chat/token":                        {want: [6]int{401, 200, 200, 401, 401, 400}},
	"POST /restapi/v1/chat/presence":                     {want: [6]int{401, 204, 204, 401, 401, 400}},
	"POST /restapi/v1/chat/messages/{jid}":               {body: "hi", ct: "text/plain", want: [6]int{401, 202, 202, 401, 401, 400}},
	"GET /restapi/v1/chat/events":                        {want: [6]int{401, 200, 200, 401, 401, 400}},
	"PUT /restapi/v1/chat/messages/{jid}/{id}":           {body: "hi", ct: "text/plain", want: [6]int{401, 202, 202, 401, 401, 400}},
	"DELETE /restapi/v1/chat/messages/{jid}/{id}":        {want: [6]int{401, 202, 202, 401, 401, 400}},
	"POST /restapi/v1/chat/messages/{jid}/{id}/{marker}": {want: [6]int{401, 202, 202, 401, 401, 400}},
	"GET /restapi/v1/chat/messages":                      {want: [6]int{401, 200, 200, 401, 401, 400}},
	"POST /restapi/v1/chat/chatstate/{state}/{jid}":      {want: [6]int{401, 204, 204, 401, 401, 400}},
	"POST /restapi/v1/chat/commands/{jid}":               {body: `{"type":"cmd_x"}`, ct: "application/json", want: [6]int{401, 202, 202, 401, 401, 400}},
	"POST /restapi/v1/chat/xmpp":                         {body: rawProbe, ct: "text/plain", want: [6]int{401, 202, 202, 401, 401, 400}},
	"GET /restapi/v1/chat/vcard":                         {want: [6]int{401, 200, 200, 401, 401, 400}},
	"GET /restapi/v1/chat/vcard/{jid}":                   {want: [6]int{401, 200, 200, 401, 401, 400}},
	"PUT /restapi/v1/chat/vcard":                         {body: `{"fn":"x"}`, ct: "application/json", want: [6]int{401, 204, 204, 401, 401, 400}},
	// Named streams: someone else's is indistinguishable from a missing one.
	"POST /restapi/v1/chat/{streamid}/logoff":                       {fresh: true, want: [6]int{401, 404, 204, 401, 401, 204}},
	"POST /restapi/v1/chat/{streamid}/token":                        {want: [6]int{401, 404, 200, 401, 401, 200}},
	"POST /restapi/v1/chat/{streamid}/presence":                     {want: [6]int{401, 404, 204, 401, 401, 204}},
	"POST /restapi/v1/chat/{streamid}/messages/{jid}":               {body: "hi", ct: "text/plain", want: [6]int{401, 404, 202, 401, 401, 202}},
	"GET /restapi/v1/chat/{streamid}/events":                        {want: [6]int{401, 404, 200, 401, 401, 200}},
	"PUT /restapi/v1/chat/{streamid}/messages/{jid}/{id}":           {body: "hi", ct: "text/plain", want: [6]int{401, 404, 202, 401, 401, 202}},
	"DELETE /restapi/v1/chat/{streamid}/messages/{jid}/{id}":        {want: [6]int{401, 404, 202, 401, 401, 202}},
	"POST /restapi/v1/chat/{streamid}/messages/{jid}/{id}/{marker}": {want: [6]int{401, 404, 202, 401, 401, 202}},
	"GET /restapi/v1/chat/{streamid}/messages":                      {want: [6]int{401, 404, 200, 401, 401, 200}},
	"POST /restapi/v1/chat/{streamid}/chatstate/{state}/{jid}":      {want: [6]int{401, 404, 204, 401, 401, 204}},
	"POST /restapi/v1/chat/{streamid}/commands/{jid}":               {body: `{"type":"cmd_x"}`, ct: "application/json", want: [6]int{401, 404, 202, 401, 401, 202}},
	"POST /restapi/v1/chat/{streamid}/xmpp":                         {body: rawProbe, ct: "text/plain", want: [6]int{401, 404, 202, 401, 401, 202}},
	"GET /restapi/v1/chat/{streamid}/vcard":                         {want: [6]int{401, 404, 200, 401, 401, 200}},
	"GET /restapi/v1/chat/{streamid}/vcard/{jid}":                   {want: [6]int{401, 404, 200, 401, 401, 200}},
	"PUT /restapi/v1/chat/{streamid}/vcard":                         {body: `{"fn":"x"}`, ct: "application/json", want: [6]int{401, 404, 204, 401, 401, 204}},
	"GET /restapi/v1/chat/contacts":                                 {want: [6]int{401, 200, 200, 401, 401, 400}},
	"POST /restapi/v1/chat/contacts/{jid}":                          {path: "/restapi/v1/chat/contacts/{peer}", want: [6]int{401, 204, 204, 401, 401, 400}},
	"PUT /restapi/v1/chat/contacts/{jid}":                           {path: "/restapi/v1/chat/contacts/{peer}", body: `{"name":"P"}`, ct: "application/json", want: [6]int{401, 204, 204, 401, 401, 400}},
	"DELETE /restapi/v1/chat/contacts/{jid}":                        {path: "/restapi/v1/chat/contacts/nobody-{peer}", want: [6]int{401, 404, 404, 401, 401, 400}},
	"POST /restapi/v1/chat/contacts/{jid}/approve":                  {path: "/restapi/v1/chat/contacts/{peer}/approve", want: [6]int{401, 204, 204, 401, 401, 400}},
	"POST /restapi/v1/chat/contacts/{jid}/deny":                     {path: "/restapi/v1/chat/contacts/{peer}/deny", want: [6]int{401, 204, 204, 401, 401, 400}},
	"GET /restapi/v1/chat/rooms":                                    {want: [6]int{401, 200, 200, 401, 401, 400}},
	"GET /restapi/v1/chat/rooms/{room}":                             {want: [6]int{401, 200, 200, 401, 401, 400}},
	"POST /restapi/v1/chat/rooms":                                   {fresh: true, body: `{"room":"{room}"}`, ct: "application/json", want: [6]int{401, 201, 201, 401, 401, 400}},
	"PUT /restapi/v1/chat/rooms/{room}":                             {fresh: true, want: [6]int{401, 204, 204, 401, 401, 400}},
	"DELETE /restapi/v1/chat/rooms/{room}":                          {fresh: true, want: [6]int{401, 404, 404, 401, 401, 400}},
	"POST /restapi/v1/chat/rooms/{room}":                            {fresh: true, body: "hi", ct: "text/plain", want: [6]int{401, 404, 404, 401, 401, 400}},
	"POST /restapi/v1/chat/rooms/{room}/{jid}":                      {want: [6]int{401, 204, 204, 401, 401, 400}},
	// Changing a subject needs occupancy (XEP-0045 §8.1), and every request
	// starts outside the room: past authorization it is 404 "not in room".
	"PUT /restapi/v1/chat/rooms/{room}/subject":                       {body: `{"subject":"s"}`, ct: "application/json", want: [6]int{401, 404, 404, 401, 401, 400}},
	"GET /restapi/v1/chat/rooms/{room}/occupants":                     {fresh: true, want: [6]int{401, 404, 404, 401, 401, 400}},
	"GET /restapi/v1/chat/rooms/{room}/config":                        {want: [6]int{401, 403, 200, 401, 401, 400}},
	"PUT /restapi/v1/chat/rooms/{room}/config":                        {body: `{"description":"d"}`, ct: "application/json", want: [6]int{401, 403, 204, 401, 401, 400}},
	"POST /restapi/v1/chat/rooms/{room}/destroy":                      {path: "/restapi/v1/chat/rooms/gone{ident}{room}/destroy", want: [6]int{401, 404, 404, 401, 401, 400}},
	"PUT /restapi/v1/chat/rooms/{room}/affiliations/{jid}":            {path: "/restapi/v1/chat/rooms/{room}/affiliations/{peer}", body: `{"affiliation":"member"}`, ct: "application/json", want: [6]int{401, 403, 204, 401, 401, 400}},
	"PUT /restapi/v1/chat/rooms/{room}/roles/{nick}":                  {path: "/restapi/v1/chat/rooms/{room}/roles/nobody", body: `{"role":"none"}`, ct: "application/json", want: [6]int{401, 404, 404, 401, 401, 400}},
	"GET /restapi/v1/chat/rooms/{room}/messages":                      {want: [6]int{401, 200, 200, 401, 401, 400}},
	"GET /restapi/v1/chat/{streamid}/contacts":                        {want: [6]int{401, 404, 200, 401, 401, 200}},
	"POST /restapi/v1/chat/{streamid}/contacts/{jid}":                 {path: "/restapi/v1/chat/{streamid}/contacts/{peer}", want: [6]int{401, 404, 204, 401, 401, 204}},
	"PUT /restapi/v1/chat/{streamid}/contacts/{jid}":                  {path: "/restapi/v1/chat/{streamid}/contacts/{peer}", body: `{"name":"P"}`, ct: "application/json", want: [6]int{401, 404, 204, 401, 401, 204}},
	"DELETE /restapi/v1/chat/{streamid}/contacts/{jid}":               {path: "/restapi/v1/chat/{streamid}/contacts/nobody-{peer}", want: [6]int{401, 404, 404, 401, 401, 404}},
	"POST /restapi/v1/chat/{streamid}/contacts/{jid}/approve":         {path: "/restapi/v1/chat/{streamid}/contacts/{peer}/approve", want: [6]int{401, 404, 204, 401, 401, 204}},
	"POST /restapi/v1/chat/{streamid}/contacts/{jid}/deny":            {path: "/restapi/v1/chat/{streamid}/contacts/{peer}/deny", want: [6]int{401, 404, 204, 401, 401, 204}},
	"POST /restapi/v1/chat/{streamid}/rooms":                          {fresh: true, body: `{"room":"{room}"}`, ct: "application/json", want: [6]int{401, 404, 201, 401, 401, 201}},
	"PUT /restapi/v1/chat/{streamid}/rooms/{room}":                    {fresh: true, want: [6]int{401, 404, 204, 401, 401, 204}},
	"DELETE /restapi/v1/chat/{streamid}/rooms/{room}":                 {fresh: true, want: [6]int{401, 404, 404, 401, 401, 404}},
	"POST /restapi/v1/chat/{streamid}/rooms/{room}":                   {fresh: true, body: "hi", ct: "text/plain", want: [6]int{401, 404, 404, 401, 401, 404}},
	"POST /restapi/v1/chat/{streamid}/rooms/{room}/{jid}":             {want: [6]int{401, 404, 204, 401, 401, 204}},
	"PUT /restapi/v1/chat/{streamid}/rooms/{room}/subject":            {body: `{"subject":"s"}`, ct: "application/json", want: [6]int{401, 404, 404, 401, 401, 404}},
	"GET /restapi/v1/chat/{streamid}/rooms/{room}/occupants":          {fresh: true, want: [6]int{401, 404, 404, 401, 401, 404}},
	"GET /restapi/v1/chat/{streamid}/rooms/{room}/config":             {want: [6]int{401, 404, 200, 401, 401, 200}},
	"PUT /restapi/v1/chat/{streamid}/rooms/{room}/config":             {body: `{"description":"d"}`, ct: "application/json", want: [6]int{401, 404, 204, 401, 401, 204}},
	"POST /restapi/v1/chat/{streamid}/rooms/{room}/destroy":           {path: "/restapi/v1/chat/{streamid}/rooms/gone{ident}{room}/destroy", want: [6]int{401, 404, 404, 401, 401, 404}},
	"PUT /restapi/v1/chat/{streamid}/rooms/{room}/affiliations/{jid}": {path: "/restapi/v1/chat/{streamid}/rooms/{room}/affiliations/{peer}", body: `{"affiliation":"member"}`, ct: "application/json", want: [6]int{401, 404, 204, 401, 401, 204}},
	"PUT /restapi/v1/chat/{streamid}/rooms/{room}/roles/{nick}":       {path: "/restapi/v1/chat/{streamid}/rooms/{room}/roles/nobody", body: `{"role":"none"}`, ct: "application/json", want: [6]int{401, 404, 404, 401, 401, 404}},
	"GET /restapi/v1/chat/{streamid}/rooms/{room}/messages":           {want: [6]int{401, 404, 200, 401, 401, 200}},
	"GET /restapi/v1/chat/{streamid}/rooms":                           {want: [6]int{401, 404, 200, 401, 401, 200}},
	"GET /restapi/v1/chat/users":                                      {path: "/restapi/v1/chat/users?search=x", want: [6]int{401, 501, 501, 401, 401, 400}},
	"GET /restapi/v1/chat/users/properties":                           {want: [6]int{401, 200, 200, 401, 401, 400}},
	"POST /restapi/v1/chat/users/{property}":                          {path: "/restapi/v1/chat/users/colour", body: "blue", ct: "text/plain", want: [6]int{401, 204, 204, 401, 401, 400}},
	"DELETE /restapi/v1/chat/users/{property}":                        {path: "/restapi/v1/chat/users/colour", want: [6]int{401, 204, 204, 401, 401, 400}},
	"GET /restapi/v1/chat/bookmarks":                                  {want: [6]int{401, 200, 200, 401, 401, 400}},
	"PUT /restapi/v1/chat/bookmarks":                                  {body: `[]`, ct: "application/json", want: [6]int{401, 204, 204, 401, 401, 400}},
	"GET /restapi/v1/chat/{streamid}/users/properties":                {want: [6]int{401, 404, 200, 401, 401, 200}},
	"POST /restapi/v1/chat/{streamid}/users/{property}":               {path: "/restapi/v1/chat/{streamid}/users/colour", body: "blue", ct: "text/plain", want: [6]int{401, 404, 204, 401, 401, 204}},
	"DELETE /restapi/v1/chat/{streamid}/users/{property}":             {path: "/restapi/v1/chat/{streamid}/users/colour", want: [6]int{401, 404, 204, 401, 401, 204}},
	"GET /restapi/v1/chat/{streamid}/bookmarks":                       {want: [6]int{401, 404, 200, 401, 401, 200}},
	"PUT /restapi/v1/chat/{streamid}/bookmarks":                       {body: `[]`, ct: "application/json", want: [6]int{401, 404, 204, 401, 401, 204}},
	// Admin routes: 401 without valid credentials, 403 for users.
	"GET /restapi/v1/admin/streams":               {want: [6]int{401, 403, 403, 401, 401, 200}},
	"DELETE /restapi/v1/admin/streams/{streamid}": {fresh: true, want: [6]int{401, 403, 403, 401, 401, 204}},
	"POST /restapi/v1/admin/notifications/{username}": {body: `{"body":"hi"}`, ct: "application/json",
		want: [6]int{401, 403, 403, 401, 401, 202}},
}

// ejabberdMatrix overrides matrix where ejabberd 23.01 answers the same
// request differently from Prosody; authorization (the 401/403/400
// columns) is the same on both, only what the server does with an
// authorized request differs.
var ejabberdMatrix = map[string][6]int{
	// Removing a JID that is not in the roster: Prosody item-not-found
	// (RFC 6121 §2.5.3), ejabberd a result.
	"DELETE /restapi/v1/chat/contacts/{jid}":            {401, 204, 204, 401, 401, 400},
	"DELETE /restapi/v1/chat/{streamid}/contacts/{jid}": {401, 404, 204, 401, 401, 204},
	// Destroying a room that does not exist: Prosody item-not-found,
	// ejabberd a result.
	"POST /restapi/v1/chat/rooms/{room}/destroy":            {401, 204, 204, 401, 401, 400},
	"POST /restapi/v1/chat/{streamid}/rooms/{room}/destroy": {401, 404, 204, 401, 401, 204},
	// A role for a nick nobody has: Prosody item-not-found, ejabberd
	// not-acceptable (XEP-0045 §9.6 leaves it open).
	"PUT /restapi/v1/chat/rooms/{room}/roles/{nick}":            {401, 400, 400, 401, 401, 400},
	"PUT /restapi/v1/chat/{streamid}/rooms/{room}/roles/{nick}": {401, 404, 400, 401, 401, 400},
	// ejabberd has a user directory (mod_vcard search), Prosody none.
	"GET /restapi/v1/chat/users": {401, 200, 200, 401, 401, 400},
}

func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{gateway: gatewayLimits(200)})
	aliceUser, alicePass := e.newUser("owner")
	bobUser, bobPass := e.newUser("other")
	alice := e.login(aliceUser, alicePass)
	bob := e.login(bobUser, bobPass)
	// A room alice owns, for the owner-only routes; she leaves it so every
	// request starts outside it.
	roomName := "mx" + strings.ReplaceAll(aliceUser, "-", "")
	e.post(alice, http.MethodPost, "/rooms", map[string]any{"room": roomName, "config": map[string]any{"persistent": true}}, http.StatusCreated)
	e.post(alice, http.MethodDelete, "/rooms/"+roomName, nil, http.StatusNoContent)

	var routes []string
	require.NoError(t, chi.Walk(e.srv.Routes().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if staticRoutes[method+" "+route] {
			return nil // embedded files: no credentials, no data (see staticRoutes)
		}
		routes = append(routes, method+" "+strings.TrimSuffix(strings.ReplaceAll(route, "/*/", "/"), "/"))
		return nil
	}))
	require.NotEmpty(t, routes)
	seen := map[string]bool{}
	for _, route := range routes {
		seen[route] = true
		rc, ok := matrix[route]
		if !ok {
			t.Errorf("route %q has no entry in the authorization matrix", route)
			continue
		}
		if w, ok := ejabberdMatrix[route]; ok && e.onEjabberd() {
			rc.want = w
		}
		method, routePattern, _ := strings.Cut(route, " ")
		for _, id := range identities {
			pattern := routePattern
			owner, other := alice, bob
			if rc.fresh {
				owner, other = e.login(aliceUser, alicePass), e.login(bobUser, bobPass)
			}
			fill := strings.NewReplacer("{streamid}", owner.StreamID, "{username}", aliceUser,
				"{jid}", bare(owner.JID), "{state}", "composing", "{id}", "m1", "{marker}", "received",
				"{room}", roomName, "{peer}", "peer@"+e.xmpp.Domain,
				// A room of its own per identity: ejabberd may leave a request to
				// a room it is just destroying unanswered (seen: 504).
				"{ident}", strings.ReplaceAll(id.String(), "-", ""))
			if rc.path != "" {
				pattern = rc.path
			}
			path, body := fill.Replace(pattern), fill.Replace(rc.body)
			got := e.status(method, path, e.credentials(id, owner, other), body, rc.ct)
			if got != rc.want[id] {
				t.Errorf("%s as %s: got %d, want %d", route, id, got, rc.want[id])
			}
		}
	}
	for route := range matrix {
		if !seen[route] {
			t.Errorf("matrix entry %q names no route", route)
		}
	}
}

// staticRoutes are the routes of embedded files (api/web.go): Swagger UI and
// the demo chat page. They take no credentials and hold no data, so they have
// no matrix entry and no OpenAPI operation; TestWeb_* in web_test.go covers
// them (public, CSP, 404 for unknown files, the chat page off by default).
var staticRoutes = map[string]bool{
	"GET /docs":   true,
	"GET /docs/*": true,
	"GET /":       true,
	"GET /ui/*":   true,
}

// credentials builds the headers of an identity, minting fresh tokens so
// one request's revocation cannot leak into the next.
func (e *testEnv) credentials(id identity, owner, other session) http.Header {
	e.t.Helper()
	issue := func(s session) (string, *tokenClaims) {
		user, err := gateway.UserJID(s.user, e.xmpp.Domain)
		require.NoError(e.t, err)
		raw, _, err := e.srv.tokens.issue(user, s.StreamID)
		require.NoError(e.t, err)
		c, err := e.srv.tokens.verify(raw)
		require.NoError(e.t, err)
		return raw, c
	}
	switch id {
	case idOther:
		raw, _ := issue(other)
		return bearerHeader(raw)
	case idUser:
		raw, _ := issue(owner)
		return bearerHeader(raw)
	case idRevoked:
		raw, c := issue(owner)
		e.srv.tokens.revoke(c)
		return bearerHeader(raw)
	case idExpired:
		return bearerHeader(mintToken(e.t, testSecret, owner, -time.Minute))
	case idAdmin:
		return adminHeader()
	}
	return nil
}

// status sends one request and returns its status without reading the
// body, so event streams are closed right after their headers.
func (e *testEnv) status(method, path string, h http.Header, body, contentType string) int {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.http.URL+path, strings.NewReader(body))
	require.NoError(e.t, err)
	for k, v := range h {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := e.http.Client().Do(req)
	require.NoError(e.t, err)
	res.Body.Close()
	return res.StatusCode
}
