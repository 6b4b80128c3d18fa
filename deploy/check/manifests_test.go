package check

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stockquote/stockquote/deploy/check/manifests"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// TestPlainManifestsUpToDate fails when deploy/kubernetes/ differs from a
// fresh render of the chart: after a chart change, run `make manifests`.
func TestPlainManifestsUpToDate(t *testing.T) {
	want, err := manifests.Render(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(repoRoot, "deploy", "kubernetes")
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%v (run `make manifests` and commit deploy/kubernetes)", err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("deploy/kubernetes/%s differs from a fresh render of the chart: run `make manifests` and commit it", name)
		}
	}
	committed, err := filepath.Glob(filepath.Join(dir, manifests.Dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range committed {
		name := manifests.Dir + "/" + filepath.Base(f)
		if _, ok := want[name]; !ok {
			t.Errorf("deploy/kubernetes/%s is not rendered from the chart any more: run `make manifests` (it removes it)", name)
		}
	}
}

// TestPlainManifestsContent checks what a user without Helm gets: objects
// that decode strictly, no Secret (it comes from the user), no Helm test
// hook, and the names the docs use.
func TestPlainManifestsContent(t *testing.T) {
	files, err := manifests.Render(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for file, data := range files {
		if !strings.HasPrefix(file, manifests.Dir+"/") {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(string(data)) {
			if onlyComments(doc) {
				continue // the file's header
			}
			o, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s: %v", file, err)
				continue
			}
			names = append(names, o.kind+"/"+o.name)
			if o.kind == "Secret" {
				t.Errorf("%s: renders Secret %s; the plain manifests must take secrets from the user's existing Secret", file, o.name)
			}
			if o.hook == "test" {
				t.Errorf("%s: %s %s is a Helm test hook", file, o.kind, o.name)
			}
		}
	}
	sort.Strings(names)
	for _, want := range []string{"Deployment/stockquote-api", "Deployment/stockquote-worker", "Job/stockquote-migrate", "Service/stockquote-api"} {
		if _, found := sort.Find(len(names), func(i int) int { return strings.Compare(want, names[i]) }); !found {
			t.Errorf("plain manifests lack %s; have %v", want, names)
		}
	}
}

func onlyComments(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}
