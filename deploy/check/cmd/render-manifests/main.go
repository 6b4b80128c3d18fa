// Command render-manifests writes deploy/kubernetes/ from the Helm chart
// (`make manifests`): run it after every chart change and commit the result.
//
//	go run ./cmd/render-manifests -root ../..
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stockquote/stockquote/deploy/check/manifests"
)

func main() {
	root := flag.String("root", "../..", "repository root")
	flag.Parse()
	files, err := manifests.Render(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render-manifests:", err)
		os.Exit(1)
	}
	out := filepath.Join(*root, "deploy", "kubernetes")
	// Files of templates the chart no longer has must go too.
	old, _ := filepath.Glob(filepath.Join(out, manifests.Dir, "*.yaml"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			fmt.Fprintln(os.Stderr, "render-manifests:", err)
			os.Exit(1)
		}
	}
	for name, data := range files {
		p := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "render-manifests:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "render-manifests:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("render-manifests: wrote %d files under %s\n", len(files), out)
}
