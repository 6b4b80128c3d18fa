//go:build tools

// Package tools pins the commands deploy/live/run.sh builds; never compiled.
package tools

import (
	_ "github.com/moby/buildkit/frontend/dockerfile/cmd/dockerfile-frontend"
)
