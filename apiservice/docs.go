package main

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"

	"github.com/gin-gonic/gin"
)

// openAPISpec is the OpenAPI 3 description of this API. The file lives
// here because go:embed reaches only into the package directory; the
// repository root's openapi.yaml is a symlink to it.
//
//go:embed openapi.yaml
var openAPISpec []byte

// staticFS holds the files the API serves as they are: its description
// and the interactive documentation (Swagger UI from npm, see
// docs/README.md, with our page and start script).
//
//go:embed openapi.yaml docs/index.html docs/init.js docs/swagger-ui.css docs/swagger-ui-bundle.js docs/LICENSE docs/NOTICE docs/swagger-ui-bundle.js.LICENSE.txt
var staticFS embed.FS

// docsCSP is the Content-Security-Policy of /docs and its files: scripts,
// styles and fetches from this origin only, no inline script or style
// element (Swagger UI styles elements from script, which CSP allows); its
// CSS draws icons as data: SVGs.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// staticTypes are the media types of the static files by extension (the
// system's MIME table differs between hosts); LICENSE and NOTICE have none.
var staticTypes = map[string]string{
	".yaml": "application/yaml",
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8",
}

// staticFiles serves staticFS, each file with an ETag of its content, so
// clients revalidate (no-cache) and see an upgraded binary at once.
type staticFiles struct{ etags map[string]string }

func newStaticFiles() *staticFiles {
	etags := map[string]string{}
	// Walking and reading an embed.FS does not fail.
	_ = fs.WalkDir(staticFS, ".", func(p string, d fs.DirEntry, _ error) error {
		if !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			sum := sha256.Sum256(b)
			etags[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		}
		return nil
	})
	return &staticFiles{etags: etags}
}

// serve answers the file name, or 304 when If-None-Match is current.
func (s *staticFiles) serve(c *gin.Context, name string) {
	etag, ok := s.etags[name]
	if !ok {
		fail(c, errRouteNotFound)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Type", staticTypes[path.Ext(name)])
	h.Set("ETag", etag)
	h.Set("Cache-Control", "no-cache")
	http.ServeFileFS(c.Writer, c.Request, staticFS, name)
}

// handleOpenAPI serves the OpenAPI description.
func handleOpenAPI(files *staticFiles) gin.HandlerFunc {
	return func(c *gin.Context) { files.serve(c, "openapi.yaml") }
}

// handleDocs serves the documentation page at /docs and its files at
// /docs/:asset; the page is /docs only, not /docs/index.html.
func handleDocs(files *staticFiles) gin.HandlerFunc {
	return func(c *gin.Context) {
		switch asset := c.Param("asset"); {
		case c.FullPath() == "/docs":
			files.serve(c, "docs/index.html")
		case asset == "" || asset == "index.html":
			fail(c, errRouteNotFound)
		default:
			files.serve(c, "docs/"+asset)
		}
	}
}
