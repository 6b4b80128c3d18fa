package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"

	"github.com/gin-gonic/gin"
)

// openAPISpec is the OpenAPI 3 description of this API, served at
// /openapi.yaml. The file lives here because go:embed reaches only into
// the package directory; the repository root's openapi.yaml is a symlink
// to it, so there is one copy to edit and nothing to regenerate.
//
//go:embed openapi.yaml
var openAPISpec []byte

// docsFiles holds the interactive documentation page: Swagger UI from npm
// (see docs/README.md) and our page and start script.
//
//go:embed docs/index.html docs/init.js docs/swagger-ui.css docs/swagger-ui-bundle.js docs/LICENSE docs/NOTICE docs/swagger-ui-bundle.js.LICENSE.txt
var docsFiles embed.FS

// docsCSP is the Content-Security-Policy of /docs and its files: scripts,
// styles, and fetches (the spec, and "Try it out" calls) from this origin
// only; no inline script and no inline style element. Swagger UI styles
// elements from script (React sets element.style, which CSP allows), so
// style-src needs no 'unsafe-inline': the browser test fails on any CSP
// violation. Its CSS draws icons as data: SVGs.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// staticFile is one embedded file, ready to serve.
type staticFile struct {
	name        string
	contentType string
	body        []byte
	etag        string
}

// newStaticFile computes the ETag of body.
func newStaticFile(name, contentType string, body []byte) staticFile {
	sum := sha256.Sum256(body)
	return staticFile{name: name, contentType: contentType, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// serve answers f, or 304 when the client's If-None-Match is current.
// Clients must revalidate (no-cache), so an upgraded binary is seen at once.
func (f staticFile) serve(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(c.Writer, c.Request, f.name, time.Time{}, bytes.NewReader(f.body))
}

// handleOpenAPI serves the OpenAPI description.
func handleOpenAPI() gin.HandlerFunc {
	f := newStaticFile("openapi.yaml", "application/yaml", openAPISpec)
	return func(c *gin.Context) { f.serve(c) }
}

// docsContentTypes maps the extensions of the docs files to media types;
// files without an extension (LICENSE, NOTICE) are plain text.
var docsContentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8",
}

// loadDocs reads the embedded docs files, keyed by base name.
func loadDocs() (map[string]staticFile, error) {
	files := make(map[string]staticFile)
	err := fs.WalkDir(docsFiles, "docs", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := docsFiles.ReadFile(p)
		if err != nil {
			return err
		}
		name := path.Base(p)
		ct, ok := docsContentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("docs file %s: no content type for its extension", p)
		}
		files[name] = newStaticFile(name, ct, body)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load embedded docs: %w", err)
	}
	return files, nil
}

// handleDocs serves the interactive documentation: the page at /docs and
// its files at /docs/:asset. Its routes relax the default CSP to docsCSP.
func handleDocs() gin.HandlerFunc {
	files, loadErr := loadDocs()
	return func(c *gin.Context) {
		if loadErr != nil {
			fail(c, loadErr)
			return
		}
		name := c.Param("asset")
		if name == "" || name == "index.html" {
			// The page is /docs only; /docs/index.html is not a route.
			if c.FullPath() != "/docs" {
				fail(c, errRouteNotFound)
				return
			}
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			fail(c, errRouteNotFound)
			return
		}
		f.serve(c)
	}
}
