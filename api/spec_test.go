package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/xmppgw/xmppgw/openapi"
)

// specAlias maps a route to the documented route that covers it: the
// summary forms without {streamid} (and POST /chat/login) are described in
// their {streamid} / {username} counterparts.
func specAlias(route string) string {
	method, path, _ := strings.Cut(route, " ")
	const chat = "/restapi/v1/chat/"
	rest, ok := strings.CutPrefix(path, chat)
	switch {
	case !ok:
		return route
	case rest == "login":
		return method + " " + chat + "{username}/login"
	case rest == "token" && method == http.MethodDelete:
		return route
	case !strings.HasPrefix(rest, "{"):
		return method + " " + chat + "{streamid}/" + rest
	}
	return route
}

func TestSpec_MatchesRouter(t *testing.T) {
	t.Parallel()
	var spec struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	require.NoError(t, json.Unmarshal([]byte(openapi.SwaggerInfo.ReadDoc()), &spec))
	documented := map[string]bool{}
	for path, ops := range spec.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+path] = false
		}
	}
	s := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil)
	require.NoError(t, chi.Walk(s.Routes().(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if staticRoutes[method+" "+route] {
			return nil // embedded files, not API operations (see staticRoutes)
		}
		key := method + " " + route
		if _, ok := documented[key]; !ok {
			key = specAlias(key)
		}
		if _, ok := documented[key]; !ok {
			t.Errorf("route %s %s is not in openapi/ (documented as %q?): add swag annotations and run make openapi", method, route, key)
		}
		documented[key] = true
		return nil
	}))
	for op, used := range documented {
		if !used {
			t.Errorf("openapi/ documents %s, which the router does not have", op)
		}
	}
}
