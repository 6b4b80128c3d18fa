// Command argocheck strictly decodes ArgoCD manifests into argo-cd's own
// v1alpha1 types: a misspelt or misplaced field (which ArgoCD would
// silently ignore when it reads the object back) is an error here.
//
//	argocheck deploy/argocd/*.yaml
//
// It also checks what the project promises about its Application: automated
// sync with prune and self-heal, CreateNamespace=true, and Helm values that
// set the image tag and the existing secret.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/argoproj/argo-cd/v2/pkg/apis/application/v1alpha1"
	yamlv3 "gopkg.in/yaml.v3"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: argocheck FILE.yaml...")
		os.Exit(2)
	}
	var apps, projects int
	failed := false
	for _, name := range os.Args[1:] {
		a, p, err := checkFile(name)
		apps += a
		projects += p
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
	if apps == 0 || projects == 0 {
		fmt.Fprintf(os.Stderr, "argocheck: want at least one Application and one AppProject, got %d and %d\n", apps, projects)
		os.Exit(1)
	}
	fmt.Printf("argocheck: %d Application(s), %d AppProject(s) decode strictly\n", apps, projects)
}

func checkFile(name string) (apps, projects int, err error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return 0, 0, err
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var node yamlv3.Node
		if err := dec.Decode(&node); errors.Is(err, io.EOF) {
			return apps, projects, nil
		} else if err != nil {
			return apps, projects, fmt.Errorf("document %d: %w", i, err)
		}
		doc, err := yamlv3.Marshal(&node)
		if err != nil {
			return apps, projects, err
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return apps, projects, fmt.Errorf("document %d: %w", i, err)
		}
		switch meta.Kind {
		case "Application":
			var app v1alpha1.Application
			if err := decodeStrict(doc, &app); err != nil {
				return apps, projects, fmt.Errorf("Application (document %d): %w", i, err)
			}
			if err := checkApplication(&app); err != nil {
				return apps, projects, fmt.Errorf("Application %s: %w", app.Name, err)
			}
			apps++
		case "AppProject":
			var p v1alpha1.AppProject
			if err := decodeStrict(doc, &p); err != nil {
				return apps, projects, fmt.Errorf("AppProject (document %d): %w", i, err)
			}
			if len(p.Spec.SourceRepos) == 0 || len(p.Spec.Destinations) == 0 {
				return apps, projects, fmt.Errorf("AppProject %s: needs sourceRepos and destinations, or ArgoCD refuses every Application in it", p.Name)
			}
			projects++
		default:
			return apps, projects, fmt.Errorf("document %d: kind %q is neither Application nor AppProject", i, meta.Kind)
		}
	}
}

// decodeStrict fails on unknown and duplicate fields and, unlike
// encoding/json, on fields whose case differs (selfheal for selfHeal),
// as the API server's strict field validation does.
func decodeStrict(doc []byte, v any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return errors.Join(strict...)
	}
	return nil
}

func checkApplication(app *v1alpha1.Application) error {
	sp := app.Spec.SyncPolicy
	if sp == nil || sp.Automated == nil || !sp.Automated.Prune || !sp.Automated.SelfHeal {
		return errors.New("syncPolicy.automated must set prune and selfHeal")
	}
	if !sp.SyncOptions.HasOption("CreateNamespace=true") {
		return errors.New("syncPolicy.syncOptions must include CreateNamespace=true")
	}
	src := app.Spec.Source
	if src == nil || src.Helm == nil {
		return errors.New("spec.source.helm is missing")
	}
	values := src.Helm.ValuesString()
	if values == "" {
		return errors.New("spec.source.helm.valuesObject (or values) is empty")
	}
	var v struct {
		Image struct {
			Tag string `json:"tag"`
		} `json:"image"`
		Secrets struct {
			ExistingSecret string `json:"existingSecret"`
		} `json:"secrets"`
	}
	if err := yaml.Unmarshal([]byte(values), &v); err != nil {
		return fmt.Errorf("helm values: %w", err)
	}
	if strings.TrimSpace(v.Image.Tag) == "" {
		return errors.New("helm values must set image.tag (the Jenkinsfile's GitOps mode bumps it)")
	}
	if strings.TrimSpace(v.Secrets.ExistingSecret) == "" {
		return errors.New("helm values must set secrets.existingSecret (no secret in Git)")
	}
	return nil
}
