package check

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// repoRoot is the repository root, two levels above this module.
const repoRoot = "../.."

// program describes the settings one of the module's programs reads from
// its environment.
type program struct {
	dir string // package directory under the repo root
	// required settings: the program refuses to start without them.
	required []string
	// removed settings: the loader still names them, but only to refuse
	// to start when one is set.
	removed []string
}

var (
	apiProgram    = program{dir: "apiservice", required: []string{"DATABASE_URL", "AMQP_URL", "JWT_SECRET"}, removed: []string{"AUTH_CACHE_TTL"}}
	workerProgram = program{dir: "stockservice", required: []string{"AMQP_URL"}}
)

// settingName finds the setting names in a config loader: every string
// literal that is an upper-case environment variable name, whichever helper
// it is passed to (getenv("NAME"), intEnv(getenv, "NAME", ...), ...).
var settingName = regexp.MustCompile(`"([A-Z][A-Z0-9_]{2,})"`)

// configLoader marks a file that loads settings outside config*.go: it
// declares a function taking the environment lookup, or the shared env
// reader (*env.Reader).
var configLoader = regexp.MustCompile(`\bgetenv func\(string\) string\b|\*env\.Reader\b`)

// settings returns every environment variable the program reads, scanned
// from its package main's config*.go files and the other files that
// declare a loader taking getenv.
func (p program) settings(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, p.dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(filepath.Base(f), "config") && !configLoader.Match(b) {
			continue
		}
		for _, m := range settingName.FindAllStringSubmatch(string(b), -1) {
			found[m[1]] = true
		}
	}
	if len(found) == 0 {
		t.Fatalf("found no setting names in %s/config*.go: has its config loading moved? update settingName", p.dir)
	}
	for _, r := range p.required {
		if !found[r] {
			t.Fatalf("%s does not read required setting %s any more: update the program table in repo_test.go", p.dir, r)
		}
	}
	return found
}

// goRuntimeSettings are read by the Go runtime of every program, not by
// its config loader; deployments may set them too.
var goRuntimeSettings = []string{"GOMEMLIMIT"}

// checkEnv reports settings a deployment gives a program that the program
// (or its Go runtime) does not read (a typo, or a stale name) and required
// ones it lacks.
func checkEnv(t *testing.T, where string, p program, env map[string]bool) {
	t.Helper()
	known := p.settings(t)
	for _, name := range goRuntimeSettings {
		known[name] = true
	}
	var unknown, missing []string
	for name := range env {
		if !known[name] || slices.Contains(p.removed, name) {
			unknown = append(unknown, name)
		}
	}
	for _, r := range p.required {
		if !env[r] {
			missing = append(missing, r)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("%s: %s gets settings it never reads: %v (it reads %v)", where, p.dir, unknown, sortedKeys(known))
	}
	if len(missing) > 0 {
		t.Errorf("%s: %s lacks required settings %v", where, p.dir, missing)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func readFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// queueConst finds the wire contract's queue name.
var queueConst = regexp.MustCompile(`const QueueName = "([^"]+)"`)

// stockQueue returns stockrpc.QueueName, read from the source (the check
// module does not import the services' module).
func stockQueue(t *testing.T) string {
	t.Helper()
	m := queueConst.FindStringSubmatch(readFile(t, "shared/stockrpc/stockrpc.go"))
	if m == nil {
		t.Fatal("shared/stockrpc/stockrpc.go: no `const QueueName = \"...\"`")
	}
	return m[1]
}
