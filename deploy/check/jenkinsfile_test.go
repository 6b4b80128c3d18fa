package check

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// block is one `name(args) { ... }` of a Jenkinsfile.
type block struct {
	name, args string
	children   []*block
	text       string // the block's body with comments removed
}

func (b *block) child(name string) []*block {
	var out []*block
	for _, c := range b.children {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

// parseGroovyBlocks builds the tree of closures of a Groovy file, skipping
// comments and string literals (single, double, triple quoted).
func parseGroovyBlocks(t *testing.T, src string) *block {
	t.Helper()
	root := &block{name: "<file>"}
	stack := []*block{root}
	starts := []int{0}
	var clean strings.Builder // src without comments, strings kept
	ident := regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(\((?s:.*)\))?\s*$`)
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				t.Fatal("Jenkinsfile: unterminated comment")
			}
			i += end + 4
		case src[i] == '\'' || src[i] == '"':
			q := string(src[i])
			if strings.HasPrefix(src[i:], q+q+q) {
				q = q + q + q
			}
			j := i + len(q)
			for {
				if j >= len(src) {
					t.Fatalf("Jenkinsfile: unterminated string at byte %d", i)
				}
				if src[j] == '\\' {
					j += 2
					continue
				}
				if strings.HasPrefix(src[j:], q) {
					j += len(q)
					break
				}
				j++
			}
			clean.WriteString(src[i:j])
			i = j
		case src[i] == '{':
			before := clean.String()
			// The block's head: text since the previous brace or line start
			// that names it, e.g. "stage('Lint') ", "withCredentials([...]) ".
			head := before[max(strings.LastIndexAny(before, "{}\n"), 0):]
			if k := strings.LastIndex(before, "\n"); k >= 0 {
				prev := before[:k]
				// A head whose argument list spans lines (withCredentials([...,\n ...])).
				if open := strings.Count(head, ")") - strings.Count(head, "("); open > 0 {
					lines := strings.Split(prev, "\n")
					for n := len(lines) - 1; n >= 0 && open > 0; n-- {
						head = lines[n] + "\n" + head
						open = strings.Count(head, ")") - strings.Count(head, "(")
					}
				}
			}
			b := &block{}
			if m := ident.FindStringSubmatch(strings.TrimSpace(strings.TrimLeft(head, "{}"))); m != nil {
				b.name, b.args = m[1], m[2]
			}
			top := stack[len(stack)-1]
			top.children = append(top.children, b)
			stack = append(stack, b)
			clean.WriteByte('{')
			starts = append(starts, clean.Len())
			i++
		case src[i] == '}':
			if len(stack) == 1 {
				t.Fatalf("Jenkinsfile: unbalanced } at byte %d", i)
			}
			b := stack[len(stack)-1]
			b.text = clean.String()[starts[len(starts)-1]:]
			stack, starts = stack[:len(stack)-1], starts[:len(starts)-1]
			clean.WriteByte('}')
			i++
		default:
			clean.WriteByte(src[i])
			i++
		}
	}
	if len(stack) != 1 {
		t.Fatalf("Jenkinsfile: %d unclosed blocks", len(stack)-1)
	}
	root.text = clean.String()
	return root
}

var (
	pipelineSections = []string{"agent", "environment", "options", "parameters", "triggers", "tools", "libraries", "stages", "post"}
	stageSections    = []string{"agent", "environment", "options", "when", "tools", "input", "steps", "stages", "parallel", "matrix", "post"}
	postConditions   = []string{"always", "changed", "fixed", "regression", "aborted", "failure", "success", "unstable", "unsuccessful", "cleanup"}
)

func checkSections(t *testing.T, where string, b *block, allowed []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range b.children {
		if !slices.Contains(allowed, c.name) {
			t.Errorf("%s: section %q is not valid here (allowed: %v)", where, c.name, allowed)
		}
		if seen[c.name] && c.name != "stage" {
			t.Errorf("%s: section %q appears twice", where, c.name)
		}
		seen[c.name] = true
	}
	for _, p := range b.child("post") {
		for _, c := range p.children {
			if !slices.Contains(postConditions, c.name) {
				t.Errorf("%s: post condition %q is not valid", where, c.name)
			}
		}
	}
}

func stagesOf(t *testing.T, b *block) map[string]*block {
	t.Helper()
	out := map[string]*block{}
	for _, s := range b.child("stages") {
		for _, st := range s.children {
			if st.name != "stage" {
				t.Errorf("stages: %q where only stage(...) may be", st.name)
				continue
			}
			name := strings.Trim(st.args, "()'\" ")
			checkSections(t, "stage "+name, st, stageSections)
			n := len(st.child("steps")) + len(st.child("stages")) + len(st.child("parallel")) + len(st.child("matrix"))
			if n != 1 {
				t.Errorf("stage %s: want exactly one of steps, stages, parallel, matrix; got %d", name, n)
			}
			out[name] = st
		}
	}
	return out
}

// TestJenkinsfileStructure checks the declarative structure and the
// pipeline's promises: timeouts, JUnit, push and deploy only from main,
// atomic deploy, credentials only from the store.
func TestJenkinsfileStructure(t *testing.T) {
	src := readFile(t, "Jenkinsfile")
	root := parseGroovyBlocks(t, src)
	if len(root.children) != 1 || root.children[0].name != "pipeline" {
		t.Fatalf("Jenkinsfile: want one top-level pipeline { } block, got %d blocks", len(root.children))
	}
	p := root.children[0]
	checkSections(t, "pipeline", p, pipelineSections)
	if !regexp.MustCompile(`(?m)^\s*agent\s+(any|none|\{|[a-z]+\s*\{)`).MatchString(p.text) {
		t.Error("pipeline: no agent")
	}
	for _, want := range []string{"options", "stages", "post"} {
		if len(p.child(want)) != 1 {
			t.Errorf("pipeline: no %s section", want)
		}
	}
	if opts := p.child("options"); len(opts) == 1 && !strings.Contains(opts[0].text, "timeout(") {
		t.Error("pipeline options: no timeout")
	}
	stages := stagesOf(t, p)
	for _, want := range []string{"Lint", "Test", "Images", "Push", "Chart", "Deploy", "GitOps"} {
		if stages[want] == nil {
			t.Errorf("no stage %q (stages: %v)", want, sortedKeys(stages))
		}
	}
	has := func(stage, text string) bool {
		s := stages[stage]
		return s != nil && strings.Contains(collapse(blockText(s)), text)
	}
	checks := []struct {
		stage, text, why string
	}{
		{"Lint", "make lint", "gofmt and vet"},
		{"Lint", "staticcheck", "a static analyser"},
		{"Test", "-race", "the race detector"},
		{"Test", "-tags integration", "the integration tests"},
		{"Test", "ci-services.sh start", "PostgreSQL and RabbitMQ running"},
		{"Test", "junit ", "a published JUnit report"},
		{"Images", "make images", "both images"},
		{"Images", "rev-parse", "tagged with the commit"},
		{"Push", "branch 'main'", "push only from main"},
		{"Push", "withCredentials", "registry credentials from the store"},
		{"Push", "--password-stdin", "no password on a command line"},
		{"Chart", "helm lint --strict", "chart lint"},
		{"Chart", "helm package", "chart package"},
		{"Deploy", "branch 'main'", "deploy only from main"},
		{"Deploy", "params.DEPLOY", "deploy is opt-in"},
		{"Deploy", "helm upgrade --install", "helm deploy"},
		{"Deploy", "--atomic", "atomic deploy"},
		{"Deploy", "credentialsId: 'kubeconfig", "kubeconfig from the store"},
		{"Deploy", "credentialsId: params.STOOQ_API_KEY_CREDENTIAL", "the stooq API key from the store, when a credential is named"},
		{"Deploy", "--set-file secrets.stooqApiKey=", "the stooq key from a file, not the command line"},
		{"Deploy", "helm test", "the stooq check after the deploy"},
		{"Deploy", "params.DEPLOY_MODE == 'helm'", "helm deploy only in helm mode"},
		{"GitOps", "branch 'main'", "GitOps commit only from main"},
		{"GitOps", "params.DEPLOY_MODE == 'argocd'", "GitOps only in argocd mode"},
		{"GitOps", "deploy/argocd/set-image-tag.sh", "the image tag bumped for ArgoCD"},
		{"GitOps", "credentialsId: 'gitops-credentials'", "git credentials from the store"},
		{"GitOps", "push origin", "the bump pushed"},
	}
	for _, c := range checks {
		if !has(c.stage, c.text) {
			t.Errorf("stage %s lacks %q (%s)", c.stage, c.text, c.why)
		}
	}
	for name, s := range stages {
		if !strings.Contains(blockText(s), "timeout(") {
			t.Errorf("stage %s: no timeout option", name)
		}
	}
	post := p.child("post")
	if len(post) == 1 && (len(post[0].child("always")) != 1 || !strings.Contains(post[0].text, "cleanWs")) {
		t.Error("pipeline post: want always { ... cleanWs() }")
	}
	// cleanWs() wipes the workspace after every build: Go's caches kept
	// there never survive, and every build compiles everything again.
	if m := regexp.MustCompile(`(GOCACHE|GOMODCACHE|STATICCHECK_CACHE)\s*=\s*["'][^"']*WORKSPACE`).FindString(src); m != "" {
		t.Errorf("Jenkinsfile: %s...: a cache in the workspace, which cleanWs() deletes after each build", m)
	}
}

// blockText is a block's body including its children.
func blockText(b *block) string { return b.text }

func collapse(s string) string { return regexp.MustCompile(`\s+`).ReplaceAllString(s, " ") }

// TestJenkinsfileNoSecrets: credentials come from the store by ID; secret
// variables are expanded by the shell (single quotes), never by Groovy.
func TestJenkinsfileNoSecrets(t *testing.T) {
	src := readFile(t, "Jenkinsfile")
	for i, line := range strings.Split(src, "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "//") {
			continue
		}
		if regexp.MustCompile(`(?i)(password|token|secret)\s*[:=]\s*['"][^'"$]`).MatchString(l) {
			t.Errorf("Jenkinsfile:%d: literal credential: %s", i+1, l)
		}
		if regexp.MustCompile(`docker login\b.*\s-p\s`).MatchString(l) {
			t.Errorf("Jenkinsfile:%d: password on the docker login command line", i+1)
		}
		if regexp.MustCompile(`"[^"]*\$\{?(REGISTRY_PASSWORD|KUBECONFIG|HELM_VALUES|STOOQ_API_KEY)`).MatchString(l) && strings.Contains(l, `sh "`) {
			t.Errorf("Jenkinsfile:%d: Groovy interpolates a secret: %s", i+1, l)
		}
	}
}

// TestJenkinsfileCallsExist checks every make target and script the
// pipeline runs exists.
func TestJenkinsfileCallsExist(t *testing.T) {
	src := readFile(t, "Jenkinsfile")
	mk := readFile(t, "Makefile")
	targets := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([A-Za-z0-9_.-]+):`).FindAllStringSubmatch(mk, -1) {
		targets[m[1]] = true
	}
	calls := regexp.MustCompile(`\bmake[ \t]+((?:[a-z][a-z0-9_-]*[ \t]*)+)`).FindAllStringSubmatch(src, -1)
	if len(calls) == 0 {
		t.Fatal("Jenkinsfile calls no make target")
	}
	for _, m := range calls {
		for _, target := range strings.Fields(m[1]) {
			if !targets[target] {
				t.Errorf("Jenkinsfile runs `make %s`, which the Makefile does not define", target)
			}
		}
	}
	for _, m := range regexp.MustCompile(`(?:^|[\s'"])((?:deploy|scripts|\.ci)/[A-Za-z0-9_./-]+)`).FindAllStringSubmatch(src, -1) {
		path := filepath.Join(repoRoot, m[1])
		fi, err := os.Stat(path)
		if err != nil {
			t.Errorf("Jenkinsfile runs %s: %v", m[1], err)
			continue
		}
		if strings.HasSuffix(m[1], ".sh") && fi.Mode()&0o111 == 0 {
			t.Errorf("Jenkinsfile runs %s, which is not executable", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`\b(charts/[a-z0-9-]+)`).FindAllStringSubmatch(src, -1) {
		if _, err := os.Stat(filepath.Join(repoRoot, m[1], "Chart.yaml")); err != nil {
			t.Errorf("Jenkinsfile uses chart %s: %v", m[1], err)
		}
	}
}
