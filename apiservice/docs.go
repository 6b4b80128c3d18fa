package main

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gin-gonic/gin"
)

// staticFS holds the OpenAPI description (the root's openapi.yaml links
// here: go:embed reaches only into this directory) and the interactive
// docs: Swagger UI from npm (docs/README.md), our page and start script.
//
//go:embed openapi.yaml docs/index.html docs/init.js docs/swagger-ui.css docs/swagger-ui-bundle.js docs/LICENSE docs/NOTICE docs/swagger-ui-bundle.js.LICENSE.txt
var staticFS embed.FS

// docsCSP relaxes defaultCSP for the docs files: everything from this
// origin only, no inline script or style; Swagger UI's CSS draws icons as
// data: SVGs.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// staticTypes are the static files' media types by extension, as the
// system's MIME table differs between hosts.
var staticTypes = map[string]string{
	".yaml": "application/yaml",
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".txt":  "text/plain; charset=utf-8",
	"":      "text/plain; charset=utf-8", // LICENSE, NOTICE
}

// staticFiles maps each file of staticFS to an ETag of its content, so
// clients revalidate (no-cache) and see an upgraded binary at once.
type staticFiles map[string]string

func newStaticFiles() staticFiles {
	etags := staticFiles{}
	// Walking and reading an embed.FS does not fail.
	_ = fs.WalkDir(staticFS, ".", func(p string, d fs.DirEntry, _ error) error {
		if !d.IsDir() {
			b, _ := staticFS.ReadFile(p)
			sum := sha256.Sum256(b)
			etags[p] = `"` + hex.EncodeToString(sum[:12]) + `"`
		}
		return nil
	})
	return etags
}

// handle serves the file name or, if name is empty, docs/ and the :asset
// parameter; the docs page itself is /docs only, not /docs/index.html.
func (s staticFiles) handle(name string) gin.HandlerFunc {
	return func(c *gin.Context) {
		file := name
		if file == "" && c.Param("asset") != "index.html" {
			file = "docs/" + c.Param("asset")
		}
		etag, ok := s[file]
		if !ok {
			fail(c, errRouteNotFound)
			return
		}
		h := c.Writer.Header()
		if strings.HasPrefix(file, "docs/") {
			h.Set("Content-Security-Policy", docsCSP)
		}
		h.Set("Content-Type", staticTypes[path.Ext(file)])
		h.Set("ETag", etag)
		h.Set("Cache-Control", "no-cache")
		http.ServeFileFS(c.Writer, c.Request, staticFS, file)
	}
}
