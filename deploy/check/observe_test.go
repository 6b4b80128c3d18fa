package check

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestChartMetrics checks the opt-in monitoring objects against the
// objects they point at: each ServiceMonitor selects exactly one Service,
// whose named port exists and reaches a container port of its workload;
// the scrape annotations name that container port; the dashboard
// ConfigMap carries the sidecar label and the dashboard file unchanged.
func TestChartMetrics(t *testing.T) {
	r := mustRender(t, allOn())

	sms := r.all("ServiceMonitor")
	if len(sms) != 2 {
		t.Fatalf("all-on: %d ServiceMonitors, want 2 (api, worker)", len(sms))
	}
	for _, o := range sms {
		sm := o.obj.(*serviceMonitor)
		if sm.Labels["release"] != "prom" {
			t.Errorf("ServiceMonitor %s: labels %v lack metrics.serviceMonitor.labels", o.name, sm.Labels)
		}
		sel := mustSelector(t, &sm.Spec.Selector)
		var matched []*corev1.Service
		for _, so := range r.all("Service") {
			svc := so.obj.(*corev1.Service)
			if sel.Matches(labels.Set(svc.Labels)) {
				matched = append(matched, svc)
			}
		}
		if len(matched) != 1 {
			t.Errorf("ServiceMonitor %s: selector %v matches %d Services, want 1", o.name, sel, len(matched))
			continue
		}
		svc := matched[0]
		if len(sm.Spec.Endpoints) == 0 {
			t.Errorf("ServiceMonitor %s: no endpoints", o.name)
		}
		for _, ep := range sm.Spec.Endpoints {
			if ep.Path != "/metrics" || ep.Interval == "" {
				t.Errorf("ServiceMonitor %s: endpoint %+v, want path /metrics and an interval", o.name, ep)
			}
			var found bool
			for _, p := range svc.Spec.Ports {
				if p.Name != ep.Port {
					continue
				}
				found = true
				ws := selected(t, r, labels.SelectorFromSet(svc.Spec.Selector))
				if len(ws) != 1 {
					t.Errorf("Service %s selects %d workloads", svc.Name, len(ws))
					continue
				}
				if _, ok := containerPort(ws[0].pod.Spec, p.TargetPort); !ok {
					t.Errorf("ServiceMonitor %s: port %s -> %s is not a container port of %s", o.name, ep.Port, p.TargetPort.String(), ws[0].name)
				}
			}
			if !found {
				t.Errorf("ServiceMonitor %s: Service %s has no port named %q", o.name, svc.Name, ep.Port)
			}
		}
	}

	annotated := 0
	for _, o := range r.all("Deployment") {
		d := o.obj.(*appsv1.Deployment)
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] == "" {
			continue // bundles carry none
		}
		annotated++
		port, err := strconv.Atoi(ann["prometheus.io/port"])
		if err != nil || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/scrape"] != "true" {
			t.Errorf("Deployment %s: scrape annotations %v", o.name, ann)
			continue
		}
		if _, ok := containerPort(d.Spec.Template.Spec, intstr.FromInt32(int32(port))); !ok {
			t.Errorf("Deployment %s: prometheus.io/port %d is not a container port", o.name, port)
		}
	}
	if annotated != 2 {
		t.Errorf("all-on: %d Deployments with scrape annotations, want 2 (api, worker)", annotated)
	}

	want, err := os.ReadFile(filepath.Join(chartDir, "dashboards", "stockquote.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash *corev1.ConfigMap
	for _, o := range r.all("ConfigMap") {
		if cm := o.obj.(*corev1.ConfigMap); cm.Labels["grafana_dashboard"] == "1" {
			dash = cm
		}
	}
	if dash == nil {
		t.Fatal("all-on: no ConfigMap labelled grafana_dashboard=1")
	}
	if dash.Annotations["grafana_folder"] != "Stockquote" {
		t.Errorf("dashboard annotations = %v, want grafana_folder", dash.Annotations)
	}
	got := dash.Data["stockquote.json"]
	var a, b any
	if err := json.Unmarshal([]byte(got), &a); err != nil {
		t.Fatalf("dashboard ConfigMap: not JSON: %v", err)
	}
	if err := json.Unmarshal(want, &b); err != nil {
		t.Fatalf("dashboards/stockquote.json: %v", err)
	}
	ga, _ := json.Marshal(a)
	gb, _ := json.Marshal(b)
	if string(ga) != string(gb) {
		t.Error("dashboard ConfigMap differs from dashboards/stockquote.json")
	}
	for _, o := range mustRender(t, nil).all("ConfigMap") {
		if o.obj.(*corev1.ConfigMap).Labels["grafana_dashboard"] != "" {
			t.Errorf("defaults render the dashboard ConfigMap %s", o.name)
		}
	}
}
