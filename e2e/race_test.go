//go:build integration && race

package e2e

// raceEnabled builds the programs under test with -race when the suite itself runs with it.
const raceEnabled = true
