package check

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// tunedValues sets every runtime setting the chart exposes away from its
// default, with /metrics on its own port and the monitoring objects on.
func tunedValues() map[string]any {
	v := allOn()
	v["api"] = map[string]any{
		"trustedProxies": []any{"10.244.0.0/16", "fd00::1"},
		"metricsAddr":    ":9091",
		"login": map[string]any{
			"accountBurst": 3, "accountInterval": "2m", "clientBurst": 50, "clientInterval": "1s", "maxTracked": 1024,
		},
		"stockQuota":   map[string]any{"requestsPerMinute": 600, "missesPerMinute": 0},
		"logFormat":    "text",
		"otlpEndpoint": "http://otel-collector.observability:4318",
		"extraEnv": []any{
			map[string]any{"name": "HTTP_READ_HEADER_TIMEOUT", "value": "10s"},
			map[string]any{"name": "DEBUG_ADDR", "value": "127.0.0.1:6060"},
		},
	}
	v["worker"] = map[string]any{
		"logFormat":    "text",
		"otlpEndpoint": "http://otel-collector.observability:4318",
		"extraEnv":     []any{map[string]any{"name": "QUOTE_CACHE_TTL", "value": "5s"}},
	}
	return v
}

// TestChartSettings checks that the chart's typed values and extraEnv
// reach the programs under the names they read (checkEnv rejects any
// other name), with the values set.
func TestChartSettings(t *testing.T) {
	vals := tunedValues()
	r := mustRender(t, vals)
	checkAppWiring(t, r, vals)
	checkServices(t, r)
	checkNetworkPolicies(t, r)
	checkIngress(t, r)

	apiEnv := containerEnv(t, r, appDeployment(t, r, "api").Spec.Template.Spec.Containers[0])
	workerEnv := containerEnv(t, r, appDeployment(t, r, "worker").Spec.Template.Spec.Containers[0])
	for _, tc := range []struct {
		who  string
		e    env
		name string
		want string
	}{
		{"api", apiEnv, "TRUSTED_PROXIES", "10.244.0.0/16,fd00::1"},
		{"api", apiEnv, "METRICS_ADDR", ":9091"},
		{"api", apiEnv, "LOGIN_ACCOUNT_BURST", "3"},
		{"api", apiEnv, "LOGIN_ACCOUNT_INTERVAL", "2m"},
		{"api", apiEnv, "LOGIN_CLIENT_BURST", "50"},
		{"api", apiEnv, "LOGIN_CLIENT_INTERVAL", "1s"},
		{"api", apiEnv, "LOGIN_MAX_TRACKED", "1024"},
		{"api", apiEnv, "STOCK_QUOTA_REQUESTS_PER_MINUTE", "600"},
		{"api", apiEnv, "STOCK_QUOTA_MISSES_PER_MINUTE", "0"},
		{"api", apiEnv, "LOG_FORMAT", "text"},
		{"api", apiEnv, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability:4318"},
		{"api", apiEnv, "HTTP_READ_HEADER_TIMEOUT", "10s"},
		{"api", apiEnv, "DEBUG_ADDR", "127.0.0.1:6060"},
		{"worker", workerEnv, "LOG_FORMAT", "text"},
		{"worker", workerEnv, "OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability:4318"},
		{"worker", workerEnv, "QUOTE_CACHE_TTL", "5s"},
	} {
		if got, ok := tc.e.values[tc.name]; !ok || got != tc.want {
			t.Errorf("%s env %s = %q (set: %v), want %q", tc.who, tc.name, got, ok, tc.want)
		}
	}

	// Defaults: the programs' own defaults apply; /metrics stays on the API port.
	def := mustRender(t, nil)
	defAPI := containerEnv(t, def, appDeployment(t, def, "api").Spec.Template.Spec.Containers[0])
	for name, want := range map[string]string{
		"LOGIN_ACCOUNT_BURST": "5", "LOGIN_ACCOUNT_INTERVAL": "1m", "LOGIN_CLIENT_BURST": "20",
		"LOGIN_CLIENT_INTERVAL": "6s", "LOGIN_MAX_TRACKED": "65536", "LOG_FORMAT": "json",
		"STOCK_QUOTA_REQUESTS_PER_MINUTE": "120", "STOCK_QUOTA_MISSES_PER_MINUTE": "30",
	} {
		if got := defAPI.values[name]; got != want {
			t.Errorf("defaults: api env %s = %q, want the program's default %q", name, got, want)
		}
	}
	// /metrics is kept off the public port by default (issue 17).
	if got := defAPI.values["METRICS_ADDR"]; got != ":9090" {
		t.Errorf("defaults: api env METRICS_ADDR = %q, want :9090 (a separate listener)", got)
	}
	for _, name := range []string{"TRUSTED_PROXIES", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if v, ok := defAPI.values[name]; ok {
			t.Errorf("defaults: api env %s = %q, want it unset", name, v)
		}
	}
}

// scrapePort returns the container port the API's ServiceMonitor and
// scrape annotations point at, failing when they disagree.
func scrapePort(t *testing.T, r release) int32 {
	t.Helper()
	api := appDeployment(t, r, "api")
	o, ok := r.find("ServiceMonitor", api.Name)
	if !ok {
		t.Fatalf("no ServiceMonitor %s", api.Name)
	}
	sm := o.obj.(*serviceMonitor)
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor %s: %d endpoints, want 1", api.Name, len(sm.Spec.Endpoints))
	}
	so, ok := r.find("Service", api.Name)
	if !ok {
		t.Fatalf("no Service %s", api.Name)
	}
	svc := so.obj.(*corev1.Service)
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port })
	if i < 0 {
		t.Fatalf("ServiceMonitor port %q is not a port of Service %s", sm.Spec.Endpoints[0].Port, svc.Name)
	}
	monitored, ok := containerPort(api.Spec.Template.Spec, svc.Spec.Ports[i].TargetPort)
	if !ok {
		t.Fatalf("Service %s port %s targets %s, not a container port", svc.Name, svc.Spec.Ports[i].Name, svc.Spec.Ports[i].TargetPort.String())
	}
	annotated, err := strconv.Atoi(api.Spec.Template.Annotations["prometheus.io/port"])
	if err != nil {
		t.Fatalf("prometheus.io/port annotation: %v", err)
	}
	if int32(annotated) != monitored {
		t.Errorf("prometheus.io/port %d, ServiceMonitor scrapes %d: they must agree", annotated, monitored)
	}
	return monitored
}

// TestChartMetricsPort checks api.metricsAddr: the scrapers point at the
// container port that serves /metrics (METRICS_ADDR's port, or the API
// port without it), the ingress never routes to it, and the network
// policy lets scrapers reach it.
func TestChartMetricsPort(t *testing.T) {
	on := allOn()
	if got := scrapePort(t, mustRender(t, on)); got != 9090 {
		t.Errorf("by default: scraped port %d, want the separate metrics port 9090", got)
	}
	on["api"] = map[string]any{"metricsAddr": ""}
	if got := scrapePort(t, mustRender(t, on)); got != 8080 {
		t.Errorf("with api.metricsAddr empty: scraped port %d, want the API port 8080 (METRICS_ADDR unset serves /metrics there)", got)
	}

	r := mustRender(t, tunedValues())
	api := appDeployment(t, r, "api")
	e := containerEnv(t, r, api.Spec.Template.Spec.Containers[0])
	_, portStr, err := net.SplitHostPort(e.values["METRICS_ADDR"])
	if err != nil {
		t.Fatalf("METRICS_ADDR %q: %v", e.values["METRICS_ADDR"], err)
	}
	served, _ := strconv.Atoi(portStr)
	if got := scrapePort(t, r); got != int32(served) {
		t.Errorf("scraped port %d, but METRICS_ADDR=%s serves /metrics on %d", got, e.values["METRICS_ADDR"], served)
	}
	if p, ok := containerPort(api.Spec.Template.Spec, intstr.FromString("http")); !ok || p == int32(served) {
		t.Errorf("http port %d must differ from the metrics port %d", p, served)
	}
	for _, o := range r.all("Ingress") {
		for _, rule := range o.obj.(*networkingv1.Ingress).Spec.Rules {
			for _, p := range rule.HTTP.Paths {
				if p.Backend.Service.Port.Name != "http" {
					t.Errorf("Ingress %s routes to port %q; only http may be public", o.name, p.Backend.Service.Port.Name)
				}
			}
		}
	}
	np, ok := r.find("NetworkPolicy", api.Name)
	if !ok {
		t.Fatalf("no NetworkPolicy %s", api.Name)
	}
	var allowed bool
	for _, rule := range np.obj.(*networkingv1.NetworkPolicy).Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port != nil {
				if got, ok := containerPort(api.Spec.Template.Spec, *p.Port); ok && got == int32(served) {
					allowed = true
				}
			}
		}
	}
	if !allowed {
		t.Errorf("NetworkPolicy %s does not admit the metrics port %d", api.Name, served)
	}
}

// TestChartSettingsRejected checks the schema and template guards on the
// new settings.
func TestChartSettingsRejected(t *testing.T) {
	checkRenderRejects(t, map[string]renderReject{
		"trusted proxy not an address": {map[string]any{"api": map[string]any{"trustedProxies": []any{"ingress-nginx"}}}, "schema"},
		"trusted proxies as a string":  {map[string]any{"api": map[string]any{"trustedProxies": "10.0.0.0/8"}}, "schema"},
		"metrics addr without port":    {map[string]any{"api": map[string]any{"metricsAddr": "9090"}}, "schema"},
		"metrics addr on the api port": {map[string]any{"api": map[string]any{"metricsAddr": ":8080"}}, "metricsAddr"},
		"metrics port out of range":    {map[string]any{"api": map[string]any{"metricsAddr": ":70000"}}, "metricsAddr"},
		"unknown login key":            {map[string]any{"api": map[string]any{"login": map[string]any{"burst": 3}}}, "schema"},
		"login burst zero":             {map[string]any{"api": map[string]any{"login": map[string]any{"accountBurst": 0}}}, "schema"},
		"login interval not duration":  {map[string]any{"api": map[string]any{"login": map[string]any{"clientInterval": "6"}}}, "schema"},
		"bad log format":               {map[string]any{"worker": map[string]any{"logFormat": "xml"}}, "schema"},
		"otel endpoint without scheme": {map[string]any{"api": map[string]any{"otlpEndpoint": "collector:4318"}}, "schema"},
		"extra env without value":      {map[string]any{"api": map[string]any{"extraEnv": []any{map[string]any{"name": "X_Y"}}}}, "schema"},
		"extra env bad name":           {map[string]any{"worker": map[string]any{"extraEnv": []any{map[string]any{"name": "A-B", "value": "1"}}}}, "schema"},
		"extra env unknown field":      {map[string]any{"worker": map[string]any{"extraEnv": []any{map[string]any{"name": "A", "val": "1"}}}}, "schema"},
	})
}

// renderReject is values the chart must refuse, and a substring of the
// error it must give.
type renderReject struct {
	vals map[string]any
	want string
}

// checkRenderRejects renders each case and wants it refused with its error.
func checkRenderRejects(t *testing.T, cases map[string]renderReject) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, tc.vals)
			if err == nil {
				t.Fatalf("render with %v succeeded, want an error", tc.vals)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("render error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
