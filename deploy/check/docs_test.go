package check

import (
	"regexp"
	"slices"
	"testing"
)

// documentedSetting is a row of a settings table in docs/configuration.md.
var documentedSetting = regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]+)` \\|")

// TestConfigurationDocumented: docs/configuration.md has a row for every
// setting either program reads, and none for a setting neither reads, so
// the one page that lists them stays true.
func TestConfigurationDocumented(t *testing.T) {
	documented := map[string]bool{}
	for _, m := range documentedSetting.FindAllStringSubmatch(readFile(t, "docs/configuration.md"), -1) {
		documented[m[1]] = true
	}
	read := map[string]bool{}
	for _, name := range goRuntimeSettings {
		read[name] = true
	}
	for _, p := range []program{apiProgram, workerProgram} {
		for name := range p.settings(t) {
			if !slices.Contains(p.removed, name) {
				read[name] = true
			}
		}
	}
	for _, name := range sortedKeys(read) {
		if !documented[name] {
			t.Errorf("docs/configuration.md has no row for %s, which a program reads", name)
		}
	}
	for _, name := range sortedKeys(documented) {
		if !read[name] {
			t.Errorf("docs/configuration.md documents %s, which no program reads", name)
		}
	}
}
