package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
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
	require.NoError(t, json.Unmarshal([]byte(specJSON()), &spec))
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

// The spec endpoints serve concurrent requests. swag's Spec.ReadDoc is not
// safe for concurrent use (it rewrites the Spec), so the document is
// rendered once; under -race a per-request ReadDoc fails this test.
func TestSpec_ConcurrentRequests(t *testing.T) {
	t.Parallel()
	h := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil).Routes()
	paths := []string{"/openapi/swagger.json", "/openapi/swagger.yaml"}
	const perPath = 4
	codes := make([]int, len(paths)*perPath)
	bodies := make([]string, len(codes))
	var wg sync.WaitGroup
	for i := range codes {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, paths[i%len(paths)], nil))
			codes[i], bodies[i] = rec.Code, rec.Body.String()
		})
	}
	wg.Wait()
	for i := range codes {
		require.Equal(t, http.StatusOK, codes[i], paths[i%len(paths)])
		require.Equal(t, bodies[i%len(paths)], bodies[i], "every request gets the same document")
	}
	require.Equal(t, specJSON(), bodies[0])
}
