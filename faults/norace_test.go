//go:build integration && !race

package faults

const raceEnabled = false
