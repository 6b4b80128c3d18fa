package check

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/patternmatcher"
	digest "github.com/opencontainers/go-digest"
)

// services are the programs the Dockerfile can build (SERVICE values).
var services = []string{"apiservice", "stockservice", "fakestooq"}

// offlineResolver answers BuildKit's base-image look-ups without a
// registry: every image is a linux/amd64 image with an empty config.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, _ sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg, err := json.Marshal(map[string]any{"architecture": "amd64", "os": "linux", "config": map[string]any{}})
	return ref, digest.FromBytes(cfg), cfg, err
}

// TestDockerfileLint runs BuildKit's own Dockerfile linter (`docker build
// --check`) for every SERVICE: any warning or build error fails.
func TestDockerfileLint(t *testing.T) {
	dt := []byte(readFile(t, "Dockerfile"))
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
			sm.Definition = &llb.Definition{} // as the dockerfile frontend's lint request fills it
			opt := dockerfile2llb.ConvertOpt{
				Config:       dockerui.Config{BuildArgs: map[string]string{"SERVICE": svc, "VERSION": "v1.2.3", "COMMIT": "abc1234"}},
				SourceMap:    sm,
				MetaResolver: offlineResolver{},
			}
			res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, opt)
			if err != nil {
				t.Fatalf("lint: %v", err)
			}
			if res.Error != nil {
				t.Errorf("lint: build error: %s", res.Error.Message)
			}
			for _, w := range res.Warnings {
				line := 0
				if w.Location != nil && len(w.Location.Ranges) > 0 {
					line = int(w.Location.Ranges[0].Start.Line)
				}
				t.Errorf("Dockerfile:%d: %s: %s", line, w.RuleName, w.Detail)
			}
		})
	}
}

func parseDockerfile(t *testing.T) []instructions.Stage {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(readFile(t, "Dockerfile")))
	if err != nil {
		t.Fatal(err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatal(err)
	}
	return stages
}

// makeLDFlags returns the Makefile's LDFLAGS with $(VAR) written ${VAR}.
func makeLDFlags(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*(.+)$`).FindStringSubmatch(readFile(t, "Makefile"))
	if m == nil {
		t.Fatal("Makefile: no LDFLAGS")
	}
	return regexp.MustCompile(`\$\(([A-Z_]+)\)`).ReplaceAllString(strings.TrimSpace(m[1]), "$${$1}")
}

// TestDockerfileLintCatches proves the in-process linter reports what
// `docker build --check` would.
func TestDockerfileLintCatches(t *testing.T) {
	dt := []byte("from golang:1.26 as Build\nENV API_KEY=x\nENTRYPOINT /service\n")
	sm := llb.NewSourceMap(nil, "Dockerfile", "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	res, err := dockerfile2llb.DockerfileLint(context.Background(), dt, dockerfile2llb.ConvertOpt{SourceMap: sm, MetaResolver: offlineResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	var rules []string
	for _, w := range res.Warnings {
		rules = append(rules, w.RuleName)
	}
	for _, want := range []string{"ConsistentInstructionCasing", "StageNameCasing", "SecretsUsedInArgOrEnv", "JSONArgsRecommended"} {
		if !slices.Contains(rules, want) {
			t.Errorf("linter did not report %s; got %v", want, rules)
		}
	}
}

// TestDockerfileBuildsWhatCITests checks the image build compiles the same
// binaries as the Makefile's `build` target that CI tests: static,
// -trimpath, the same -ldflags, from ./${SERVICE}, with the module's Go.
func TestDockerfileBuildsWhatCITests(t *testing.T) {
	mk := readFile(t, "Makefile")
	buildRule := regexp.MustCompile(`(?m)^build:.*\n\t(.+)$`).FindStringSubmatch(mk)
	if buildRule == nil || !strings.Contains(buildRule[1], "CGO_ENABLED=0") || !strings.Contains(buildRule[1], "-trimpath") || !strings.Contains(buildRule[1], "$(LDFLAGS)") {
		t.Fatalf("Makefile build target is not `CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)'`: %v", buildRule)
	}

	stages := parseDockerfile(t)
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want build + runtime", len(stages))
	}
	build, runtime := stages[0], stages[1]

	var goBuild string
	var cacheTargets []string
	for _, c := range build.Commands {
		run, ok := c.(*instructions.RunCommand)
		if !ok {
			continue
		}
		if line := strings.Join(run.CmdLine, " "); strings.Contains(line, "go build") {
			goBuild = line
		}
	}
	for _, m := range regexp.MustCompile(`--mount=type=cache,target=(\S+)`).FindAllStringSubmatch(readFile(t, "Dockerfile"), -1) {
		cacheTargets = append(cacheTargets, m[1])
	}
	for _, want := range []string{"/go/pkg/mod", "/root/.cache/go-build"} {
		if !slices.Contains(cacheTargets, want) {
			t.Errorf("build stage has no cache mount for %s (mounts: %v)", want, cacheTargets)
		}
	}
	wantLD := `-ldflags "` + makeLDFlags(t) + `"`
	for _, want := range []string{"CGO_ENABLED=0", "go build -trimpath", wantLD, "./${SERVICE}"} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("Dockerfile go build command lacks %q:\n%s", want, goBuild)
		}
	}
	for _, svc := range services {
		if !strings.Contains(goBuild, svc) {
			t.Errorf("Dockerfile does not accept SERVICE=%s", svc)
		}
		if _, err := os.Stat(filepath.Join(repoRoot, svc, "main.go")); err != nil {
			t.Errorf("SERVICE=%s: %v", svc, err)
		}
	}

	// The builder's Go is the module's Go.
	goMod := readFile(t, "go.mod")
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(goMod)
	df := readFile(t, "Dockerfile")
	argVersion := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindStringSubmatch(df)
	if goVersion == nil || argVersion == nil || goVersion[1] != argVersion[1] {
		t.Errorf("Dockerfile GO_VERSION %v differs from go.mod's go %v", argVersion, goVersion)
	}
	// Base images come from global ARGs (stand-ins can be passed in) whose
	// defaults are the official images.
	baseArg := func(stage instructions.Stage) string {
		m := regexp.MustCompile(`^\$\{?([A-Z_]+)\}?$`).FindStringSubmatch(stage.BaseName)
		if m == nil {
			t.Errorf("stage %s FROM %s, want FROM ${ARG} (a global ARG with the official image as default)", stage.Name, stage.BaseName)
			return stage.BaseName
		}
		def := regexp.MustCompile(`(?m)^ARG ` + m[1] + `=(\S+)$`).FindStringSubmatch(df)
		if def == nil {
			t.Errorf("stage %s FROM ${%s}: no global `ARG %s=default`", stage.Name, m[1], m[1])
			return ""
		}
		return def[1]
	}
	if base := baseArg(build); !strings.HasPrefix(base, "golang:${GO_VERSION}") {
		t.Errorf("build stage FROM %s, want the pinned golang:${GO_VERSION}", base)
	}

	// The runtime image: distroless static nonroot, numeric non-root user,
	// JSON exec-form entrypoint.
	if base := baseArg(runtime); !strings.HasPrefix(base, "gcr.io/distroless/static") || !strings.Contains(base, "nonroot") {
		t.Errorf("runtime stage FROM %s, want distroless static nonroot", base)
	}
	var user string
	var entry *instructions.EntrypointCommand
	for _, c := range runtime.Commands {
		switch v := c.(type) {
		case *instructions.UserCommand:
			user = v.User
		case *instructions.EntrypointCommand:
			entry = v
		case *instructions.RunCommand:
			t.Errorf("runtime stage runs %q: it has no shell", v.String())
		case *instructions.EnvCommand:
			for _, kv := range v.Env {
				if regexp.MustCompile(`(?i)secret|password|token|key`).MatchString(kv.Key) {
					t.Errorf("runtime stage bakes in %s", kv.Key)
				}
			}
		}
	}
	if uid, _, _ := strings.Cut(user, ":"); uid == "" || uid == "0" || uid == "root" || !regexp.MustCompile(`^[0-9]+$`).MatchString(uid) {
		t.Errorf("runtime USER %q, want a numeric non-root uid (Kubernetes runAsNonRoot can only verify numbers)", user)
	}
	if entry == nil || entry.PrependShell || len(entry.CmdLine) != 1 {
		t.Errorf("ENTRYPOINT %+v, want JSON exec form [\"/service\"]", entry)
	}
}

// TestDockerIgnore checks the build context holds the module and nothing
// else: no .env, no VCS data, no deploy tooling.
func TestDockerIgnore(t *testing.T) {
	var patterns []string
	for _, l := range strings.Split(readFile(t, ".dockerignore"), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{ // path -> excluded
		".env": true, ".git/config": true, "bin/apiservice": true, "deploy/check/go.mod": true,
		"charts/stockquote/values.yaml": true, "node_modules/x/package.json": true,
		"go.mod": false, "go.sum": false, "apiservice/main.go": false, "stockservice/main.go": false,
		"fakestooq/main.go": false, "shared/stockrpc/stockrpc.go": false,
		"stockservice/stooq/stooqtest/server.go": false, "apiservice/postgres/db.go": false,
	}
	for path, want := range tests {
		got, err := pm.MatchesOrParentMatches(path)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf(".dockerignore excludes %s = %v, want %v", path, got, want)
		}
	}
}
