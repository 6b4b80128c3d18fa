// Package buildinfo describes the running binary: its version and commit
// (set at link time with -ldflags -X), and the Go version it was built
// with, for --version, the startup log line and the build_info metric.
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Info is what a binary says about itself.
type Info struct {
	Program   string
	Version   string
	Commit    string
	GoVersion string
}

// New returns the Info of program. An empty or "unknown" commit falls
// back to the VCS revision the Go toolchain stamped, when there is one.
func New(program, version, commit string) Info {
	if commit == "" || commit == "unknown" {
		commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					commit = s.Value[:min(len(s.Value), 12)]
				}
			}
		}
	}
	return Info{Program: program, Version: cmp.Or(version, "dev"), Commit: commit, GoVersion: runtime.Version()}
}

// String is the --version line.
func (i Info) String() string {
	return fmt.Sprintf("%s %s (commit %s, %s)", i.Program, i.Version, i.Commit, i.GoVersion)
}
