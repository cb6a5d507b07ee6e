package fleet_test

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/tenant"
)

// TestKilledMigrator kills the migrator with SIGKILL at random points across
// a fleet of schema and database tenants and the shared schema (SECURITY.md,
// F01): after every kill each target is at some version with that version's
// DDL present exactly when its ledger row is, and a rerun brings every target
// to the head with each step applied once (every step fails if run twice).
func TestKilledMigrator(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tenants := []tenant.Tenant{e.create(t, "row-shop", tenant.ModelRow)}
	for i := range 6 {
		tenants = append(tenants, e.create(t, fmt.Sprintf("schema-shop-%d", i), tenant.ModelSchema))
	}
	for i := range 2 {
		tenants = append(tenants, e.create(t, fmt.Sprintf("db-shop-%d", i), tenant.ModelDatabase))
	}
	dir := writeDir(t, files(5))
	ps := e.places(tenants)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	t.Logf("seed %d", seed)

	kills := 0
	for round := range 4 {
		after := 1 + rng.IntN(10)
		delay := time.Duration(rng.IntN(3000)) * time.Microsecond
		killed, out := runChildMigrator(t, e.db.URL, dir, after, delay)
		if killed {
			kills++
		}
		versions := e.checkConsistent(t, ps, steps)
		t.Logf("round %d: killed=%t after %d steps + %s: versions %v", round, killed, after, delay, versions)
		if !killed {
			if !strings.Contains(out, "fleet run finished") {
				t.Fatalf("round %d: migrator finished without finishing its run:\n%s", round, out)
			}
			break
		}
	}
	if kills == 0 {
		t.Fatal("the migrator was never killed: the test did not test anything")
	}

	f := e.fleet(t, files(5), fleet.Config{})
	rep, err := f.Up(t.Context())
	if err != nil {
		t.Fatalf("rerun: %v", err)
	}
	for name, v := range e.checkConsistent(t, ps, steps) {
		if v != 5 {
			t.Errorf("%s at version %d after the rerun, want 5", name, v)
		}
	}
	for key, r := range e.records(t) {
		if r.status != "done" || r.version != 5 {
			t.Errorf("record of %s after the rerun: %+v", key, r)
		}
	}
	for _, tn := range tenants {
		if v := e.schemaVersion(t, tn); v != 5 {
			t.Errorf("directory: %s at schema_version %d, want 5", tn.Slug, v)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM landlord.migration_runs WHERE status = 'interrupted'`); n != kills {
		t.Errorf("%d runs recorded interrupted, want the %d killed", n, kills)
	}
	if n := e.count(t, `SELECT count(*) FROM landlord.migration_runs WHERE status = 'running'`); n != 0 {
		t.Errorf("%d runs still recorded running", n)
	}
	st, err := f.Status(t.Context())
	if err != nil || st.Summary.AtHead != st.Summary.Targets || st.Summary.Targets < len(ps) || st.Summary.Failed != 0 {
		t.Errorf("status after the rerun: %+v, %v", st.Summary, err)
	}
	_ = rep
}

// runChildMigrator runs the migrator in a child process and kills it with
// SIGKILL delay after it logged its after-th applied step. It reports
// whether the kill ended it (false: the migrator ended first, successfully,
// which it may do during the delay too) and returns what the child printed.
func runChildMigrator(t *testing.T, url, dir string, after int, delay time.Duration) (killed bool, output string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURL+"="+url, childDir+"="+dir, childParallel+"=2")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	applied := 0
	// Read on to the end of what the child printed, killed or not.
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if strings.Contains(line, "migration applied") {
			applied++
			if applied == after {
				time.Sleep(delay)
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, out.String()
		}
	}
	if err != nil {
		t.Fatalf("migrator failed: %v\n%s%s", err, out.String(), stderr.String())
	}
	return false, out.String()
}
