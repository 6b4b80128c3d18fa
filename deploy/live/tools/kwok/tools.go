//go:build tools

// Package tools pins the commands deploy/live/run.sh builds; never compiled.
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
