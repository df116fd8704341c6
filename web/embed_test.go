package web

import (
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The vendored bundle, the constant and the npm pin must name one release,
// so `make swagger-ui` and a version bump cannot drift apart silently.
func TestSwaggerUIVersionPinned(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../e2e/package.json")
	require.NoError(t, err)
	var pkg struct {
		DevDependencies map[string]string `json:"devDependencies"`
	}
	require.NoError(t, json.Unmarshal(raw, &pkg))
	require.Equal(t, SwaggerUIVersion, pkg.DevDependencies["swagger-ui-dist"],
		"e2e/package.json pins another swagger-ui-dist: run make swagger-ui and update SwaggerUIVersion")

	bundle, err := fs.ReadFile(Swagger(), "swagger-ui-bundle.js")
	require.NoError(t, err)
	require.Contains(t, string(bundle), `"`+SwaggerUIVersion+`"`, "web/swagger/swagger-ui-bundle.js is not release "+SwaggerUIVersion)
}

// Every page must load only same-origin files, in separate .js/.css files:
// the CSP api/web.go sends forbids inline scripts and other origins.
func TestPagesHaveNoInlineScriptsOrRemoteURLs(t *testing.T) {
	t.Parallel()
	for _, dir := range []fs.FS{UI(), Swagger()} {
		require.NoError(t, fs.WalkDir(dir, ".", func(path string, d fs.DirEntry, err error) error {
			require.NoError(t, err)
			if d.IsDir() || !(strings.HasSuffix(path, ".html") || path == "app.js" || path == "client.js" || path == "app.css" || path == "swagger-initializer.js") {
				return nil
			}
			b, err := fs.ReadFile(dir, path)
			require.NoError(t, err)
			s := string(b)
			require.NotContains(t, s, "http://", path)
			require.NotContains(t, s, "https://", path)
			require.NotContains(t, s, "style=", path+": inline style attributes are blocked by the CSP")
			if strings.HasSuffix(path, ".html") {
				require.NotRegexp(t, `<script(\s+type="module")?>`, s, path+": inline script")
				require.NotContains(t, s, "<style", path+": inline style element")
				require.NotRegexp(t, `\son[a-z]+=`, s, path+": inline event handler")
			}
			return nil
		}))
	}
}
