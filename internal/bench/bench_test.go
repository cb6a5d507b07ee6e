package bench

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// runCases runs cases on the test server in quick mode with short rounds
// and returns their results.
func runCases(t *testing.T, cfg Config) []Result {
	t.Helper()
	cfg.Quick = true
	var out []Result
	var progress strings.Builder
	cfg.Progress = &progress
	err := Run(context.Background(), Server{URL: srv.AdminURL("postgres"), Embedded: srv.Embedded()}, cfg, func(r Result) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	return out
}

// The quick row-lookup case, end to end: it measures both sides, counts one
// round trip per call on each, and leaves nothing behind on the server.
func TestQuickRowLookup(t *testing.T) {
	t.Parallel()
	results := runCases(t, Config{Cases: []string{"row-lookup"}, Rounds: 2, RoundTime: 300 * time.Millisecond})
	if len(results) != 1 || results[0].Case != "row-lookup" {
		t.Fatalf("results: %+v", results)
	}
	r := results[0]
	// Throughputs are whatever the machine allows: present, never negative.
	if r.Ours < 0 || r.Baseline == nil || *r.Baseline < 0 || r.Ratio == nil || *r.Ratio < 0 {
		t.Fatalf("throughputs and ratio must be reported: %+v", r)
	}
	// The count is exact whatever the machine's load: one call per tenant,
	// each one round trip, no connection opened.
	per := r.Detail["per_call"].(map[string]any)
	for _, side := range []string{"ours", "baseline"} {
		tr := per[side].(trips)
		if tr.Calls != int64(r.Detail["tenants"].(int)) || tr.RoundTrips != 1 || tr.Dials != 0 {
			t.Errorf("%s: %+v, want one call per tenant, 1 round trip per call and no connection opened", side, tr)
		}
	}
	setup := r.Detail["setup"].(map[string]any)
	if setup["postgres"].(map[string]any)["version"] == "" || setup["machine"].(map[string]any)["go"] == "" {
		t.Errorf("setup lacks the server version or the machine: %v", setup)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("result does not marshal: %v", err)
	}
	// Nothing of the run is left: its databases and roles carry the run's
	// tag.
	db, _ := setup["database"].(string)
	tag, ok := strings.CutPrefix(db, "landlord_bench_")
	if !ok || tag == "" {
		t.Fatalf("setup names no database of the run: %v", setup)
	}
	conn, err := pgx.Connect(context.Background(), srv.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), `SELECT datname FROM pg_database WHERE datname LIKE 'landlord_bench_' || $1 || '%'
		UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'lb' || $1 || '%'`, tag)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestUnknownCase(t *testing.T) {
	t.Parallel()
	err := Run(context.Background(), Server{URL: "postgres://nowhere.invalid/x"}, Config{Cases: []string{"row-lookup", "no-such-case"}},
		func(Result) error { return nil })
	if !errors.Is(err, ErrUnknownCase) || !strings.Contains(err.Error(), "no-such-case") {
		t.Fatalf("err = %v, want ErrUnknownCase naming the case", err)
	}
}

// TestSuite runs the suite as `landlord bench` does, on a server of its own
// with production-like settings, when LANDLORD_BENCH is "quick" or "full"
// (LANDLORD_BENCH_CASES, comma-separated, selects cases):
//
//	LANDLORD_BENCH=quick go test -run TestSuite -timeout 30m -v ./internal/bench/
func TestSuite(t *testing.T) {
	mode := os.Getenv("LANDLORD_BENCH")
	if mode != "quick" && mode != "full" {
		t.Skip("set LANDLORD_BENCH=quick or LANDLORD_BENCH=full to run the benchmark suite")
	}
	ctx := context.Background()
	s, stop, err := StartServer(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	cfg := Config{Quick: mode == "quick", Progress: os.Stderr}
	if c := os.Getenv("LANDLORD_BENCH_CASES"); c != "" {
		cfg.Cases = strings.Split(c, ",")
	}
	err = Run(ctx, Server{URL: s.URL("postgres"), Embedded: s, Disposable: true}, cfg, func(r Result) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		t.Logf("%s", b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The unsigned variant runs in the same run as row-lookup, under the check
// it names, with one round trip per call as well.
func TestQuickRowLookupUnsigned(t *testing.T) {
	t.Parallel()
	results := runCases(t, Config{Cases: []string{"row-lookup-unsigned", "row-lookup"}, Rounds: 1, RoundTime: 200 * time.Millisecond})
	if len(results) != 2 || results[0].Case != "row-lookup" || results[1].Case != "row-lookup-unsigned" {
		t.Fatalf("results: %+v", results)
	}
	for i, want := range []string{"signed", "unsigned"} {
		r := results[i]
		if r.Detail["context_check"] != want {
			t.Errorf("%s: context_check %v, want %s", r.Case, r.Detail["context_check"], want)
		}
		tr := r.Detail["per_call"].(map[string]any)["ours"].(trips)
		if tr.RoundTrips != 1 {
			t.Errorf("%s: %+v, want 1 round trip per call", r.Case, tr)
		}
	}
}

// The export case builds its two installations, exports the same 10,000
// rows from each, and leaves neither behind.
func TestQuickExport(t *testing.T) {
	t.Parallel()
	results := runCases(t, Config{Cases: []string{"export"}, Rounds: 1})
	if len(results) != 2 || results[0].Case != "export/scaling" || results[1].Case != "export/10k-rows" {
		t.Fatalf("results: %+v", results)
	}
	for _, r := range results {
		if r.Ours <= 0 || r.Baseline == nil || r.Ratio == nil || r.Detail["rows"] != exportRows {
			t.Errorf("%s: %+v", r.Case, r)
		}
	}
	db, _ := results[0].Detail["setup"].(map[string]any)["database"].(string)
	tag, _ := strings.CutPrefix(db, "landlord_bench_")
	conn, err := pgx.Connect(context.Background(), srv.AdminURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, _ := conn.Query(context.Background(), `SELECT datname FROM pg_database WHERE datname LIKE 'landlord_bench_' || $1 || '%'
		UNION ALL SELECT rolname FROM pg_roles WHERE rolname LIKE 'lb' || $1 || '%'`, tag)
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if tag == "" || len(left) > 0 {
		t.Errorf("tag %q, left behind: %v", tag, left)
	}
}
