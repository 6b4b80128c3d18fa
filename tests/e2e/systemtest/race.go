//go:build race

package systemtest

// raceEnabled builds the programs under test with -race when the suite
// itself runs with it.
const raceEnabled = true
