//go:build tools

// Package tools pins the commands deploy/live/run.sh builds; never compiled.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
