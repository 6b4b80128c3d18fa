// Pins the modules whose CustomResourceDefinitions make test-live applies
// (no code is built from it, only `go mod download`): the Prometheus
// Operator's ServiceMonitor, and ArgoCD's Application and AppProject, whose
// structural schemas make the API server's strict field validation check
// deploy/argocd as argo-cd's own types would.
module github.com/stockquote/stockquote/deploy/live/tools/crds

go 1.26.0

require (
	github.com/argoproj/argo-cd/v2 v2.14.21
	github.com/prometheus-operator/prometheus-operator v0.85.0
)
