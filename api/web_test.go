package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func webGet(t *testing.T, h http.Handler, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

func TestWeb_SwaggerUI(t *testing.T) {
	t.Parallel()
	h := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil).Routes()

	res := webGet(t, h, "/docs")
	require.Equal(t, http.StatusMovedPermanently, res.StatusCode)
	require.Equal(t, "docs/", res.Header.Get("Location"), "relative, so a path prefix survives")

	res = webGet(t, h, "/docs/")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, docsCSP, res.Header.Get("Content-Security-Policy"))
	require.Equal(t, "DENY", res.Header.Get("X-Frame-Options"))
	require.Equal(t, "nosniff", res.Header.Get("X-Content-Type-Options"))
	page := body(t, res)
	require.Contains(t, page, `<script src="swagger-ui-bundle.js" defer></script>`)
	require.Contains(t, page, `<script src="swagger-initializer.js" defer></script>`)

	res = webGet(t, h, "/docs/swagger-initializer.js")
	require.Equal(t, "text/javascript; charset=utf-8", res.Header.Get("Content-Type"))
	require.Contains(t, body(t, res), "../openapi/swagger.json")

	// The big bundle: gzip when asked, a strong ETag, 304 on revalidation.
	res = webGet(t, h, "/docs/swagger-ui-bundle.js", "Accept-Encoding", "br, gzip")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "gzip", res.Header.Get("Content-Encoding"))
	require.Equal(t, "Accept-Encoding", res.Header.Get("Vary"))
	require.Equal(t, "no-cache", res.Header.Get("Cache-Control"))
	etag := res.Header.Get("ETag")
	require.NotEmpty(t, etag)
	res = webGet(t, h, "/docs/swagger-ui-bundle.js", "Accept-Encoding", "gzip", "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, res.StatusCode)
	res = webGet(t, h, "/docs/swagger-ui-bundle.js")
	require.Empty(t, res.Header.Get("Content-Encoding"))
	require.NotEqual(t, etag, res.Header.Get("ETag"), "the identity and gzip bodies need different ETags")
	require.Contains(t, body(t, res), "SwaggerUIBundle")

	for _, path := range []string{"/docs/nope.js", "/docs/../web.go", "/docs/swagger", "/ui/app.js", "/"} {
		res = webGet(t, h, path)
		require.Equal(t, http.StatusNotFound, res.StatusCode, path)
		require.Contains(t, res.Header.Get("Content-Type"), "application/json", path)
		require.Equal(t, "default-src 'none'; frame-ancestors 'none'", res.Header.Get("Content-Security-Policy"), path)
	}
}

func TestWeb_ChatPage(t *testing.T) {
	t.Parallel()
	h := NewServer(Config{JWTSecret: testSecret, WebUI: true}, nil, nil, nil).Routes()

	res := webGet(t, h, "/")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "text/html; charset=utf-8", res.Header.Get("Content-Type"))
	require.Equal(t, uiCSP, res.Header.Get("Content-Security-Policy"))
	require.Contains(t, body(t, res), `<script type="module" src="ui/app.js"></script>`)

	for path, ctype := range map[string]string{
		"/ui/app.js": "text/javascript; charset=utf-8", "/ui/client.js": "text/javascript; charset=utf-8",
		"/ui/app.css": "text/css; charset=utf-8", "/ui/favicon.svg": "image/svg+xml",
	} {
		res := webGet(t, h, path)
		require.Equal(t, http.StatusOK, res.StatusCode, path)
		require.Equal(t, ctype, res.Header.Get("Content-Type"), path)
		require.Equal(t, uiCSP, res.Header.Get("Content-Security-Policy"), path)
	}
	res = webGet(t, h, "/ui/")
	require.Equal(t, http.StatusOK, res.StatusCode, "the index under its own directory too")
	res = webGet(t, h, "/ui/missing.js")
	require.Equal(t, http.StatusNotFound, res.StatusCode)
	res = webGet(t, h, "/restapi/v1/nothing")
	require.Equal(t, http.StatusNotFound, res.StatusCode, "the page must not swallow unknown API paths")
	require.Contains(t, res.Header.Get("Content-Type"), "application/json")
}

func TestWeb_SpecYAML(t *testing.T) {
	t.Parallel()
	h := NewServer(Config{JWTSecret: testSecret}, nil, nil, nil).Routes()
	res := webGet(t, h, "/openapi/swagger.yaml")
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "application/yaml", res.Header.Get("Content-Type"))
	text := body(t, res)
	require.False(t, strings.HasPrefix(strings.TrimSpace(text), "{"), "block style, not JSON")

	var fromYAML any
	require.NoError(t, yaml.Unmarshal([]byte(text), &fromYAML))
	viaJSON, err := json.Marshal(fromYAML)
	require.NoError(t, err)
	var got, want any
	require.NoError(t, json.Unmarshal(viaJSON, &got))
	require.NoError(t, json.Unmarshal([]byte(specJSON()), &want))
	require.Equal(t, want, got, "the YAML must say exactly what the JSON says")

	// Key order follows the JSON document.
	var node yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(text), &node))
	dec := json.NewDecoder(strings.NewReader(specJSON()))
	_, _ = dec.Token() // {
	first, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, first, node.Content[0].Content[0].Value)
}
