package main

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
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
	open        func() (io.ReadSeeker, error) // the embedded bytes, never a copy
	etag        string
}

// newStaticFile computes the ETag of the file open reads.
func newStaticFile(name, contentType string, open func() (io.ReadSeeker, error)) (staticFile, error) {
	r, err := open()
	if err != nil {
		return staticFile{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return staticFile{}, err
	}
	sum := h.Sum(nil)
	return staticFile{name: name, contentType: contentType, open: open, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}, nil
}

// serve answers f, or 304 when the client's If-None-Match is current.
// Clients must revalidate (no-cache), so an upgraded binary is seen at once.
func (f staticFile) serve(c *gin.Context) {
	body, err := f.open()
	if err != nil {
		fail(c, fmt.Errorf("open embedded %s: %w", f.name, err))
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(c.Writer, c.Request, f.name, time.Time{}, body)
}

// handleOpenAPI serves the OpenAPI description.
func handleOpenAPI() gin.HandlerFunc {
	f, err := newStaticFile("openapi.yaml", "application/yaml", func() (io.ReadSeeker, error) {
		return bytes.NewReader(openAPISpec), nil
	})
	return func(c *gin.Context) {
		if err != nil { // cannot happen: reading a byte slice does not fail
			fail(c, err)
			return
		}
		f.serve(c)
	}
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
		name := path.Base(p)
		ct, ok := docsContentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("docs file %s: no content type for its extension", p)
		}
		// Served from the binary's read-only data as it is: ReadFile would
		// copy the files (1.9 MB, most of it Swagger UI) onto the heap for
		// the life of the process, and the GC's target (twice the live
		// heap at GOGC=100) would grow by as much again.
		f, err := newStaticFile(name, ct, func() (io.ReadSeeker, error) {
			f, err := docsFiles.Open(p)
			if err != nil {
				return nil, err
			}
			// embed.FS files are seekable, and closing one is a no-op.
			rs, ok := f.(io.ReadSeeker)
			if !ok {
				return nil, fmt.Errorf("embedded %s is not seekable", p)
			}
			return rs, nil
		})
		if err != nil {
			return fmt.Errorf("docs file %s: %w", p, err)
		}
		files[name] = f
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
