package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

// runBenchCmd runs the bench command with args against the test server.
func runBenchCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := newBench(&globals{databaseURL: server.AdminURL("postgres")})
	cmd.SetArgs(args)
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	err := cmd.ExecuteContext(context.Background())
	return stdout.String(), stderr.String(), err
}

func TestBenchQuickJSON(t *testing.T) {
	t.Parallel()
	out, errOut, err := runBenchCmd(t, "--quick", "--json", "--rounds", "2", "--round-time", "200ms", "row-lookup")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON line, got:\n%s", out)
	}
	var r struct {
		Case     string          `json:"case"`
		Ours     float64         `json:"ours"`
		Baseline *float64        `json:"baseline"`
		Ratio    *float64        `json:"ratio"`
		Unit     string          `json:"unit"`
		Detail   json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	// Throughputs are whatever the machine allows: present, never negative.
	if r.Case != "row-lookup" || r.Ours < 0 || r.Baseline == nil || r.Ratio == nil || r.Unit != "calls/s" {
		t.Errorf("unexpected result: %s", lines[0])
	}
	for _, want := range []string{`"round_trips":`, `"server_version"`, `"cpu_model"`, `"rounds":2`} {
		if !bytes.Contains(r.Detail, []byte(want)) {
			t.Errorf("detail lacks %s: %s", want, r.Detail)
		}
	}
	if !strings.Contains(errOut, "row-lookup: round 2/2") {
		t.Errorf("no progress on stderr:\n%s", errOut)
	}
}

func TestBenchUnknownCase(t *testing.T) {
	t.Parallel()
	_, _, err := runBenchCmd(t, "--quick", "no-such-case")
	if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "no-such-case") {
		t.Fatalf("err = %v, want a usage error naming the case", err)
	}
}

func TestBenchTable(t *testing.T) {
	t.Parallel()
	out, errOut, err := runBenchCmd(t, "--quick", "--rounds", "1", "--round-time", "200ms", "row-lookup")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{"CASE", "RATIO (MIN-MAX)", "row-lookup", "calls/s", "ratio >= 0.9", "PostgreSQL ", "GOMAXPROCS 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
