// Package web holds the browser-facing files the gateway embeds: the demo
// chat page (ui/) and Swagger UI (swagger/). It only exposes them as file
// systems; package api serves them, with their Content-Security-Policy.
//
// swagger/ is a vendored copy of the npm package swagger-ui-dist at
// SwaggerUIVersion (only the bundle, its CSS and licence files), plus our own
// index.html and initializer; `make swagger-ui` refreshes it from the version
// pinned in e2e/package.json. Nothing is loaded from a CDN at run time.
package web

import (
	"embed"
	"io/fs"
)

// SwaggerUIVersion is the swagger-ui-dist release vendored in swagger/. It
// must equal the version e2e/package.json pins (TestSwaggerUIVersionPinned).
const SwaggerUIVersion = "5.35.0"

//go:embed ui swagger
var files embed.FS

// UI is the demo chat page: index.html and its assets.
func UI() fs.FS { return sub("ui") }

// Swagger is Swagger UI: index.html, the initializer and the vendored bundle.
func Swagger() fs.FS { return sub("swagger") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant embedded above
	}
	return f
}
