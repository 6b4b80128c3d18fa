package check

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// prometheusRule mirrors the part of monitoring.coreos.com/v1
// PrometheusRule the chart uses, so strict decoding still catches
// misspelled fields.
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name  string `json:"name"`
			Rules []struct {
				Alert       string            `json:"alert"`
				Expr        string            `json:"expr"`
				For         string            `json:"for"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// stooqKeyRef returns where a container's STOOQ_API_KEY comes from.
func stooqKeyRef(t *testing.T, c corev1.Container) *corev1.SecretKeySelector {
	t.Helper()
	for _, v := range c.Env {
		if v.Name == "STOOQ_API_KEY" {
			if v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil {
				t.Fatalf("container %s: STOOQ_API_KEY does not come from a Secret", c.Name)
			}
			return v.ValueFrom.SecretKeyRef
		}
	}
	return nil
}

// TestChartStooqKey: the stooq API key is a secret of its own, in the
// chart's Secret or secrets.existingSecret (optional in both), read by the
// workers and the check only, never in a ConfigMap.
func TestChartStooqKey(t *testing.T) {
	const key = "stooq-key-of-the-chart-test"
	tests := []struct {
		name       string
		vals       map[string]any
		wantSecret string // the Secret the key is read from
		wantInData bool   // whether the chart's Secret holds the key
	}{
		{"defaults", nil, testRelease + "-stockquote", false},
		{"key set", map[string]any{"secrets": map[string]any{"stooqApiKey": key}}, testRelease + "-stockquote", true},
		{"existing secret", map[string]any{"secrets": map[string]any{"existingSecret": "stockquote-prod"}}, "stockquote-prod", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustRender(t, tt.vals)
			worker := appDeployment(t, r, "worker").Spec.Template.Spec.Containers[0]
			api := appDeployment(t, r, "api").Spec.Template.Spec.Containers[0]
			check := stooqCheckPod(t, r).Spec.Containers[0]
			for _, c := range []corev1.Container{worker, check} {
				ref := stooqKeyRef(t, c)
				if ref == nil || ref.Name != tt.wantSecret || ref.Key != "STOOQ_API_KEY" || ref.Optional == nil || !*ref.Optional {
					t.Errorf("container %s: STOOQ_API_KEY from %+v, want optional key STOOQ_API_KEY of Secret %s", c.Name, ref, tt.wantSecret)
				}
			}
			if stooqKeyRef(t, api) != nil {
				t.Errorf("the API gets STOOQ_API_KEY; only the workers talk to stooq")
			}
			if o, ok := r.find("Secret", testRelease+"-stockquote"); ok {
				got, has := o.obj.(*corev1.Secret).Data["STOOQ_API_KEY"]
				if has != tt.wantInData || (has && string(got) != key) {
					t.Errorf("Secret STOOQ_API_KEY = %q (present %v), want present %v", got, has, tt.wantInData)
				}
			}
			for _, o := range r.all("ConfigMap") {
				for k, v := range o.obj.(*corev1.ConfigMap).Data {
					if strings.Contains(v, key) || k == "STOOQ_API_KEY" {
						t.Errorf("ConfigMap %s key %s holds the stooq key", o.name, k)
					}
				}
			}
		})
	}
}

// stooqCheckPod returns the helm test Pod that runs `stockservice check`.
func stooqCheckPod(t *testing.T, r release) *corev1.Pod {
	t.Helper()
	o, ok := r.find("Pod", testRelease+"-stockquote-stooq-check")
	if !ok {
		t.Fatal("the stooq check Pod is not rendered")
	}
	if o.hook != "test" {
		t.Errorf("Pod %s: helm.sh/hook = %q, want test", o.name, o.hook)
	}
	return o.obj.(*corev1.Pod)
}

// TestChartStooqCheck: `helm test` runs `stockservice check` once, with
// the workers' image, settings, key and security context.
func TestChartStooqCheck(t *testing.T) {
	for name, vals := range scenarios() {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			pod := stooqCheckPod(t, r)
			worker := appDeployment(t, r, "worker").Spec.Template.Spec
			c := pod.Spec.Containers[0]
			if len(pod.Spec.Containers) != 1 || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("Pod %s: %d containers, restartPolicy %q; want one that runs once", pod.Name, len(pod.Spec.Containers), pod.Spec.RestartPolicy)
			}
			if c.Image != worker.Containers[0].Image || len(c.Command) != 0 || !slices.Equal(c.Args, []string{"check", "aapl.us"}) {
				t.Errorf("Pod %s: image %s command %v args %v, want the worker's image and entrypoint with args [check aapl.us]", pod.Name, c.Image, c.Command, c.Args)
			}
			if !reflect.DeepEqual(c.SecurityContext, worker.Containers[0].SecurityContext) || !reflect.DeepEqual(pod.Spec.SecurityContext, worker.SecurityContext) {
				t.Errorf("Pod %s: security context differs from the worker's", pod.Name)
			}
			e := containerEnv(t, r, c)
			// The check needs no broker: none of the worker's settings is required.
			checkEnv(t, "chart Pod "+pod.Name, program{dir: workerProgram.dir}, e.names())
			w := containerEnv(t, r, worker.Containers[0])
			for _, name := range []string{"STOOQ_URL", "STOOQ_TIMEOUT"} {
				if e.values[name] != w.values[name] {
					t.Errorf("Pod %s: %s = %q, the worker's is %q", pod.Name, name, e.values[name], w.values[name])
				}
			}
			if _, ok := e.secretKeys["AMQP_URL"]; ok {
				t.Errorf("Pod %s gets AMQP_URL; the check needs no broker", pod.Name)
			}
		})
	}
	r := mustRender(t, map[string]any{"tests": map[string]any{"stooqCheck": map[string]any{"enabled": false}}})
	if _, ok := r.find("Pod", testRelease+"-stockquote-stooq-check"); ok {
		t.Error("tests.stooqCheck.enabled=false still renders the check Pod")
	}
	r = mustRender(t, map[string]any{"tests": map[string]any{"stooqCheck": map[string]any{"enabled": true, "symbol": "msft.us"}}})
	if got := stooqCheckPod(t, r).Spec.Containers[0].Args; !slices.Equal(got, []string{"check", "msft.us"}) {
		t.Errorf("check args = %v, want [check msft.us]", got)
	}
}

// TestChartStooqSettings: STOOQ_MAX_RPS is off unless set, and the refusal
// alert is opt-in.
func TestChartStooqSettings(t *testing.T) {
	def := mustRender(t, nil)
	if _, ok := containerEnv(t, def, appDeployment(t, def, "worker").Spec.Template.Spec.Containers[0]).values["STOOQ_MAX_RPS"]; ok {
		t.Error("STOOQ_MAX_RPS set by default; the budget is opt-in")
	}
	if n := len(def.all("PrometheusRule")); n != 0 {
		t.Errorf("%d PrometheusRules by default, want 0 (opt-in)", n)
	}

	r := mustRender(t, map[string]any{
		"worker":  map[string]any{"stooqMaxRPS": 2.5},
		"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true, "for": "15m", "labels": map[string]any{"release": "prom"}}},
	})
	if got := containerEnv(t, r, appDeployment(t, r, "worker").Spec.Template.Spec.Containers[0]).values["STOOQ_MAX_RPS"]; got != "2.5" {
		t.Errorf("STOOQ_MAX_RPS = %q, want 2.5", got)
	}
	rules := r.all("PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(rules))
	}
	pr := rules[0].obj.(*prometheusRule)
	if pr.Labels["release"] != "prom" || len(pr.Spec.Groups) != 1 || len(pr.Spec.Groups[0].Rules) != 1 {
		t.Fatalf("PrometheusRule %s: labels %v, groups %+v", pr.Name, pr.Labels, pr.Spec.Groups)
	}
	rule := pr.Spec.Groups[0].Rules[0]
	if !strings.Contains(rule.Expr, "stockquote_stooq_refusals_total") || !strings.Contains(rule.Expr, "by (namespace, reason)") || rule.For != "15m" {
		t.Errorf("alert %s: expr %q for %q, want refusals by reason for 15m", rule.Alert, rule.Expr, rule.For)
	}
	// Prometheus, not Helm, fills in $labels.
	if !strings.Contains(rule.Annotations["summary"], "{{ $labels.reason }}") || !strings.Contains(rule.Annotations["description"], "STOOQ_API_KEY") {
		t.Errorf("alert annotations %v: want the reason and what to do", rule.Annotations)
	}

	for name, vals := range map[string]map[string]any{
		"negative budget":   {"worker": map[string]any{"stooqMaxRPS": -1}},
		"budget as string":  {"worker": map[string]any{"stooqMaxRPS": "5"}},
		"fractional for":    {"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true, "for": "1.5m"}}},
		"check symbol +":    {"tests": map[string]any{"stooqCheck": map[string]any{"enabled": true, "symbol": "a+b"}}},
		"key in the values": {"secrets": map[string]any{"stooqApiKey": 42}},
	} {
		if _, err := render(t, vals); err == nil || !strings.Contains(err.Error(), "schema") {
			t.Errorf("%s: render error = %v, want a values schema error", name, err)
		}
	}
}

// TestComposeStooqCheck: compose runs `stockservice check` once in the
// default profile, with the workers' stooq settings and key; nothing waits
// for it, and with the offline profile it waits for the fake stooq.
func TestComposeStooqCheck(t *testing.T) {
	env := maps.Clone(composeEnv)
	env["STOOQ_API_KEY"] = "compose-key"
	p, err := loadCompose(t, env)
	if err != nil {
		t.Fatal(err)
	}
	check := composeService(t, p, "stooq-check")
	worker := composeService(t, p, "stockservice")
	if !slices.Equal([]string(check.Command), []string{"check"}) || check.Image != worker.Image || (check.Restart != "" && check.Restart != "no") {
		t.Errorf("stooq-check: image %s command %v restart %q, want the worker's image, [check], no restart", check.Image, check.Command, check.Restart)
	}
	if !check.ReadOnly || !slices.Equal(check.CapDrop, []string{"ALL"}) {
		t.Errorf("stooq-check: read_only=%v cap_drop=%v, want the workers' confinement", check.ReadOnly, check.CapDrop)
	}
	for _, name := range []string{"STOOQ_URL", "STOOQ_TIMEOUT", "STOOQ_API_KEY"} {
		c, w := check.Environment[name], worker.Environment[name]
		if c == nil || w == nil || *c != *w {
			t.Errorf("stooq-check %s = %v, worker's = %v: want the same", name, c, w)
		}
	}
	if got := worker.Environment["STOOQ_API_KEY"]; got == nil || *got != "compose-key" {
		t.Errorf("worker STOOQ_API_KEY = %v, want the one from .env", got)
	}
	for dep, cfg := range check.DependsOn {
		if _, err := p.GetService(dep); err != nil && cfg.Required {
			t.Errorf("stooq-check requires %s, which the default profile does not run", dep)
		}
	}
	for _, s := range p.Services {
		// Waiting for the check to finish is fine (`up --wait` needs it);
		// requiring it to succeed would let a refusing stooq block s.
		if d, ok := s.DependsOn["stooq-check"]; ok && (d.Required || d.Condition != types.ServiceConditionCompletedSuccessfully) {
			t.Errorf("%s depends on stooq-check with %+v; a refusing stooq must not block it (want service_completed_successfully, required: false)", s.Name, d)
		}
	}

	off := mustLoadCompose(t, "offline")
	if got := composeService(t, off, "stooq-check").DependsOn["fakestooq"].Condition; got != types.ServiceConditionHealthy {
		t.Errorf("offline: stooq-check waits for fakestooq with %q, want service_healthy", got)
	}
	hc := composeService(t, off, "fakestooq").HealthCheck
	if hc == nil || !slices.Contains(hc.Test, "-probe") {
		t.Errorf("fakestooq healthcheck %+v: want the binary's own -probe (the image has no shell)", hc)
	}
}
