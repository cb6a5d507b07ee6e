package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/embedded"
)

// embeddedDataDir points the commands of this test at a data directory of
// its own (LANDLORD_DATA_DIR, so the test cannot run in parallel), with no
// database URL, and returns the directory.
func embeddedDataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The server's OS user must enter it when the test runs as root.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dataDir := filepath.Join(dir, "pgdata")
	t.Setenv(embedded.EnvDataDir, dataDir)
	t.Setenv("LANDLORD_DATABASE_URL", "")
	t.Cleanup(func() {
		// Whatever a failed step left running.
		_ = embedded.StopDataDir(context.Background(), dataDir)
	})
	return dataDir
}

// running returns the server running on dataDir, or nil.
func running(t *testing.T, dataDir string) *embedded.Server {
	t.Helper()
	srv, err := embedded.Running(t.Context(), embedded.Config{DataDir: dataDir})
	if errors.Is(err, embedded.ErrNotRunning) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// A command leaves a server it found running as it was: one started by
// hand keeps its sessions.
func TestCommandLeavesFoundServerRunning(t *testing.T) {
	dataDir := embeddedDataDir(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	session, err := pgx.Connect(ctx, srv.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close(context.Background())

	mustRun(t, "tenants", "create", "by-hand", "--model", "row")
	out := mustRun(t, "tenants", "list")
	if !strings.Contains(out, "by-hand") {
		t.Fatalf("tenants list:\n%s", out)
	}
	if got := running(t, dataDir); got == nil || got.PID() != srv.PID() {
		t.Fatalf("server after the commands: %v, want pid %d still running", got, srv.PID())
	}
	var one int
	if err := session.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("session opened before the commands: %v", err)
	}

	// "server stop" stops it, whoever started it.
	if out := mustRun(t, "server", "stop"); !strings.Contains(out, "stopped") {
		t.Errorf("server stop: %q", out)
	}
	if got := running(t, dataDir); got != nil {
		t.Fatalf("server still running after server stop: pid %d", got.PID())
	}
}

func TestServerStartStatusStop(t *testing.T) {
	dataDir := embeddedDataDir(t)

	// Not running: status says so with exit 1, stop with exit 0, and
	// neither creates anything.
	out, _, code := cli(t, "", "server", "status", "--json")
	var st serverStatus
	decode(t, out, &st)
	if code != exitError || st.Running || st.DataDir != dataDir || st.PID != 0 || st.URL != "" {
		t.Errorf("status before start: exit %d, %+v", code, st)
	}
	if out := mustRun(t, "server", "stop"); !strings.Contains(out, "not running") {
		t.Errorf("server stop with none running: %q", out)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("status or stop created the data directory: %v", err)
	}

	// A command with none running starts one and stops it again.
	mustRun(t, "init")
	if got := running(t, dataDir); got != nil {
		t.Fatalf("init left its own server running: pid %d", got.PID())
	}

	out = mustRun(t, "server", "start")
	if !strings.Contains(out, "postgres started") {
		t.Errorf("server start: %q", out)
	}
	srv := running(t, dataDir)
	if srv == nil {
		t.Fatal("server start left no server running")
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if want := srv.URL(controlDatabase); lines[len(lines)-1] != want {
		t.Errorf("server start's last line %q, want the URL %q", lines[len(lines)-1], want)
	}
	if out := mustRun(t, "server", "start"); !strings.Contains(out, "already running") {
		t.Errorf("second server start: %q", out)
	}

	out = mustRun(t, "server", "status", "--json")
	decode(t, out, &st)
	if !st.Running || st.PID != srv.PID() || st.DataDir != dataDir || st.URL != srv.URL(controlDatabase) {
		t.Errorf("status: %+v, want running pid %d", st, srv.PID())
	}
	if out := mustRun(t, "server", "status"); !strings.Contains(out, "yes") {
		t.Errorf("status: %q", out)
	}

	// Every other command uses it and leaves it running.
	mustRun(t, "tenants", "create", "kept-running", "--model", "schema")
	out = mustRun(t, "psql", "--tenant", "kept-running", "--", "-Atc", "SELECT current_setting('landlord.tenant_id') <> ''")
	if strings.TrimSpace(out) != "t" {
		t.Errorf("psql on the running server: %q", out)
	}
	if got := running(t, dataDir); got == nil || got.PID() != srv.PID() {
		t.Fatalf("server after the commands: %v, want pid %d", got, srv.PID())
	}

	if out := mustRun(t, "server", "stop"); !strings.Contains(out, "stopped") {
		t.Errorf("server stop: %q", out)
	}
	if got := running(t, dataDir); got != nil {
		t.Fatalf("server still running after server stop: pid %d", got.PID())
	}
	if _, _, code := cli(t, "", "server", "status"); code != exitError {
		t.Errorf("status after stop: exit %d, want %d", code, exitError)
	}

	// psql with none running starts one for its session only.
	out = mustRun(t, "psql", "--", "-Atc", "SELECT current_database()")
	if strings.TrimSpace(out) != controlDatabase {
		t.Errorf("psql as the administrator: %q", out)
	}
	if got := running(t, dataDir); got != nil {
		t.Fatalf("psql left its own server running: pid %d", got.PID())
	}
}

func TestServerRefusesDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, sub := range []string{"start", "status", "stop"} {
		_, errOut, code := cli(t, "", "server", sub, "--database-url", "postgres://nobody@/nowhere")
		if code != exitUsage || !strings.Contains(errOut, "--database-url") {
			t.Errorf("server %s with a database URL: exit %d, %q", sub, code, errOut)
		}
	}
}
