//go:build tools

// Package tools pins the Kubernetes control-plane commands that
// deploy/live/run.sh builds; the file is never compiled.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
