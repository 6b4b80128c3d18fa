package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// cpuGroups are the processes outside the two programs that share the
// machine during a scenario, by command name. Their CPU is reported next
// to the programs' so a reader sees where the machine's time went.
var cpuGroups = []struct{ label, comm string }{
	{"postgres", "postgres"},
	{"rabbitmq", "beam.smp"},
	{"fakestooq", "fakestooq"},
}

// machineSample is CPU time so far per group, the benchmark's own (the
// load tool runs in this process), and the machine's idle time.
type machineSample struct {
	groups map[string]time.Duration
	self   time.Duration
	idle   time.Duration
	total  time.Duration
}

// sampleMachine reads /proc.
func sampleMachine() machineSample {
	s := machineSample{groups: map[string]time.Duration{}}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if i < 0 || j < i {
			continue
		}
		comm := string(stat[i+1 : j])
		for _, g := range cpuGroups {
			if comm == g.comm {
				s.groups[g.label] += statCPU(stat[j+1:], true)
			}
		}
	}
	if stat, err := os.ReadFile("/proc/self/stat"); err == nil {
		if j := bytes.LastIndexByte(stat, ')'); j >= 0 {
			s.self = statCPU(stat[j+1:], false)
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for k, v := range f[1:] {
			n, _ := strconv.ParseInt(v, 10, 64)
			if k >= 8 { // guest time is already counted in user
				break
			}
			d := time.Duration(n) * time.Second / clockTicks
			s.total += d
			if k == 3 || k == 4 {
				s.idle += d
			}
		}
	}
	return s
}

// statCPU is utime+stime from the fields after a stat line's command
// name, plus cutime+cstime (children reaped so far) when children is set:
// PostgreSQL's postmaster collects the time of every backend that exited,
// so connections closed during a scenario still count.
func statCPU(rest []byte, children bool) time.Duration {
	f := strings.Fields(string(rest))
	if len(f) < 15 {
		return 0
	}
	fields := f[11:13]
	if children {
		fields = f[11:15]
	}
	var ticks int64
	for _, v := range fields {
		n, _ := strconv.ParseInt(v, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// machineUse renders the machine's CPU during a scenario as % of one core.
func machineUse(before, after machineSample, wall time.Duration) []procUse {
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / wall.Seconds() }
	var out []procUse
	for _, g := range cpuGroups {
		out = append(out, procUse{name: g.label, cpuPct: pct(after.groups[g.label] - before.groups[g.label])})
	}
	out = append(out, procUse{name: "self", cpuPct: pct(after.self - before.self)})
	if t := after.total - before.total; t > 0 {
		out = append(out, procUse{name: "idle", cpuPct: 100 * (after.idle - before.idle).Seconds() / t.Seconds()})
	}
	return out
}
