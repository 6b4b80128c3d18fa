package main

import (
	"fmt"
	"strings"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

// report renders the rows as Markdown, one table per group.
func (b *bench) report() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Machine: %s\n\n", machine())
	fmt.Fprintf(&sb, "Settings: %d history rows (%d for the /history user), %s per scenario, %s per ceiling, stock service WORKERS=%d, QUOTE_COALESCE=%s (except the rows that say otherwise), LOG_LEVEL=%s, GOMEMLIMIT API %s, stock service %s (production's: %s, %s).\n",
		b.o.rows, b.o.userRows, b.o.duration, b.o.ceilingDuration, b.o.workers,
		lastValue(b.o.apiExtraEnv, "QUOTE_COALESCE", "on"), b.o.logLevel,
		lastValue(b.o.apiExtraEnv, "GOMEMLIMIT", apiGoMemLimit), lastValue(b.o.workerExtraEnv, "GOMEMLIMIT", workerGoMemLimit),
		apiGoMemLimit, workerGoMemLimit)
	if len(b.o.apiExtraEnv)+len(b.o.workerExtraEnv) > 0 {
		fmt.Fprintf(&sb, "Extra environment: API %v, stock service %v.\n", b.o.apiExtraEnv, b.o.workerExtraEnv)
	}
	if b.o.rootB == "" && b.o.want("stock") {
		sb.WriteString("Ratios to the composed ceiling use, stage by stage, the mean of the ceilings measured before and after the `/stock` scenarios at that concurrency (both tables are below).\n")
	}
	if b.o.rootB == "" && b.o.want("many") {
		sb.WriteString("The many-symbol rows' ceiling is the minimal chain (tests/bench/minimal: Gin + JWT -> one RPC -> worker -> stooq -> GORM INSERT, none of the services' tricks), the mean of its runs before and after the pair at that concurrency.\n")
	}
	group := ""
	for _, r := range b.rows {
		if r.group != group {
			group = r.group
			fmt.Fprintf(&sb, "\n### %s\n\n", group)
			if strings.HasPrefix(group, "ceilings") {
				sb.WriteString("| stage | clients | ops/s | p50 ms | p99 ms | p99.9 ms | errors | machine CPU % (bench = this process: driver and bare server) |\n|---|---:|---:|---:|---:|---:|---:|---|\n")
			} else {
				sb.WriteString("| scenario | clients | req/s | ceiling req/s | ratio | p50 ms | p99 ms | p99.9 ms | errors | CPU % | peak RSS MB | rest of machine, CPU % | notes |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|---|\n")
			}
		}
		if strings.HasPrefix(group, "ceilings") {
			fmt.Fprintf(&sb, "| %s | %d | %.0f | %s | %s | %s | %d | %s |\n", r.name, r.clients, r.res.throughput, ms(r.res.p50), ms(r.res.p99), ms(r.res.p999), r.res.errors, machineCell(r.machine, "bench"))
			continue
		}
		ceiling, ratio := "-", "-"
		if r.ceiling > 0 {
			ceiling = fmt.Sprintf("%.0f (%s)", r.ceiling, r.ceilName)
			ratio = fmt.Sprintf("%.0f%%", 100*r.res.throughput/r.ceiling)
		}
		var cpu, mem []string
		for _, p := range r.procs {
			cpu = append(cpu, fmt.Sprintf("%s %.0f", p.name, p.cpuPct))
			mem = append(mem, fmt.Sprintf("%s %.0f", p.name, p.peakMB))
		}
		errs := fmt.Sprint(r.res.errors)
		if r.res.errors > 0 {
			errs += " (" + r.res.codes + ")"
		}
		fmt.Fprintf(&sb, "| %s | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.name, r.clients, r.res.throughput, ceiling, ratio, ms(r.res.p50), ms(r.res.p99), ms(r.res.p999), errs,
			strings.Join(cpu, ", "), strings.Join(mem, ", "), machineCell(r.machine, "load tool"), r.note)
	}
	if len(b.summary) > 0 {
		fmt.Fprintf(&sb, "\n%s\n", strings.Join(b.summary, "\n\n"))
	}
	if b.fullCount > 0 {
		fmt.Fprintf(&sb, "\nThe /stats query without stock_counts (GROUP BY over history, index-only scan) took %s once on the idle system.\n", b.fullCount.Round(time.Millisecond))
	}
	if len(b.failures) == 0 {
		sb.WriteString("\nCorrectness: every /stock answer has its history row, no unexpected error status, /stats equals a full count of history, stooq asked at most once per symbol per cache period.\n")
	} else {
		fmt.Fprintf(&sb, "\nCorrectness FAILURES:\n- %s\n", strings.Join(b.failures, "\n- "))
	}
	return sb.String()
}

// machineCell renders the rest of the machine's CPU; self names the
// benchmark process's share.
func machineCell(m []procUse, self string) string {
	var out []string
	for _, p := range m {
		switch p.name {
		case "idle":
			out = append(out, fmt.Sprintf("idle %.0f%% of all cores", p.cpuPct))
		case "self":
			out = append(out, fmt.Sprintf("%s %.0f", self, p.cpuPct))
		default:
			out = append(out, fmt.Sprintf("%s %.0f", p.name, p.cpuPct))
		}
	}
	return strings.Join(out, ", ")
}
