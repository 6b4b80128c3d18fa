package check

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

var chartDir = filepath.Join(repoRoot, "charts", "stockquote")

const (
	testRelease   = "demo"
	testNamespace = "quotes"
	// testKube is the cluster version the chart is rendered for.
	testKube = "v1.33.0"
)

// allOn turns on every optional feature of the chart at once.
func allOn() map[string]any {
	return map[string]any{
		"image":            map[string]any{"registry": "registry.example.com", "tag": "abc1234"},
		"imagePullSecrets": []any{map[string]any{"name": "regcred"}},
		"secrets":          map[string]any{"jwtSecret": strings.Repeat("k", 40)},
		"bundled": map[string]any{
			"postgresql": map[string]any{"enabled": true, "password": "pg pass+/?"},
			"rabbitmq":   map[string]any{"enabled": true, "persistence": map[string]any{"enabled": false, "size": "1Gi"}},
		},
		"ingress": map[string]any{
			"enabled": true, "className": "nginx",
			"annotations": map[string]any{"nginx.ingress.kubernetes.io/proxy-body-size": "1m"},
			"tls":         []any{map[string]any{"secretName": "stockquote-tls", "hosts": []any{"stockquote.example.com"}}},
		},
		"networkPolicy": map[string]any{
			"enabled": true,
			"apiIngressFrom": []any{map[string]any{"namespaceSelector": map[string]any{
				"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ingress-nginx"}}}},
			"extraEgress": []any{map[string]any{"ports": []any{map[string]any{"port": 3128, "protocol": "TCP"}}}},
		},
		"metrics": map[string]any{"podAnnotations": true, "serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prom"}},
			"dashboard": map[string]any{"enabled": true, "annotations": map[string]any{"grafana_folder": "Stockquote"}}},
		"api": map[string]any{"podAnnotations": map[string]any{"team": "quotes"}, "nodeSelector": map[string]any{"kubernetes.io/os": "linux"}},
	}
}

// scenarios are the value sets every rendering check runs against.
func scenarios() map[string]map[string]any {
	return map[string]map[string]any{
		"defaults": nil,
		"all-on":   allOn(),
		"existing-secret-no-autoscaling": {
			"secrets": map[string]any{"existingSecret": "stockquote-prod"},
			"api":     map[string]any{"autoscaling": map[string]any{"enabled": false, "minReplicas": 1, "maxReplicas": 1, "targetCPUUtilizationPercentage": 70}},
			"worker": map[string]any{"autoscaling": map[string]any{"enabled": false, "minReplicas": 1, "maxReplicas": 1, "targetCPUUtilizationPercentage": 70},
				"podDisruptionBudget": map[string]any{"enabled": false, "maxUnavailable": 1}},
			"networkPolicy": map[string]any{"enabled": false},
		},
		"rabbitmq-cluster": clusterValues(),
		"external-servers-tls": {
			"database": map[string]any{"host": "db.internal", "port": 6432, "password": "s3cret", "sslMode": "verify-full"},
			"amqp":     map[string]any{"host": "mq.internal", "port": 5671, "password": "p@ss", "vhost": "quotes", "tls": true},
		},
	}
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return c
}

// rendered is one manifest of a dry-run install, decoded strictly into its
// Kubernetes API type.
type rendered struct {
	kind, name string
	hook       string // helm.sh/hook annotation, "" for release objects
	obj        any    // *appsv1.Deployment, *corev1.Service, ...
}

// release is the result of rendering the chart as `helm install` would.
type release struct {
	objs  []rendered
	notes string
}

func (r release) find(kind, name string) (rendered, bool) {
	for _, o := range r.objs {
		if o.kind == kind && o.name == name {
			return o, true
		}
	}
	return rendered{}, false
}

func (r release) all(kind string) []rendered {
	var out []rendered
	for _, o := range r.objs {
		if o.kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// serviceMonitor mirrors the part of monitoring.coreos.com/v1 ServiceMonitor
// the chart uses, so strict decoding still catches misspelled fields.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// apiTypes maps apiVersion/kind to the Go type a manifest must decode into.
var apiTypes = map[string]func() any{
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                               func() any { return &corev1.Secret{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                     func() any { return &appsv1.StatefulSet{} },
	"batch/v1/Job":                            func() any { return &batchv1.Job{} },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":            func() any { return &networkingv1.Ingress{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &serviceMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return &prometheusRule{} },
	"v1/Pod": func() any { return &corev1.Pod{} },
}

// decodeStrict decodes one YAML manifest into its API type, failing on
// unknown, misspelled (case-sensitive) or duplicated fields, like the API
// server's strict field validation.
func decodeStrict(doc string) (rendered, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return rendered{}, fmt.Errorf("yaml: %w", err)
	}
	var meta struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &meta); err != nil {
		return rendered{}, fmt.Errorf("type meta: %w", err)
	}
	newObj, ok := apiTypes[meta.APIVersion+"/"+meta.Kind]
	if !ok {
		return rendered{}, fmt.Errorf("%s %s: apiVersion/kind not known to the check (add it to apiTypes)", meta.APIVersion, meta.Kind)
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return rendered{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	if len(strict) > 0 {
		return rendered{}, fmt.Errorf("%s %s: strict decoding: %v", meta.Kind, meta.Metadata.Name, strict)
	}
	return rendered{kind: meta.Kind, name: meta.Metadata.Name, hook: meta.Metadata.Annotations["helm.sh/hook"], obj: obj}, nil
}

// render runs a client-only dry-run install (what `helm template` does,
// including the values schema) and decodes every object strictly.
func render(t *testing.T, vals map[string]any) (release, error) {
	t.Helper()
	return renderAs(t, testRelease, vals)
}

// renderAs is render with another release name.
func renderAs(t *testing.T, releaseName string, vals map[string]any) (release, error) {
	t.Helper()
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = releaseName
	inst.Namespace = testNamespace
	kv, err := chartutil.ParseKubeVersion(testKube)
	if err != nil {
		t.Fatal(err)
	}
	inst.KubeVersion = kv
	if vals == nil {
		vals = map[string]any{}
	}
	rel, err := inst.Run(loadChart(t), vals)
	if err != nil {
		return release{}, err
	}
	docs := []string{}
	for _, m := range releaseutil.SplitManifests(rel.Manifest) {
		docs = append(docs, m)
	}
	for _, h := range rel.Hooks {
		docs = append(docs, h.Manifest)
	}
	out := release{notes: rel.Info.Notes}
	for _, d := range docs {
		if strings.TrimSpace(d) == "" {
			continue
		}
		o, err := decodeStrict(d)
		if err != nil {
			t.Errorf("decode rendered object: %v\n%s", err, d)
			continue
		}
		out.objs = append(out.objs, o)
	}
	sort.Slice(out.objs, func(i, j int) bool {
		return out.objs[i].kind+"/"+out.objs[i].name < out.objs[j].kind+"/"+out.objs[j].name
	})
	return out, nil
}

func mustRender(t *testing.T, vals map[string]any) release {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func TestChartMetadata(t *testing.T) {
	c := loadChart(t)
	if got, want := c.Metadata.Name, "stockquote"; got != want {
		t.Errorf("chart name = %q, want %q", got, want)
	}
	if c.Metadata.APIVersion != chart.APIVersionV2 {
		t.Errorf("chart apiVersion = %q, want %q", c.Metadata.APIVersion, chart.APIVersionV2)
	}
	if len(c.Schema) == 0 {
		t.Error("chart has no values.schema.json")
	}
}

// TestChartLintStrict is `helm lint --strict`: any warning fails.
func TestChartLintStrict(t *testing.T) {
	for name, vals := range scenarios() {
		t.Run(name, func(t *testing.T) {
			kv, err := chartutil.ParseKubeVersion(testKube)
			if err != nil {
				t.Fatal(err)
			}
			if vals == nil {
				vals = map[string]any{}
			}
			linter := lint.AllWithKubeVersion(chartDir, vals, testNamespace, kv)
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m)
				}
			}
		})
	}
}

// TestChartSchemaRejects checks that values.schema.json turns wrong values
// into an install error rather than a silently ignored key.
func TestChartSchemaRejects(t *testing.T) {
	tests := map[string]map[string]any{
		"misspelled hpa switch":    {"api": map[string]any{"autoscaling": map[string]any{"enable": true}}},
		"unknown top-level key":    {"hpa": map[string]any{"enabled": true}},
		"short jwt secret":         {"secrets": map[string]any{"jwtSecret": "too-short"}},
		"zero workers":             {"worker": map[string]any{"workers": 0}},
		"bad duration":             {"api": map[string]any{"tokenTTL": "1 hour"}},
		"bad log level":            {"worker": map[string]any{"logLevel": "verbose"}},
		"bad sslmode":              {"database": map[string]any{"sslMode": "yes"}},
		"port as string":           {"database": map[string]any{"port": "5432"}},
		"stooq url without scheme": {"worker": map[string]any{"stooqURL": "stooq.com"}},
		"unknown queue type":       {"rpcQueueType": "stream"},
		"broker host with a path":  {"amqp": map[string]any{"hosts": []any{"mq-0/vhost"}}},
		"unknown anti-affinity":    {"api": map[string]any{"podAntiAffinity": "always"}},
		// Each of these names fails only on a real API server (issue 13:
		// 19 RFC 1123 errors from one install); the schema stops them first.
		"bad fullnameOverride":       {"fullnameOverride": "Bad_Name"},
		"fullnameOverride 1st digit": {"fullnameOverride": "1stockquote"},
		"bad nameOverride":           {"nameOverride": "Stock.Quote"},
		"bad existing secret name":   {"secrets": map[string]any{"existingSecret": "My_Secret"}},
		"bad service account name":   {"serviceAccount": map[string]any{"name": "SA"}},
	}
	for name, vals := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := render(t, vals); err == nil {
				t.Errorf("render with %v succeeded, want a schema error", vals)
			} else if !strings.Contains(err.Error(), "schema") {
				t.Errorf("render error = %v, want a values schema error", err)
			}
		})
	}
}

// TestChartRejectsBadNamePrefix: Helm accepts release names with dots,
// which make invalid Service names; the chart's fullname helper refuses
// them with a message naming the fix instead of the API server's 19 errors.
func TestChartRejectsBadNamePrefix(t *testing.T) {
	for _, rel := range []string{"web.v2", "2048"} {
		_, err := renderAs(t, rel, nil)
		if err == nil {
			t.Errorf("release %q rendered, want an error", rel)
		} else if !strings.Contains(err.Error(), "is not an RFC 1035 label") {
			t.Errorf("release %q: error = %v, want the chart's name check", rel, err)
		}
	}
	// The check must not refuse good names.
	if _, err := renderAs(t, "quotes-prod", map[string]any{"nameOverride": "sq"}); err != nil {
		t.Errorf("good names: %v", err)
	}
	if _, err := renderAs(t, "quotes", map[string]any{"fullnameOverride": "sq-prod"}); err != nil {
		t.Errorf("good fullnameOverride: %v", err)
	}
}

func TestChartRenders(t *testing.T) {
	for name, vals := range scenarios() {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, vals)
			checkWorkloads(t, r)
			checkServices(t, r)
			checkAutoscaling(t, r)
			checkDisruptionBudgets(t, r)
			checkNetworkPolicies(t, r)
			checkAppWiring(t, r, vals)
			checkQueueType(t, r, vals)
			checkScheduling(t, r)
			checkMigration(t, r, vals)
			checkIngress(t, r)
			checkNotes(t, r)
		})
	}
}

// TestChartOptionalFeatures checks that each switch renders what it names
// (the reference chart's HPA never rendered).
func TestChartOptionalFeatures(t *testing.T) {
	count := func(r release, kind string) int { return len(r.all(kind)) }
	def := mustRender(t, nil)
	on := mustRender(t, allOn())
	off := mustRender(t, scenarios()["existing-secret-no-autoscaling"])
	tests := []struct {
		what      string
		got, want int
	}{
		{"default HPAs", count(def, "HorizontalPodAutoscaler"), 2},
		{"default PDBs", count(def, "PodDisruptionBudget"), 2},
		{"default NetworkPolicies (+ the stooq check's)", count(def, "NetworkPolicy"), 4},
		{"default Ingresses", count(def, "Ingress"), 0},
		{"default StatefulSets", count(def, "StatefulSet"), 0},
		{"default ServiceMonitors", count(def, "ServiceMonitor"), 0},
		{"default Secrets (release + migration hook)", count(def, "Secret"), 2},
		{"all-on Ingresses", count(on, "Ingress"), 1},
		{"all-on StatefulSets (bundles)", count(on, "StatefulSet"), 2},
		{"all-on NetworkPolicies", count(on, "NetworkPolicy"), 6},
		{"all-on ServiceMonitors", count(on, "ServiceMonitor"), 2},
		{"existing secret: Secrets", count(off, "Secret"), 0},
		{"no autoscaling: HPAs", count(off, "HorizontalPodAutoscaler"), 0},
		{"PDB off for the worker only", count(off, "PodDisruptionBudget"), 1},
		{"network policy off", count(off, "NetworkPolicy"), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d objects, want %d", tt.what, tt.got, tt.want)
		}
	}
}

// workload is a pod-owning object: Deployment, StatefulSet or Job, or a
// bare Pod (the helm test hook).
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector
	pod        corev1.PodTemplateSpec
}

func workloads(r release) []workload {
	var out []workload
	for _, o := range r.objs {
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{o.kind, o.name, v.Spec.Selector, v.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, workload{o.kind, o.name, v.Spec.Selector, v.Spec.Template})
		case *batchv1.Job:
			out = append(out, workload{o.kind, o.name, v.Spec.Selector, v.Spec.Template})
		case *corev1.Pod:
			out = append(out, workload{o.kind, o.name, nil, corev1.PodTemplateSpec{ObjectMeta: v.ObjectMeta, Spec: v.Spec}})
		}
	}
	return out
}

// selected returns the workloads whose pods a label selector matches.
func selected(t *testing.T, r release, sel labels.Selector) []workload {
	t.Helper()
	var out []workload
	for _, w := range workloads(r) {
		if sel.Matches(labels.Set(w.pod.Labels)) {
			out = append(out, w)
		}
	}
	return out
}

func mustSelector(t *testing.T, ls *metav1.LabelSelector) labels.Selector {
	t.Helper()
	if ls == nil || (len(ls.MatchLabels) == 0 && len(ls.MatchExpressions) == 0) {
		t.Fatalf("empty label selector")
	}
	s, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func checkWorkloads(t *testing.T, r release) {
	t.Helper()
	for _, w := range workloads(r) {
		if w.kind != "Job" && w.kind != "Pod" {
			if !mustSelector(t, w.selector).Matches(labels.Set(w.pod.Labels)) {
				t.Errorf("%s %s: selector %v does not match its pod labels %v", w.kind, w.name, w.selector, w.pod.Labels)
			}
		}
		ps := w.pod.Spec
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s %s: service account token is mounted; none of the pods talks to the Kubernetes API", w.kind, w.name)
		}
		if sc := ps.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s %s: pod securityContext.runAsNonRoot is not true", w.kind, w.name)
		} else if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s %s: pod seccompProfile is not RuntimeDefault", w.kind, w.name)
		}
		bundled := strings.HasSuffix(w.name, "-postgresql") || strings.HasSuffix(w.name, "-rabbitmq")
		for _, c := range ps.Containers {
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s %s container %s: no securityContext", w.kind, w.name, c.Name)
				continue
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s %s container %s: privilege escalation allowed", w.kind, w.name, c.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
				t.Errorf("%s %s container %s: capabilities not dropped: %+v", w.kind, w.name, c.Name, sc.Capabilities)
			case !bundled && (sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem):
				t.Errorf("%s %s container %s: root filesystem writable", w.kind, w.name, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s %s container %s: no cpu/memory requests (HPAs need them)", w.kind, w.name, c.Name)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s %s container %s: no memory limit", w.kind, w.name, c.Name)
			}
		}
	}
}

// containerPort finds a named or numbered port of a pod's containers.
func containerPort(pod corev1.PodSpec, p intstr.IntOrString) (int32, bool) {
	for _, c := range pod.Containers {
		for _, cp := range c.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return cp.ContainerPort, true
			}
		}
	}
	return 0, false
}

func checkServices(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("Service") {
		svc := o.obj.(*corev1.Service)
		ws := selected(t, r, labels.SelectorFromSet(svc.Spec.Selector))
		if len(svc.Spec.Selector) == 0 || len(ws) != 1 || ws[0].kind == "Job" {
			t.Errorf("Service %s: selector %v matches %d workloads, want exactly one Deployment or StatefulSet", o.name, svc.Spec.Selector, len(ws))
			continue
		}
		for _, p := range svc.Spec.Ports {
			if _, ok := containerPort(ws[0].pod.Spec, p.TargetPort); !ok {
				t.Errorf("Service %s port %s: targetPort %s is not a port of %s %s", o.name, p.Name, p.TargetPort.String(), ws[0].kind, ws[0].name)
			}
		}
		if strings.HasSuffix(o.name, "-worker") {
			if svc.Spec.Type != corev1.ServiceTypeClusterIP || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.StrVal != "http" {
				t.Errorf("Service %s: the worker may only expose its probe/metrics port inside the cluster, got type %s ports %+v", o.name, svc.Spec.Type, svc.Spec.Ports)
			}
		}
	}
}

func checkAutoscaling(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("HorizontalPodAutoscaler") {
		hpa := o.obj.(*autoscalingv2.HorizontalPodAutoscaler)
		ref := hpa.Spec.ScaleTargetRef
		target, ok := r.find(ref.Kind, ref.Name)
		if !ok || ref.APIVersion != "apps/v1" {
			t.Errorf("HPA %s: target %s %s %s is not rendered", o.name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		if d, ok := target.obj.(*appsv1.Deployment); ok && d.Spec.Replicas != nil {
			t.Errorf("HPA %s: Deployment %s also sets replicas; every upgrade would reset the HPA's count", o.name, d.Name)
		}
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 1 || hpa.Spec.MaxReplicas < *hpa.Spec.MinReplicas {
			t.Errorf("HPA %s: bad replica bounds min=%v max=%d", o.name, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
		if len(hpa.Spec.Metrics) == 0 {
			t.Errorf("HPA %s: no metrics", o.name)
		}
	}
	for _, o := range r.all("Deployment") {
		_, hasHPA := r.find("HorizontalPodAutoscaler", o.name)
		if d := o.obj.(*appsv1.Deployment); !hasHPA && d.Spec.Replicas == nil {
			t.Errorf("Deployment %s: neither replicas nor an HPA", o.name)
		}
	}
}

func checkDisruptionBudgets(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("PodDisruptionBudget") {
		pdb := o.obj.(*policyv1.PodDisruptionBudget)
		if ws := selected(t, r, mustSelector(t, pdb.Spec.Selector)); len(ws) != 1 || ws[0].name != o.name {
			t.Errorf("PDB %s: selects %d workloads, want exactly Deployment %s", o.name, len(ws), o.name)
		}
	}
}

func checkNetworkPolicies(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("NetworkPolicy") {
		np := o.obj.(*networkingv1.NetworkPolicy)
		ws := selected(t, r, mustSelector(t, &np.Spec.PodSelector))
		if len(ws) == 0 {
			t.Errorf("NetworkPolicy %s: selects no pods", o.name)
		}
		for _, rule := range np.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port == nil {
					continue
				}
				for _, w := range ws {
					if _, ok := containerPort(w.pod.Spec, *p.Port); !ok && w.kind != "Job" && w.kind != "Pod" {
						t.Errorf("NetworkPolicy %s: ingress port %s is not a port of %s", o.name, p.Port.String(), w.name)
					}
				}
			}
		}
	}
}

// env is what one container gets: its own variables plus its ConfigMap
// keys. secretKeys maps variables from a Secret to "secret/key".
type env struct {
	values     map[string]string
	secretKeys map[string]string
}

func containerEnv(t *testing.T, r release, c corev1.Container) env {
	t.Helper()
	e := env{values: map[string]string{}, secretKeys: map[string]string{}}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Errorf("container %s: envFrom other than a ConfigMap (a Secret would leak unrelated keys)", c.Name)
			continue
		}
		o, ok := r.find("ConfigMap", from.ConfigMapRef.Name)
		if !ok {
			t.Errorf("container %s: ConfigMap %s is not rendered", c.Name, from.ConfigMapRef.Name)
			continue
		}
		for k, v := range o.obj.(*corev1.ConfigMap).Data {
			e.values[k] = v
		}
	}
	for _, v := range c.Env {
		switch {
		case v.ValueFrom == nil:
			e.values[v.Name] = v.Value
		case v.ValueFrom.SecretKeyRef != nil:
			e.values[v.Name] = ""
			e.secretKeys[v.Name] = v.ValueFrom.SecretKeyRef.Name + "/" + v.ValueFrom.SecretKeyRef.Key
		default:
			t.Errorf("container %s: env %s from an unexpected source", c.Name, v.Name)
		}
	}
	return e
}

func (e env) names() map[string]bool {
	m := map[string]bool{}
	for k := range e.values {
		m[k] = true
	}
	return m
}

// secretValue returns a rendered Secret's value ("", false for an
// existing Secret the chart does not render).
func secretValue(t *testing.T, r release, ref string) (string, bool) {
	t.Helper()
	name, key, _ := strings.Cut(ref, "/")
	o, ok := r.find("Secret", name)
	if !ok {
		return "", false
	}
	s := o.obj.(*corev1.Secret)
	v, ok := s.Data[key]
	if !ok {
		t.Errorf("Secret %s has no key %s", name, key)
	}
	return string(v), ok
}

func appDeployment(t *testing.T, r release, component string) *appsv1.Deployment {
	t.Helper()
	name := fmt.Sprintf("%s-stockquote-%s", testRelease, component)
	o, ok := r.find("Deployment", name)
	if !ok {
		t.Fatalf("Deployment %s is not rendered", name)
	}
	return o.obj.(*appsv1.Deployment)
}

func checkAppWiring(t *testing.T, r release, vals map[string]any) {
	t.Helper()
	api := appDeployment(t, r, "api")
	worker := appDeployment(t, r, "worker")
	type app struct {
		d        *appsv1.Deployment
		prog     program
		port     int32
		imageEnd string
	}
	for _, a := range []app{{api, apiProgram, 8080, "/apiservice:"}, {worker, workerProgram, 8081, "/stockservice:"}} {
		if len(a.d.Spec.Template.Spec.Containers) != 1 {
			t.Fatalf("Deployment %s: want one container", a.d.Name)
		}
		c := a.d.Spec.Template.Spec.Containers[0]
		if !strings.Contains(c.Image, a.imageEnd) {
			t.Errorf("Deployment %s: image %q is not the %s image", a.d.Name, c.Image, a.prog.dir)
		}
		e := containerEnv(t, r, c)
		checkEnv(t, "chart Deployment "+a.d.Name, a.prog, e.names())
		if got, want := e.values["HTTP_ADDR"], fmt.Sprintf(":%d", a.port); got != want {
			t.Errorf("Deployment %s: HTTP_ADDR = %q, want %q", a.d.Name, got, want)
		}
		if got, ok := containerPort(a.d.Spec.Template.Spec, intstr.FromString("http")); !ok || got != a.port {
			t.Errorf("Deployment %s: port http = %d, want %d", a.d.Name, got, a.port)
		}
		// The programs serve /healthz (alive) and /readyz (dependencies usable).
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"startup", c.StartupProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("Deployment %s: no HTTP %s probe", a.d.Name, p.name)
				continue
			}
			port, ok := containerPort(a.d.Spec.Template.Spec, p.probe.HTTPGet.Port)
			if p.probe.HTTPGet.Path != p.path || !ok || port != a.port {
				t.Errorf("Deployment %s: %s probe hits %s on %s, want %s on %d", a.d.Name, p.name, p.probe.HTTPGet.Path, p.probe.HTTPGet.Port.String(), p.path, a.port)
			}
		}
		for _, name := range a.prog.required {
			if _, ok := e.secretKeys[name]; !ok && name != "HTTP_ADDR" {
				t.Errorf("Deployment %s: %s does not come from a Secret", a.d.Name, name)
			}
		}
	}
	apiEnv := containerEnv(t, r, api.Spec.Template.Spec.Containers[0])
	workerEnv := containerEnv(t, r, worker.Spec.Template.Spec.Containers[0])
	// Both sides meet on the stock queue only if they use the same broker,
	// vhost and queue name.
	if got, want := apiEnv.values["RPC_QUEUE"], workerEnv.values["RPC_QUEUE"]; got != want {
		t.Errorf("API RPC_QUEUE = %q, worker RPC_QUEUE = %q: they must match", got, want)
	}
	if got, want := apiEnv.values["RPC_QUEUE"], stockQueue(t); got != want {
		t.Errorf("RPC_QUEUE = %q, want the wire contract's stockrpc.QueueName %q", got, want)
	}
	if apiEnv.secretKeys["AMQP_URL"] != workerEnv.secretKeys["AMQP_URL"] {
		t.Errorf("API AMQP_URL from %s, worker from %s: they must share one broker", apiEnv.secretKeys["AMQP_URL"], workerEnv.secretKeys["AMQP_URL"])
	}
	if amqpURLs, ok := secretValue(t, r, apiEnv.secretKeys["AMQP_URL"]); ok {
		// One URL per broker node, comma-separated.
		for _, amqpURL := range strings.Split(amqpURLs, ",") {
			checkServerURL(t, r, "AMQP_URL", amqpURL, []string{"amqp", "amqps"}, "rabbitmq")
		}
	}
	if dbURL, ok := secretValue(t, r, apiEnv.secretKeys["DATABASE_URL"]); ok {
		checkServerURL(t, r, "DATABASE_URL", dbURL, []string{"postgres"}, "postgresql")
	}
	if jwt, ok := secretValue(t, r, apiEnv.secretKeys["JWT_SECRET"]); ok && len(jwt) < 32 {
		t.Errorf("JWT_SECRET is %d bytes, the API needs at least 32", len(jwt))
	}
}

// checkServerURL checks a connection URL from the Secret: it parses, and
// when the chart bundles the server it points at the bundle's Service.
func checkServerURL(t *testing.T, r release, what, raw string, schemes []string, bundle string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Errorf("%s does not parse: %v", what, err)
		return
	}
	if !slices.Contains(schemes, u.Scheme) || u.Hostname() == "" || u.Port() == "" {
		t.Errorf("%s = %s: want scheme %v, a host and a port", what, u.Redacted(), schemes)
	}
	if strings.HasPrefix(what, "DATABASE") && strings.Trim(u.Path, "/") == "" {
		t.Errorf("%s = %s: no database name", what, u.Redacted())
	}
	svcName := fmt.Sprintf("%s-stockquote-%s", testRelease, bundle)
	o, bundled := r.find("Service", svcName)
	if !bundled {
		return
	}
	if u.Hostname() != svcName {
		t.Errorf("%s host = %s, want the bundled Service %s", what, u.Hostname(), svcName)
	}
	svc := o.obj.(*corev1.Service)
	if len(svc.Spec.Ports) == 0 || fmt.Sprint(svc.Spec.Ports[0].Port) != u.Port() {
		t.Errorf("%s port = %s, bundled Service %s ports %+v", what, u.Port(), svcName, svc.Spec.Ports)
	}
	if _, ok := u.User.Password(); !ok {
		t.Errorf("%s: no password for the bundled server", what)
	}
}

func checkMigration(t *testing.T, r release, vals map[string]any) {
	t.Helper()
	name := testRelease + "-stockquote-migrate"
	o, ok := r.find("Job", name)
	if !ok {
		t.Fatalf("migration Job %s is not rendered", name)
	}
	job := o.obj.(*batchv1.Job)
	bundledDB := false
	if _, ok := r.find("StatefulSet", testRelease+"-stockquote-postgresql"); ok {
		bundledDB = true
	}
	want := "pre-install,pre-upgrade"
	if bundledDB {
		want = "post-install,pre-upgrade" // the bundled database does not exist before install
	}
	if o.hook != want {
		t.Errorf("Job %s: helm.sh/hook = %q, want %q", name, o.hook, want)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"migrate"}) || len(c.Command) != 0 {
		t.Errorf("Job %s: command %v args %v, want the image's entrypoint with args [migrate]", name, c.Command, c.Args)
	}
	if api := appDeployment(t, r, "api"); c.Image != api.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("Job %s: image %s, want the API's image", name, c.Image)
	}
	e := containerEnv(t, r, c)
	ref, ok := e.secretKeys["DATABASE_URL"]
	if !ok {
		t.Fatalf("Job %s: DATABASE_URL does not come from a Secret", name)
	}
	secretName, _, _ := strings.Cut(ref, "/")
	if s, rendered := r.find("Secret", secretName); rendered {
		// The release's own Secret does not exist yet when a pre-install hook
		// runs: the Job's Secret must be a hook of the same phase, created first.
		if s.hook != o.hook {
			t.Errorf("Job %s reads Secret %s with hook %q, want hook %q", name, secretName, s.hook, o.hook)
		}
		apiRef := containerEnv(t, r, appDeployment(t, r, "api").Spec.Template.Spec.Containers[0]).secretKeys["DATABASE_URL"]
		got, _ := secretValue(t, r, ref)
		want, _ := secretValue(t, r, apiRef)
		if got != want {
			t.Errorf("Job %s: DATABASE_URL differs from the API's", name)
		}
	}
}

func checkIngress(t *testing.T, r release) {
	t.Helper()
	for _, o := range r.all("Ingress") {
		ing := o.obj.(*networkingv1.Ingress)
		for _, rule := range ing.Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				so, ok := r.find("Service", b.Name)
				if !ok {
					t.Errorf("Ingress %s: backend Service %s is not rendered", o.name, b.Name)
					continue
				}
				svc := so.obj.(*corev1.Service)
				if !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == b.Port.Name }) {
					t.Errorf("Ingress %s: Service %s has no port %q", o.name, b.Name, b.Port.Name)
				}
				if !strings.HasSuffix(b.Name, "-api") {
					t.Errorf("Ingress %s: routes to %s; only the API is public", o.name, b.Name)
				}
			}
		}
	}
}

func checkNotes(t *testing.T, r release) {
	t.Helper()
	for _, want := range []string{"/api/v1/login", "Authorization: Bearer", "user add -name admin -superuser", testRelease + "-stockquote-api", "helm test " + testRelease} {
		if !strings.Contains(r.notes, want) {
			t.Errorf("NOTES.txt does not mention %q:\n%s", want, r.notes)
		}
	}
}

// TestChartSecretsStable checks that explicit secrets land in the Secret
// verbatim (percent-encoded inside URLs) and nothing secret is in a ConfigMap.
func TestChartSecretsStable(t *testing.T) {
	r := mustRender(t, allOn())
	s, ok := r.find("Secret", testRelease+"-stockquote")
	if !ok {
		t.Fatal("release Secret not rendered")
	}
	data := s.obj.(*corev1.Secret).Data
	u, err := url.Parse(string(data["DATABASE_URL"]))
	if err != nil {
		t.Fatal(err)
	}
	if pw, _ := u.User.Password(); pw != "pg pass+/?" {
		t.Errorf("DATABASE_URL password = %q, want the configured one round-tripped", pw)
	}
	if got := string(data["JWT_SECRET"]); got != strings.Repeat("k", 40) {
		t.Errorf("JWT_SECRET = %q, want the configured one", got)
	}
	for _, o := range r.all("ConfigMap") {
		for k, v := range o.obj.(*corev1.ConfigMap).Data {
			if strings.Contains(v, "pg pass") || strings.Contains(v, strings.Repeat("k", 40)) || strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") {
				t.Errorf("ConfigMap %s key %s holds a secret", o.name, k)
			}
		}
	}
}

// TestDecodeStrictRejects proves the strict decoding catches what helm
// lint lets through.
func TestDecodeStrictRejects(t *testing.T) {
	tests := map[string]string{
		"misspelled field": "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n",
		"wrong case":       "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {Selector: {a: b}}\n",
		"duplicate field":  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\ndata: {c: d}\n",
		"wrong type":       "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: two}\n",
		"unknown kind":     "apiVersion: v1\nkind: Servce\nmetadata: {name: x}\n",
		"old hpa version":  "apiVersion: autoscaling/v1\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeStrict(doc); err == nil {
				t.Errorf("decodeStrict accepted:\n%s", doc)
			}
		})
	}
	if _, err := decodeStrict("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selector: {a: b}}\n"); err != nil {
		t.Errorf("decodeStrict rejected a valid Service: %v", err)
	}
}
