package check

import (
	"context"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

const composeFile = "docker-compose.yml"

// composeOptionalSecrets are secrets .env may leave empty: the program
// then runs without them.
var composeOptionalSecrets = []string{"STOOQ_API_KEY"}

// composeEnv stands in for a filled-in .env.
var composeEnv = map[string]string{
	"JWT_SECRET":        strings.Repeat("j", 64),
	"POSTGRES_PASSWORD": "pgpass",
	"RABBITMQ_PASSWORD": "mqpass",
}

func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, composeFile)}},
		Environment: maps.Clone(env), // the loader adds to it
	}
	return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("stockquote", true)
		o.Profiles = profiles
	})
}

func mustLoadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, composeEnv, profiles...)
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

func composeService(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return s
}

// TestComposeRequiresSecrets: without .env, compose must refuse to start
// rather than run with an empty or default secret.
func TestComposeRequiresSecrets(t *testing.T) {
	for name := range composeEnv {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range composeEnv {
				if k != name {
					env[k] = v
				}
			}
			_, err := loadCompose(t, env)
			if err == nil || !strings.Contains(err.Error(), "set "+name+" in .env") {
				t.Errorf("load without %s: err = %v, want the 'set %s in .env' message", name, err, name)
			}
		})
	}
}

func TestComposeHealthDependencies(t *testing.T) {
	p := mustLoadCompose(t, "*")
	for _, s := range p.Services {
		for dep, cfg := range s.DependsOn {
			d := composeService(t, p, dep)
			switch cfg.Condition {
			case types.ServiceConditionHealthy:
				if d.HealthCheck == nil || d.HealthCheck.Disable || len(d.HealthCheck.Test) == 0 {
					t.Errorf("%s waits for %s to be healthy, but %s has no healthcheck", s.Name, dep, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if d.Restart != "" && d.Restart != "no" {
					t.Errorf("%s waits for %s to complete, but %s restarts (%s)", s.Name, dep, dep, d.Restart)
				}
			default:
				t.Errorf("%s depends on %s with condition %q: want service_healthy or service_completed_successfully", s.Name, dep, cfg.Condition)
			}
		}
	}
	want := map[string]map[string]string{
		"migrate":      {"postgres": types.ServiceConditionHealthy},
		"apiservice":   {"postgres": types.ServiceConditionHealthy, "rabbitmq": types.ServiceConditionHealthy, "migrate": types.ServiceConditionCompletedSuccessfully},
		"stockservice": {"rabbitmq": types.ServiceConditionHealthy},
	}
	for svc, deps := range want {
		s := composeService(t, p, svc)
		for dep, cond := range deps {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends on %s with %q, want %q", svc, dep, got, cond)
			}
		}
	}
}

func TestComposeServices(t *testing.T) {
	p := mustLoadCompose(t)
	if _, err := p.GetService("fakestooq"); err == nil {
		t.Error("fakestooq runs by default; it belongs to the offline profile only")
	}
	for _, name := range []string{"postgres", "rabbitmq"} {
		s := composeService(t, p, name)
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			_, named := p.Volumes[v.Source]
			return v.Type == types.VolumeTypeVolume && named
		}) {
			t.Errorf("%s keeps its data in no named volume: %+v", name, s.Volumes)
		}
	}
	if img := composeService(t, p, "rabbitmq").Image; !strings.Contains(img, "management") {
		t.Errorf("rabbitmq image %q has no management UI", img)
	}
	worker := composeService(t, p, "stockservice")
	if worker.Deploy == nil || worker.Deploy.Replicas == nil || *worker.Deploy.Replicas != 2 {
		t.Errorf("stockservice deploy.replicas = %v, want 2", worker.Deploy)
	}
	if got := worker.Environment["STOOQ_URL"]; got == nil || *got != "https://stooq.com" {
		t.Errorf("stockservice STOOQ_URL = %v, want the real https://stooq.com by default", got)
	}
	mig := composeService(t, p, "migrate")
	api := composeService(t, p, "apiservice")
	if !slices.Equal([]string(mig.Command), []string{"migrate"}) || mig.Image != api.Image {
		t.Errorf("migrate: image %s command %v, want the API image %s with command [migrate]", mig.Image, mig.Command, api.Image)
	}
	for _, s := range []types.ServiceConfig{api, worker, mig} {
		if !s.ReadOnly || !slices.Equal(s.CapDrop, []string{"ALL"}) {
			t.Errorf("%s: read_only=%v cap_drop=%v, want a read-only root and no capabilities", s.Name, s.ReadOnly, s.CapDrop)
		}
	}

	off := mustLoadCompose(t, "offline")
	fs := composeService(t, off, "fakestooq")
	if !slices.Contains(fs.Command, ":8089") {
		t.Errorf("fakestooq command %v: want it listening on :8089 (the documented STOOQ_URL=http://fakestooq:8089)", fs.Command)
	}
}

// TestComposeBuilds checks every image compose builds comes from the one
// Dockerfile with the matching SERVICE.
func TestComposeBuilds(t *testing.T) {
	p := mustLoadCompose(t, "*")
	want := map[string]string{"apiservice": "apiservice", "migrate": "apiservice", "stockservice": "stockservice", "fakestooq": "fakestooq"}
	for svc, prog := range want {
		s := composeService(t, p, svc)
		if s.Build == nil {
			t.Errorf("%s: no build section", svc)
			continue
		}
		if df := s.Build.Dockerfile; df != "" && df != "Dockerfile" {
			t.Errorf("%s: builds %s, want the root Dockerfile", svc, df)
		}
		if got := s.Build.Args["SERVICE"]; got == nil || *got != prog {
			t.Errorf("%s: build arg SERVICE = %v, want %s", svc, got, prog)
		}
		if !strings.HasSuffix(strings.Split(s.Image, ":")[0], "/"+prog) {
			t.Errorf("%s: image %s is not named for %s", svc, s.Image, prog)
		}
	}
}

// TestComposeEnvironment checks each program gets every setting it
// requires and nothing it does not read.
func TestComposeEnvironment(t *testing.T) {
	p := mustLoadCompose(t, "*")
	names := func(s types.ServiceConfig) map[string]bool {
		m := map[string]bool{}
		for k, v := range s.Environment {
			if (v == nil || *v == "") && !slices.Contains(composeOptionalSecrets, k) {
				t.Errorf("%s: %s is empty", s.Name, k)
			}
			m[k] = true
		}
		return m
	}
	checkEnv(t, "compose service apiservice", apiProgram, names(composeService(t, p, "apiservice")))
	checkEnv(t, "compose service stockservice", workerProgram, names(composeService(t, p, "stockservice")))
	migrate := program{dir: apiProgram.dir, required: []string{"DATABASE_URL"}}
	checkEnv(t, "compose service migrate", migrate, names(composeService(t, p, "migrate")))
	// The check needs no broker.
	checkEnv(t, "compose service stooq-check", program{dir: workerProgram.dir}, names(composeService(t, p, "stooq-check")))

	api := composeService(t, p, "apiservice")
	worker := composeService(t, p, "stockservice")
	if *api.Environment["AMQP_URL"] != *worker.Environment["AMQP_URL"] {
		t.Error("apiservice and stockservice use different AMQP_URLs; they meet only on one broker and vhost")
	}
	if a, w := api.Environment["RPC_QUEUE"], worker.Environment["RPC_QUEUE"]; (a == nil) != (w == nil) || (a != nil && *a != *w) {
		t.Error("apiservice and stockservice use different RPC_QUEUEs")
	}
	if got := *api.Environment["JWT_SECRET"]; got != composeEnv["JWT_SECRET"] {
		t.Errorf("apiservice JWT_SECRET = %q, want the one from .env", got)
	}
	if got, want := *api.Environment["DATABASE_URL"], *composeService(t, p, "migrate").Environment["DATABASE_URL"]; got != want {
		t.Errorf("apiservice and migrate use different DATABASE_URLs: %q, %q", got, want)
	}
}

var composeVar = regexp.MustCompile(`\$\{([A-Z][A-Z0-9_]*)`)

// TestComposeNoCommittedSecrets checks secrets only come from .env and
// that every variable the compose file reads is documented in .env.example.
func TestComposeNoCommittedSecrets(t *testing.T) {
	raw := readFile(t, composeFile)
	secretKey := regexp.MustCompile(`^\s*[A-Z_]*(PASSWORD|SECRET|_PASS|_KEY)\s*:\s*(.*)$`)
	urlPassword := regexp.MustCompile(`://[^:/@\s]+:([^@\s]*)@`)
	for i, line := range strings.Split(raw, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := secretKey.FindStringSubmatch(line); m != nil && !strings.HasPrefix(strings.TrimSpace(m[2]), "${") {
			t.Errorf("%s:%d: secret with a literal value: %s", composeFile, i+1, strings.TrimSpace(line))
		}
		if m := urlPassword.FindStringSubmatch(line); m != nil && !strings.HasPrefix(m[1], "${") {
			t.Errorf("%s:%d: URL with a literal password: %s", composeFile, i+1, strings.TrimSpace(line))
		}
	}
	example := readFile(t, ".env.example")
	documented := map[string]string{}
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "#")
		if k, v, ok := strings.Cut(line, "="); ok && regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(k) {
			documented[k] = v
		}
	}
	for _, m := range composeVar.FindAllStringSubmatch(raw, -1) {
		if _, ok := documented[m[1]]; !ok {
			t.Errorf("%s reads ${%s}, which .env.example does not document", composeFile, m[1])
		}
	}
	for _, name := range append(slices.Collect(maps.Keys(composeEnv)), composeOptionalSecrets...) {
		if v, ok := documented[name]; !ok || v != "" {
			t.Errorf(".env.example: %s = %q, want it listed with an empty value (no committed secret)", name, v)
		}
	}
}

// TestComposePublishesOnLoopback checks that no service of any profile
// publishes a port on every interface: the API and the RabbitMQ UI are
// for this host only (a proxy in front serves other hosts).
func TestComposePublishesOnLoopback(t *testing.T) {
	p := mustLoadCompose(t, "*")
	published := 0
	for _, s := range p.Services {
		for _, port := range s.Ports {
			if port.Published == "" {
				continue
			}
			published++
			if port.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%d on host IP %q, want 127.0.0.1", s.Name, port.Published, port.Target, port.HostIP)
			}
		}
	}
	if published == 0 {
		t.Error("compose publishes no port at all; the API should be reachable on 127.0.0.1")
	}
	api := composeService(t, p, "apiservice")
	if len(api.Ports) != 1 || api.Ports[0].Target != 8080 || api.Ports[0].Published != "8080" {
		t.Errorf("apiservice ports %+v, want 127.0.0.1:8080 -> 8080 by default", api.Ports)
	}
}

// TestComposeOneShotsAwaited: `docker compose up --wait` fails when any
// container has exited, unless a service waits for it with
// service_completed_successfully (found by make test-live: the one-shot
// stooq-check broke `up --wait` even when it passed).
func TestComposeOneShotsAwaited(t *testing.T) {
	for _, profiles := range [][]string{nil, {"offline"}} {
		p := mustLoadCompose(t, profiles...)
		for _, s := range p.Services {
			if s.Restart != "no" {
				continue
			}
			awaited := false
			for _, other := range p.Services {
				if d, ok := other.DependsOn[s.Name]; ok && d.Condition == types.ServiceConditionCompletedSuccessfully {
					awaited = true
				}
			}
			if !awaited {
				t.Errorf("profiles %v: one-shot service %s is awaited by no service with service_completed_successfully: `up --wait` fails once it exits", profiles, s.Name)
			}
		}
	}
}
