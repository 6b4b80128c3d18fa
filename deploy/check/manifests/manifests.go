// Package manifests renders the Helm chart into the plain Kubernetes
// manifests committed under deploy/kubernetes/, for users without Helm.
// `make manifests` writes them; a test in deploy/check fails when the
// committed files differ from a fresh render.
package manifests

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

const (
	// Release is the Helm release name the manifests are rendered as: with
	// the chart's naming rule every object is called stockquote-*.
	Release = "stockquote"
	// Namespace is the kustomization's namespace; the rendered objects
	// carry none, so `kubectl apply -n X -f` works too.
	Namespace = "stockquote"
	// kubeVersion is the oldest cluster the chart supports (Chart.yaml's kubeVersion).
	kubeVersion = "v1.30.0"
	// Dir is where the manifests live inside deploy/kubernetes.
	Dir = "manifests"
)

const header = "# Rendered from charts/stockquote with deploy/kubernetes/values.yaml by\n# `make manifests`: do not edit, change the chart or the values and re-render.\n"

// Render returns the files of deploy/kubernetes, keyed by their path
// relative to it: one manifest file per chart template, plus
// kustomization.yaml listing them.
func Render(repoRoot string) (map[string][]byte, error) {
	valuesFile := filepath.Join(repoRoot, "deploy", "kubernetes", "values.yaml")
	raw, err := os.ReadFile(valuesFile)
	if err != nil {
		return nil, err
	}
	vals := map[string]any{}
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		return nil, fmt.Errorf("%s: %w", valuesFile, err)
	}
	ch, err := loader.Load(filepath.Join(repoRoot, "charts", "stockquote"))
	if err != nil {
		return nil, err
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = Release
	inst.Namespace = Namespace
	kv, err := chartutil.ParseKubeVersion(kubeVersion)
	if err != nil {
		return nil, err
	}
	inst.KubeVersion = kv
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart: %w", err)
	}

	byFile := map[string][]string{}
	add := func(doc, src string) error {
		doc = strings.TrimSpace(doc)
		if doc == "" {
			return nil
		}
		var body []string
		for _, l := range strings.Split(doc, "\n") {
			if s, ok := strings.CutPrefix(l, "# Source: "); ok {
				src = s
				continue
			}
			body = append(body, l)
		}
		if src == "" {
			return fmt.Errorf("rendered object without a # Source line:\n%s", doc)
		}
		byFile[path.Base(src)] = append(byFile[path.Base(src)], strings.Join(body, "\n"))
		return nil
	}
	for _, d := range releaseutil.SplitManifests(rel.Manifest) {
		if err := add(d, ""); err != nil {
			return nil, err
		}
	}
	for _, h := range rel.Hooks {
		// Test hooks check a Helm release (`helm test`); there is none here.
		if isTestHook(h.Events) {
			continue
		}
		if err := add(h.Manifest, h.Path); err != nil {
			return nil, err
		}
	}

	files := map[string][]byte{}
	names := make([]string, 0, len(byFile))
	for name, docs := range byFile {
		sort.Strings(docs) // SplitManifests' map order is not stable.
		var b bytes.Buffer
		b.WriteString(header)
		for _, d := range docs {
			b.WriteString("---\n")
			b.WriteString(d)
			b.WriteString("\n")
		}
		files[path.Join(Dir, name)] = b.Bytes()
		names = append(names, name)
	}
	sort.Strings(names)
	var k bytes.Buffer
	k.WriteString(header)
	k.WriteString("# `kubectl apply -k deploy/kubernetes` creates the namespace below and applies\n# everything into it; `kubectl apply -n NS -f deploy/kubernetes/manifests` works too.\n")
	k.WriteString("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: " + Namespace + "\nresources:\n  - namespace.yaml\n")
	for _, n := range names {
		k.WriteString("  - " + Dir + "/" + n + "\n")
	}
	files["kustomization.yaml"] = k.Bytes()
	files["namespace.yaml"] = []byte(header + "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + Namespace + "\n")
	return files, nil
}

func isTestHook(events []release.HookEvent) bool {
	for _, e := range events {
		if e == release.HookTest {
			return true
		}
	}
	return false
}
