package check

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// argoApplication is the part of an ArgoCD Application this check reads;
// make test-live decodes the files strictly into argo-cd's own types.
type argoApplication struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Project string `json:"project"`
		Source  struct {
			RepoURL        string `json:"repoURL"`
			TargetRevision string `json:"targetRevision"`
			Path           string `json:"path"`
			Helm           struct {
				ReleaseName  string         `json:"releaseName"`
				ValuesObject map[string]any `json:"valuesObject"`
			} `json:"helm"`
		} `json:"source"`
		Destination struct {
			Server    string `json:"server"`
			Namespace string `json:"namespace"`
		} `json:"destination"`
		SyncPolicy struct {
			Automated struct {
				Prune    bool `json:"prune"`
				SelfHeal bool `json:"selfHeal"`
			} `json:"automated"`
			SyncOptions []string `json:"syncOptions"`
		} `json:"syncPolicy"`
	} `json:"spec"`
}

func readApplication(t *testing.T, path string) argoApplication {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var app argoApplication
	if err := yaml.Unmarshal(raw, &app); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return app
}

// TestArgoCDApplication checks the Application's promises and that its
// Helm values pass the chart's schema and render.
func TestArgoCDApplication(t *testing.T) {
	app := readApplication(t, filepath.Join(repoRoot, "deploy", "argocd", "application.yaml"))
	if app.Kind != "Application" || app.Metadata.Namespace != "argocd" || app.Spec.Project != "stockquote" {
		t.Errorf("want Application in namespace argocd, project stockquote; got %s %s/%s project %q", app.Kind, app.Metadata.Namespace, app.Metadata.Name, app.Spec.Project)
	}
	if p := app.Spec.Source.Path; p != "charts/stockquote" {
		t.Errorf("source.path = %q, want charts/stockquote", p)
	}
	if _, err := os.Stat(filepath.Join(repoRoot, app.Spec.Source.Path, "Chart.yaml")); err != nil {
		t.Error(err)
	}
	sp := app.Spec.SyncPolicy
	if !sp.Automated.Prune || !sp.Automated.SelfHeal {
		t.Error("syncPolicy.automated: want prune and selfHeal")
	}
	if !slices.Contains(sp.SyncOptions, "CreateNamespace=true") {
		t.Errorf("syncOptions %v lack CreateNamespace=true", sp.SyncOptions)
	}
	vals := app.Spec.Source.Helm.ValuesObject
	image, _ := vals["image"].(map[string]any)
	secrets, _ := vals["secrets"].(map[string]any)
	if image["tag"] == nil || image["tag"] == "" {
		t.Error("valuesObject.image.tag is not set (the GitOps mode bumps it)")
	}
	if secrets["existingSecret"] == nil || secrets["existingSecret"] == "" {
		t.Error("valuesObject.secrets.existingSecret is not set (no secret in Git)")
	}
	r := mustRender(t, vals)
	if _, ok := r.find("Secret", testRelease+"-stockquote"); ok {
		t.Error("the Application's values render a Secret; want the existing one only")
	}

	proj, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "argocd", "project.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec struct {
			SourceRepos  []string `json:"sourceRepos"`
			Destinations []struct {
				Namespace string `json:"namespace"`
			} `json:"destinations"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(proj, &p); err != nil {
		t.Fatal(err)
	}
	if p.Kind != "AppProject" || p.Metadata.Name != app.Spec.Project {
		t.Errorf("project.yaml: %s %s, want the AppProject %s", p.Kind, p.Metadata.Name, app.Spec.Project)
	}
	if !slices.Contains(p.Spec.SourceRepos, app.Spec.Source.RepoURL) {
		t.Errorf("the AppProject's sourceRepos %v do not allow %s", p.Spec.SourceRepos, app.Spec.Source.RepoURL)
	}
	if len(p.Spec.Destinations) == 0 || p.Spec.Destinations[0].Namespace != app.Spec.Destination.Namespace {
		t.Errorf("the AppProject's destinations %v do not allow namespace %s", p.Spec.Destinations, app.Spec.Destination.Namespace)
	}
}

// TestArgoCDSetImageTag runs the Jenkinsfile's GitOps bump on a copy.
func TestArgoCDSetImageTag(t *testing.T) {
	src := filepath.Join(repoRoot, "deploy", "argocd", "application.yaml")
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(t.TempDir(), "application.yaml")
	if err := os.WriteFile(cp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(repoRoot, "deploy", "argocd", "set-image-tag.sh")
	if out, err := exec.Command(script, "0123456789ab", cp).CombinedOutput(); err != nil {
		t.Fatalf("set-image-tag.sh: %v\n%s", err, out)
	}
	app := readApplication(t, cp)
	image, _ := app.Spec.Source.Helm.ValuesObject["image"].(map[string]any)
	if image["tag"] != "0123456789ab" {
		t.Errorf("after set-image-tag.sh image.tag = %v", image["tag"])
	}
	after, _ := os.ReadFile(cp)
	if changed := diffLines(string(raw), string(after)); changed != 1 {
		t.Errorf("set-image-tag.sh changed %d lines, want 1", changed)
	}
	if out, err := exec.Command(script, "bad tag!", cp).CombinedOutput(); err == nil {
		t.Errorf("set-image-tag.sh accepted 'bad tag!': %s", out)
	}
}

func diffLines(a, b string) int {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(al) != len(bl) {
		return -1
	}
	n := 0
	for i := range al {
		if al[i] != bl[i] {
			n++
		}
	}
	return n
}
