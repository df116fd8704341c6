package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"go.yaml.in/yaml/v3"

	"github.com/xmppgw/xmppgw/web"
)

// The pages' Content-Security-Policies. Everything else keeps the API's
// "default-src 'none'" (securityHeaders). Both pages load only their own
// files: scripts and stylesheets are separate files (no inline source;
// Swagger UI's React styling goes through the CSSOM, which CSP allows), and
// fetch/EventSource reach this origin only. Swagger UI's icons are data:
// URIs in its CSS. Nothing comes from a CDN or an external font.
const (
	uiCSP   = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// The embedded sites, read (and compressed) on first use so that building a
// router stays cheap; the files never change while the process runs.
var (
	uiSite   = sync.OnceValue(func() *staticSite { return newStaticSite(web.UI(), uiCSP) })
	docsSite = sync.OnceValue(func() *staticSite { return newStaticSite(web.Swagger(), docsCSP) })
)

// mountWeb adds the browser-facing routes: Swagger UI at /docs/, the spec as
// YAML, and, when Config.WebUI is set, the demo chat page at / with its
// assets under /ui/. The pages are public, like the spec: they hold no data,
// and every call they make is authenticated like any other client's.
func (s *Server) mountWeb(r chi.Router) {
	r.Get("/openapi/swagger.yaml", s.handle(s.openAPISpecYAML))
	r.Get("/docs", func(w http.ResponseWriter, _ *http.Request) {
		// Relative (RFC 9110 allows it), so it also works behind a reverse
		// proxy's path prefix; http.Redirect would make it absolute.
		w.Header().Set("Location", "docs/")
		w.WriteHeader(http.StatusMovedPermanently)
	})
	r.Get("/docs/*", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return docsSite().serve(w, r, chi.URLParam(r, "*"))
	}))
	if !s.cfg.WebUI {
		return
	}
	r.Get("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return uiSite().serve(w, r, "index.html")
	}))
	r.Get("/ui/*", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return uiSite().serve(w, r, chi.URLParam(r, "*"))
	}))
}

// openAPISpecYAML godoc
//
//	@Summary	This API's OpenAPI (Swagger 2.0) document as YAML
//	@Tags		health
//	@Produce	application/yaml
//	@Success	200	{string}	string	"the document of /openapi/swagger.json, in YAML"
//	@Router		/openapi/swagger.yaml [get]
func (s *Server) openAPISpecYAML(w http.ResponseWriter, _ *http.Request) error {
	b, err := specYAMLOnce()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, err = w.Write(b)
	return err
}

// specYAMLOnce is specJSON as YAML, converted once.
var specYAMLOnce = sync.OnceValues(func() ([]byte, error) { return specYAML(specJSON()) })

// specYAML converts the JSON document to block-style YAML. JSON is YAML
// 1.2, so it parses into a node tree that keeps the key order; clearing the
// flow and quoting styles lets the encoder pick plain or quoted scalars, and
// strings that would read as another type ("true", "200") stay quoted.
func specYAML(doc string) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		return nil, err
	}
	var clear func(n *yaml.Node)
	clear = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			clear(c)
		}
	}
	clear(&root)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// staticSite serves an embedded directory: exact file names only (no
// listings), a strong ETag per file so browsers revalidate cheaply instead
// of caching stale assets across upgrades, and gzip for large text files.
type staticSite struct {
	csp   string
	files map[string]*staticFile
}

type staticFile struct {
	body, gz []byte
	ctype    string
	etag     string
}

func newStaticSite(fsys fs.FS, csp string) *staticSite {
	site := &staticSite{csp: csp, files: map[string]*staticFile{}}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &staticFile{body: body, ctype: contentType(name),
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		if len(body) > 1024 && !strings.HasPrefix(f.ctype, "image/png") {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if buf.Len() < len(body)*9/10 {
				f.gz = buf.Bytes()
			}
		}
		site.files[name] = f
		return nil
	})
	if err != nil {
		panic(err) // embedded files are always readable
	}
	return site
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".txt", "":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// serve writes one file of the site; an empty name is the index. Unknown
// names get the API's JSON 404.
func (site *staticSite) serve(w http.ResponseWriter, r *http.Request, name string) error {
	if name == "" || strings.HasSuffix(name, "/") {
		name += "index.html"
	}
	f, ok := site.files[name]
	if !ok {
		return errNotFound
	}
	h := w.Header()
	h.Set("Content-Security-Policy", site.csp)
	h.Set("Content-Type", f.ctype)
	// no-cache = store but revalidate: a 304 on the ETag costs one round
	// trip and never serves an old bundle after an upgrade.
	h.Set("Cache-Control", "no-cache")
	body, etag := f.body, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	return nil
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(params, " ", "") != "q=0"
		}
	}
	return false
}
