package check

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// clusterValues are the values for an external RabbitMQ cluster: three
// nodes (one with its own port), TLS, the queue type left to the chart's
// default (quorum), the worker also scaled on queue depth, hard pod
// anti-affinity for the API and a strict spread for the worker.
func clusterValues() map[string]any {
	return map[string]any{
		"amqp": map[string]any{
			"hosts":    []any{"rabbitmq-0.rabbitmq-nodes", "rabbitmq-1.rabbitmq-nodes", "rabbitmq-2.rabbitmq-nodes:5681"},
			"port":     5671,
			"password": "p@ss,word",
			"vhost":    "quotes",
			"tls":      true,
		},
		"api": map[string]any{"podAntiAffinity": "hard"},
		"worker": map[string]any{
			"autoscaling": map[string]any{"enabled": true, "minReplicas": 3, "maxReplicas": 12, "targetCPUUtilizationPercentage": 70,
				"queueDepth": map[string]any{"enabled": true, "metricName": "rabbitmq_queue_messages_ready",
					"selector": map[string]any{"queue": "stockrpc.quote.v1"}, "targetPerPod": "32"}},
			"topologySpread": map[string]any{"topologyKeys": []any{"topology.kubernetes.io/zone"}, "maxSkew": 1, "whenUnsatisfiable": "DoNotSchedule"},
		},
	}
}

// wantQueueType is the RPC_QUEUE_TYPE the chart should give both programs
// for vals: rpcQueueType, else classic with the bundled broker, else quorum.
func wantQueueType(vals map[string]any) string {
	if v, ok := vals["rpcQueueType"].(string); ok && v != "" {
		return v
	}
	if b, ok := vals["bundled"].(map[string]any); ok {
		if mq, ok := b["rabbitmq"].(map[string]any); ok && mq["enabled"] == true {
			return "classic"
		}
	}
	return "quorum"
}

// checkQueueType: both programs get the same RPC_QUEUE_TYPE, the one the
// values call for.
func checkQueueType(t *testing.T, r release, vals map[string]any) {
	t.Helper()
	apiEnv := containerEnv(t, r, appDeployment(t, r, "api").Spec.Template.Spec.Containers[0])
	workerEnv := containerEnv(t, r, appDeployment(t, r, "worker").Spec.Template.Spec.Containers[0])
	a, w := apiEnv.values["RPC_QUEUE_TYPE"], workerEnv.values["RPC_QUEUE_TYPE"]
	if a != w {
		t.Errorf("API RPC_QUEUE_TYPE = %q, worker %q: they must match", a, w)
	}
	if want := wantQueueType(vals); a != want {
		t.Errorf("RPC_QUEUE_TYPE = %q, want %q", a, want)
	}
}

// checkScheduling: every spread constraint and anti-affinity term of an
// app Deployment selects exactly that Deployment's pods.
func checkScheduling(t *testing.T, r release) {
	t.Helper()
	for _, component := range []string{"api", "worker"} {
		d := appDeployment(t, r, component)
		own := func(what string, ls *metav1.LabelSelector) {
			t.Helper()
			if ws := selected(t, r, mustSelector(t, ls)); len(ws) != 1 || ws[0].name != d.Name {
				t.Errorf("Deployment %s: %s selects %d workloads, want only its own pods", d.Name, what, len(ws))
			}
		}
		spec := d.Spec.Template.Spec
		for _, c := range spec.TopologySpreadConstraints {
			own("topology spread over "+c.TopologyKey, c.LabelSelector)
		}
		if a := spec.Affinity; a != nil && a.PodAntiAffinity != nil {
			for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
				own("required anti-affinity", term.LabelSelector)
			}
			for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				own("preferred anti-affinity", w.PodAffinityTerm.LabelSelector)
			}
		}
	}
}

// TestChartCluster renders the values for an external RabbitMQ cluster
// and checks what they are for.
func TestChartCluster(t *testing.T) {
	vals := clusterValues()
	r := mustRender(t, vals)

	apiEnv := containerEnv(t, r, appDeployment(t, r, "api").Spec.Template.Spec.Containers[0])
	raw, ok := secretValue(t, r, apiEnv.secretKeys["AMQP_URL"])
	if !ok {
		t.Fatal("no AMQP_URL in the rendered Secret")
	}
	urls := strings.Split(raw, ",")
	want := []string{"rabbitmq-0.rabbitmq-nodes:5671", "rabbitmq-1.rabbitmq-nodes:5671", "rabbitmq-2.rabbitmq-nodes:5681"}
	if len(urls) != len(want) {
		t.Fatalf("AMQP_URL has %d URLs, want one per node (%d)", len(urls), len(want))
	}
	for i, u := range urls {
		if !strings.HasPrefix(u, "amqps://stockquote:p%40ss%2Cword@"+want[i]+"/quotes") {
			t.Errorf("AMQP_URL[%d] = %q, want amqps to %s, the password escaped (a comma would split the list)", i, u, want[i])
		}
	}
	if got := apiEnv.values["RPC_QUEUE_TYPE"]; got != "quorum" {
		t.Errorf("RPC_QUEUE_TYPE = %q, want quorum for an external broker", got)
	}

	api := appDeployment(t, r, "api").Spec.Template.Spec
	if a := api.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Errorf("API: podAntiAffinity hard renders no required anti-affinity: %+v", a)
	}
	worker := appDeployment(t, r, "worker").Spec.Template.Spec
	if c := worker.TopologySpreadConstraints; len(c) != 1 || c[0].TopologyKey != "topology.kubernetes.io/zone" || c[0].WhenUnsatisfiable != "DoNotSchedule" {
		t.Errorf("worker spread constraints = %+v, want one over zones, DoNotSchedule", c)
	}
	o, ok := r.find("HorizontalPodAutoscaler", testRelease+"-stockquote-worker")
	if !ok {
		t.Fatal("no worker HPA")
	}
	var ext *autoscalingv2.ExternalMetricSource
	for _, m := range o.obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec.Metrics {
		if m.Type == autoscalingv2.ExternalMetricSourceType {
			ext = m.External
		}
	}
	switch {
	case ext == nil:
		t.Error("worker HPA: no External queue-depth metric")
	case ext.Metric.Name != "rabbitmq_queue_messages_ready" || ext.Metric.Selector == nil || ext.Metric.Selector.MatchLabels["queue"] != "stockrpc.quote.v1":
		t.Errorf("worker HPA metric = %+v, want rabbitmq_queue_messages_ready of the request queue", ext.Metric)
	case ext.Target.Type != autoscalingv2.AverageValueMetricType || ext.Target.AverageValue == nil || ext.Target.AverageValue.String() != "32":
		t.Errorf("worker HPA target = %+v, want AverageValue 32 (per pod)", ext.Target)
	}
	if o, ok := r.find("HorizontalPodAutoscaler", testRelease+"-stockquote-api"); ok {
		for _, m := range o.obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec.Metrics {
			if m.Type != autoscalingv2.ResourceMetricSourceType {
				t.Errorf("API HPA has a %s metric; it scales on CPU", m.Type)
			}
		}
	}
}

// TestChartDefaultsSpreadPods: by default both Deployments prefer other
// nodes and spread over nodes and zones without blocking scheduling.
func TestChartDefaultsSpreadPods(t *testing.T) {
	r := mustRender(t, nil)
	for _, component := range []string{"api", "worker"} {
		var d *appsv1.Deployment = appDeployment(t, r, component)
		spec := d.Spec.Template.Spec
		if a := spec.Affinity; a == nil || a.PodAntiAffinity == nil || len(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
			t.Errorf("%s: no preferred pod anti-affinity by default", d.Name)
		}
		keys := map[string]bool{}
		for _, c := range spec.TopologySpreadConstraints {
			keys[c.TopologyKey] = true
			if c.WhenUnsatisfiable != "ScheduleAnyway" {
				t.Errorf("%s: spread over %s is %s by default, want ScheduleAnyway", d.Name, c.TopologyKey, c.WhenUnsatisfiable)
			}
		}
		if !keys["kubernetes.io/hostname"] || !keys["topology.kubernetes.io/zone"] {
			t.Errorf("%s: spread keys %v, want hostname and zone", d.Name, keys)
		}
	}
}
