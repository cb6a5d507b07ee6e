package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/internal/bench"
)

// benchProcs is the GOMAXPROCS the benchmarks run with: the reference
// machine's two cores, so that figures from bigger machines compare.
const benchProcs = 2

func newBench(g *globals) *cobra.Command {
	var quick, asJSON bool
	var rounds int
	var roundTime time.Duration
	cmd := &cobra.Command{
		Use:   "bench [CASE...]",
		Short: "Measure tenant traffic, provisioning and fleet migrations next to baselines run by hand",
		Long: `bench measures Landlord on a real PostgreSQL. Tenant traffic in each isolation model
runs next to raw pgx doing the same work by hand (WHERE tenant_id = $1 on shared
tables, the same connections and goroutines), in short alternating rounds of the
same run; a ratio is the median of the per-round ratios, with their minimum and
maximum. Provisioning and fleet migrations are timed against their goals, next
to the same work done by hand where there is such a baseline.

Cases (all of them when none is named; sizes of the full run):
  ` + strings.Join(bench.Describe(), "\n  ") + `

Without --database-url or LANDLORD_DATABASE_URL, bench starts a private
PostgreSQL of its own in a temporary directory, with durability on (fsync,
synchronous_commit and full_page_writes at their defaults), shared_buffers
512MB, max_connections 400 and, when the server binaries ship it,
pg_stat_statements with track_planning, and removes it afterwards. With a
database URL (a superuser, or a role with CREATEDB and CREATEROLE) it
builds its own installation next to whatever the server holds: a control
database landlord_bench_<hex>, roles lb<hex>_*, tenant databases and roles
t_/r_<id>, all removed at the end. Do not point it at a production server: the
database-zipf case opens connections up to max_connections.

The full run builds 1,000 row, 10,000 schema and 2,000 database tenants and
takes about 40 minutes on two cores; --quick builds 200 row, 500 schema and
200 database tenants, runs shorter rounds and finishes in about 4 minutes.
GOMAXPROCS is pinned to 2. Progress goes to stderr; the table (or, with
--json, one JSON object per case: case, ours, baseline, ratio, unit, goal,
met, detail) to stdout. The exit code is 0 when every case ran, whether or
not it reached its goal.`,
		Example: `  landlord bench --quick
  landlord bench --quick --json row-lookup schema-lookup
  landlord bench --database-url postgres://postgres@db.internal/postgres fleet-status`,
		Args: args(func(_ *cobra.Command, a []string) error {
			for _, name := range a {
				if !slices.Contains(bench.Names(), name) {
					return fmt.Errorf("unknown case %q (cases: %s)", name, strings.Join(bench.Names(), ", "))
				}
			}
			return nil
		}),
		RunE: func(cmd *cobra.Command, a []string) error {
			if rounds < 0 || roundTime < 0 {
				return usageError{fmt.Errorf("--rounds and --round-time must not be negative")}
			}
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(benchProcs))
			return runBench(cmd, g, bench.Config{
				Quick: quick, Cases: a, Rounds: rounds, RoundTime: roundTime,
				Progress: cmd.ErrOrStderr(), Logger: g.logger(cmd.ErrOrStderr()),
			}, asJSON)
		},
	}
	cmd.Flags().BoolVar(&quick, "quick", false, "smaller data and shorter rounds: about 4 minutes on two cores")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object per case instead of a table")
	cmd.Flags().IntVar(&rounds, "rounds", 0, "alternating rounds per comparison (default 12, quick 6)")
	cmd.Flags().DurationVar(&roundTime, "round-time", 0, "length of one side's round (default 1s, quick 500ms)")
	return cmd
}

func runBench(cmd *cobra.Command, g *globals, cfg bench.Config, asJSON bool) error {
	ctx := cmd.Context()
	out := newOutput(cmd, asJSON)
	srv := bench.Server{URL: g.databaseURL}
	if srv.URL == "" {
		s, stop, err := bench.StartServer(ctx, g.logger(cmd.ErrOrStderr()))
		if err != nil {
			return err
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := stop(sctx); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "landlord: stop benchmark server:", err)
			}
		}()
		srv = bench.Server{URL: s.URL("postgres"), Embedded: s, Disposable: true}
	}
	var results []bench.Result
	err := bench.Run(ctx, srv, cfg, func(r bench.Result) error {
		results = append(results, r)
		if asJSON {
			return out.emit(r)
		}
		return nil
	})
	if !asJSON && len(results) > 0 {
		if terr := printBenchTable(out, results); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}

// printBenchTable prints one row per result and the setup they share.
func printBenchTable(out *output, results []bench.Result) error {
	headers := []string{"CASE", "OURS", "BASELINE", "RATIO (MIN-MAX)", "UNIT", "GOAL", "MET"}
	var rows [][]string
	for _, r := range results {
		base, ratio := "-", "-"
		if r.Baseline != nil {
			base = benchNumber(*r.Baseline)
		}
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.2f", *r.Ratio)
			lo, okLo := r.Detail["ratio_min"].(float64)
			hi, okHi := r.Detail["ratio_max"].(float64)
			if okLo && okHi {
				ratio += fmt.Sprintf(" (%.2f-%.2f)", lo, hi)
			}
		}
		met := "no"
		if r.Met {
			met = "yes"
		}
		rows = append(rows, []string{r.Case, benchNumber(r.Ours), base, ratio, r.Unit, r.Goal, met})
	}
	if err := out.table(headers, rows, nil); err != nil {
		return err
	}
	if setup, ok := results[0].Detail["setup"].(map[string]any); ok {
		pg, _ := setup["postgres"].(map[string]any)
		m, _ := setup["machine"].(map[string]any)
		out.printf("\nPostgreSQL %v (%v, %v); %v CPUs (%v), GOMAXPROCS %v, %v; %v mode, %v rounds of %vs per side\n",
			pg["version"], pg["server"], pg["connection"], m["cpus"], m["cpu_model"], m["gomaxprocs"], m["go"],
			setup["mode"], setup["rounds"], setup["round_s"])
		out.printf("Details (round trips, CPU per call, replans, memory, setup): landlord bench --json\n")
	}
	return nil
}

// benchNumber prints a figure with a precision that suits its size.
func benchNumber(f float64) string {
	switch {
	case f >= 1000:
		return fmt.Sprintf("%.0f", f)
	case f >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.3f", f)
	}
}
