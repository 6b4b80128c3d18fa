// Pins the modules whose CustomResourceDefinitions make test-live applies
// (no code is built from it): the Prometheus Operator's ServiceMonitor.
// ArgoCD's CRDs come from the argocheck module's argo-cd.
module github.com/stockquote/stockquote/deploy/live/tools/crds

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
