// Package bench measures Landlord on a real PostgreSQL: tenant traffic in the
// three isolation models next to raw pgx doing the same work by hand, and
// provisioning and fleet migrations against the goals the README states.
//
// Every comparison runs both sides in the same run, in short alternating
// rounds (A B A B ...), and reports the median of the per-round ratios with
// their minimum and maximum: on a shared two-core machine absolute figures
// drift by a quarter from minute to minute, ratios measured side by side hold
// (README.md, Performance). Each Result carries the setup it was measured on.
//
// Run builds its own installation on the server it is given (a control
// database named landlord_bench_<hex> with its own roles, tenants and
// template database) and removes it at the end, so it never touches an
// existing installation on the same server. The command-line tool runs it as
// `landlord bench`.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/landlordhq/landlord/embedded"
)

// Config holds the optional settings of Run. The zero value runs every case
// in full.
type Config struct {
	// Quick runs every case on smaller data and shorter rounds, so that the
	// whole suite finishes in about four minutes on two cores.
	Quick bool
	// Cases selects cases by name (see Names), in any order; they run in
	// the suite's order. Empty: all of them.
	Cases []string
	// Rounds overrides the number of alternating rounds of the mode (12 in
	// full, 6 quick). 0 keeps it.
	Rounds int
	// RoundTime overrides the length of one side's round (1s in full, 0.5s
	// quick). 0 keeps it.
	RoundTime time.Duration
	// Progress receives a line now and then while data is built and cases
	// run. nil discards them.
	Progress io.Writer
	// Logger receives Landlord's own log lines. Default: discard.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	for _, name := range c.Cases {
		if !slices.Contains(Names(), name) {
			return fmt.Errorf("bench config: Cases: %q: %w (known: %v)", name, ErrUnknownCase, Names())
		}
	}
	if c.Rounds < 0 {
		return errors.New("bench config: Rounds must not be negative")
	}
	if c.RoundTime < 0 {
		return errors.New("bench config: RoundTime must not be negative")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is the PostgreSQL server Run measures on.
type Server struct {
	// URL connects to any database of the server as a superuser, or as a
	// role with CREATEDB and CREATEROLE. Required. Some figures need a
	// superuser: catalog memory (pg_log_backend_memory_contexts) and
	// replans (pg_stat_statements); without one they are reported as
	// unavailable.
	URL string
	// Embedded is the server when Run's caller started it (see
	// StartServer). It enables the PgBouncer comparison and the server's
	// log for catalog memory. Server CPU is read from /proc whenever the
	// server runs on this machine.
	Embedded *embedded.Server
	// Disposable says the server is thrown away after Run, which then skips
	// dropping what it built: dropping thousands of tenant databases takes
	// minutes.
	Disposable bool
}

// Result is the outcome of one case, or of one variant of a case (such as
// "schema-lookup/zipf").
type Result struct {
	Case string `json:"case"`
	// Ours is Landlord's figure, in Unit.
	Ours float64 `json:"ours"`
	// Baseline is the figure of the baseline measured in the same run, in
	// Unit; nil when the case has none.
	Baseline *float64 `json:"baseline"`
	// Ratio is the median of the per-round ratios ours/baseline when the
	// case alternates rounds, else Ours/Baseline; nil without a baseline.
	Ratio *float64 `json:"ratio"`
	Unit  string   `json:"unit"`
	// Goal states the target, such as "ratio >= 0.9" or "p50 <= 30 ms";
	// Met says whether this run reached it.
	Goal string `json:"goal"`
	Met  bool   `json:"met"`
	// Detail carries the setup (PostgreSQL version and settings, machine,
	// tenants, rows, connections, goroutines, rounds) and the case's other
	// figures.
	Detail map[string]any `json:"detail"`
}

// benchCase is one case of the suite.
type benchCase struct {
	name string
	// what is one line for the command's help.
	what string
	// needs says what data the case needs, in the mode's sizes.
	needs func(sz sizes) needs
	run   func(ctx context.Context, e *env) ([]Result, error)
}

// suite lists the cases in the order they run. The installation the
// traffic cases share grows before each case to what it needs, so the
// cheapest cases come first; provisioning goes first of all, before the
// server holds thousands of tenants; export and move, on installations of
// their own, next; the fleet cases go last.
func suite() []benchCase {
	return []benchCase{
		provisionCase(),
		exportCase(),
		moveCase(),
		drainCase(),
		rowLookupCase(),
		rowLookupUnsignedCase(),
		noisyNeighbourCase(),
		schemaLookupCase(),
		mixedCase(),
		storefrontCase(),
		databaseZipfCase(),
		databaseRestartCase(),
		catalogMemoryCase(),
		fleetStatusCase(),
		fleetMigrateCase(),
	}
}

// Names returns the names of the cases in the order Run runs them.
func Names() []string {
	var out []string
	for _, c := range suite() {
		out = append(out, c.name)
	}
	return out
}

// Describe returns one line per case: its name and what it measures.
func Describe() []string {
	var out []string
	for _, c := range suite() {
		out = append(out, fmt.Sprintf("%-22s %s", c.name, c.what))
	}
	return out
}

// Run builds the data the selected cases need on srv, runs them, and calls
// emit with each Result as soon as its case finishes. A case that fails does
// not stop the others, but failing to build the data a case needs stops the
// run; Run returns the errors joined, and the error of emit at once. What Run built on the server is removed before it returns,
// unless srv is Disposable.
func Run(ctx context.Context, srv Server, cfg Config, emit func(Result) error) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	cfg.setDefaults()
	if srv.URL == "" {
		return errors.New("bench: Server.URL is required")
	}
	var cases []benchCase
	for _, c := range suite() {
		if len(cfg.Cases) == 0 || slices.Contains(cfg.Cases, c.name) {
			cases = append(cases, c)
		}
	}
	e, err := newEnv(ctx, srv, cfg)
	if err != nil {
		return err
	}
	defer e.close()
	var errs []error
	for _, c := range cases {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		e.progressf("case %s: starting", c.name)
		start := time.Now()
		if err := e.ensure(ctx, e.w, c.needs(e.sz)); err != nil {
			errs = append(errs, fmt.Errorf("case %s: build data: %w", c.name, err))
			break
		}
		results, err := c.run(ctx, e)
		if err != nil {
			errs = append(errs, fmt.Errorf("case %s: %w", c.name, err))
			e.progressf("case %s: failed after %s: %v", c.name, time.Since(start).Round(time.Millisecond), err)
		} else {
			e.progressf("case %s: done in %s", c.name, time.Since(start).Round(time.Millisecond))
		}
		for _, r := range results {
			r.Detail = e.withSetup(r.Detail)
			r.Detail["case_seconds"] = round3(time.Since(start).Seconds())
			if err := emit(r); err != nil {
				return errors.Join(append(errs, err, e.cleanup())...)
			}
		}
	}
	errs = append(errs, e.cleanup())
	return errors.Join(errs...)
}
