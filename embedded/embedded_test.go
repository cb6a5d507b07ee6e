package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return s
}

func queryString(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(t.Context(), sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// sharedTempDir returns a t.TempDir the server's OS user can enter:
// t.TempDir creates its directories with mode 0700.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestTemporaryServer(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})

	if got := queryString(t, s.URL("postgres"), "select current_setting('wal_level')"); got != "logical" {
		t.Errorf("wal_level = %q, want logical", got)
	}
	if got := queryString(t, s.URL("postgres"), "select current_setting('fsync')"); got != "off" {
		t.Errorf("fsync = %q, want off on a temporary server", got)
	}
	if got := queryString(t, s.URL("postgres"), "show temp_file_limit"); got != "4GB" {
		t.Errorf("temp_file_limit = %q, want 4GB", got)
	}
	if got := queryString(t, s.URL("postgres"), "select current_user"); got != "postgres" {
		t.Errorf("current_user = %q, want postgres", got)
	}
	if hasPgStatStatements(s.BinDir()) {
		if got := queryString(t, s.URL("postgres"), "show shared_preload_libraries"); got != "pg_stat_statements" {
			t.Errorf("shared_preload_libraries = %q", got)
		}
	}
	if v, err := s.Version(t.Context()); err != nil || !strings.HasPrefix(v, "1") {
		t.Errorf("Version = %q, %v", v, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.DataDir(), logFileName)); err != nil {
		t.Errorf("server log: %v", err)
	} else if strings.Contains(string(b), "FATAL") {
		t.Errorf("server log has errors:\n%s", b)
	}

	var st syscall.Stat_t
	if err := syscall.Stat(fmt.Sprintf("/proc/%d", s.PID()), &st); err == nil && st.Uid == 0 {
		t.Errorf("postmaster runs as root")
	}

	// TCP asks for a password, which the superuser does not have.
	conn, err := pgx.Connect(t.Context(), s.TCPURL("postgres"))
	if err == nil {
		conn.Close(t.Context())
		t.Errorf("TCP connection without password succeeded")
	}

	dataDir := s.DataDir()
	if err := s.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("temporary data directory still there after Stop: %v", err)
	}
	if alive(s.PID()) {
		t.Errorf("postmaster %d still running after Stop", s.PID())
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestPersistentServerReuse(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(sharedTempDir(t), "pgdata")
	cfg := Config{DataDir: dataDir, Settings: map[string]string{"application_name": "reuse_test"}}

	first := startServer(t, cfg)
	if got := queryString(t, first.URL("postgres"), "show fsync"); got != "on" {
		t.Errorf("fsync = %q, want on for a persistent data directory", got)
	}
	if got := queryString(t, first.URL("postgres"), "show application_name"); got == "" {
		t.Errorf("application_name empty")
	}

	// A second Start while the first server runs (another process's, or one
	// started by hand) adopts that server, and its Stop leaves it running:
	// a session opened before goes on working.
	session, err := pgx.Connect(t.Context(), first.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close(context.Background())
	second := startServer(t, cfg)
	if second.PID() != first.PID() || second.Port() != first.Port() || second.SocketDir() != first.SocketDir() {
		t.Fatalf("second Start did not reuse: pid %d port %d vs pid %d port %d",
			second.PID(), second.Port(), first.PID(), first.Port())
	}
	if first.Reused() || !second.Reused() {
		t.Errorf("Reused: first %v, second %v; want false, true", first.Reused(), second.Reused())
	}
	queryString(t, second.URL("postgres"), "select 'reused'")
	if err := second.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if first.exited() {
		t.Fatal("Stop of the reusing Server stopped a server it did not start")
	}
	if _, err := session.Exec(t.Context(), "select 'still there'"); err != nil {
		t.Fatalf("session opened before the reusing Server's Stop: %v", err)
	}

	// Running finds it too, and its Shutdown stops it although it did not
	// start it.
	found, err := Running(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if found.PID() != first.PID() || !found.Reused() {
		t.Fatalf("Running = pid %d (reused %v), want pid %d reused", found.PID(), found.Reused(), first.PID())
	}
	if err := found.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown of a found Server did not stop the postmaster")
	}
	if err := first.Stop(t.Context()); err != nil {
		t.Errorf("Stop of a server already stopped elsewhere: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		t.Fatalf("persistent data directory gone after Stop: %v", err)
	}
	if _, err := Running(t.Context(), cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Running with no server = %v, want ErrNotRunning", err)
	}

	// A postmaster.pid whose pid is dead is stale.
	pidFile := filepath.Join(dataDir, "postmaster.pid")
	stale := fmt.Sprintf("%d\n%s\n0\n5432\n/nonexistent\n127.0.0.1\n", deadPID(t), dataDir)
	if err := os.WriteFile(pidFile, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	// Running reports it as not running and leaves the file alone.
	if _, err := Running(t.Context(), cfg); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Running with a stale postmaster.pid = %v, want ErrNotRunning", err)
	}
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("Running removed the stale postmaster.pid: %v", err)
	}
	third := startServer(t, cfg)
	if third.Reused() {
		t.Error("server started over a stale postmaster.pid reports Reused")
	}
	if third.PID() == first.PID() {
		t.Fatal("third server has the first one's pid")
	}
	queryString(t, third.URL("postgres"), "select 'restarted'")
	if err := third.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A live process in the data directory that does not answer is shut down
	// and replaced.
	hung := exec.Command("sleep", "60")
	hung.Dir = dataDir
	if err := hung.Start(); err != nil {
		t.Fatal(err)
	}
	hungDone := make(chan error, 1)
	go func() { hungDone <- hung.Wait() }()
	t.Cleanup(func() { _ = hung.Process.Kill() })
	stale = fmt.Sprintf("%d\n%s\n0\n%d\n%s\n127.0.0.1\n", hung.Process.Pid, dataDir, third.Port(), dataDir)
	if err := os.WriteFile(pidFile, []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	fourth := startServer(t, cfg)
	select {
	case <-hungDone:
	case <-time.After(10 * time.Second):
		t.Fatal("unresponsive process was not shut down")
	}
	queryString(t, fourth.URL("postgres"), "select 'replaced'")
}

func TestStopDataDir(t *testing.T) {
	t.Parallel()
	s := startServer(t, Config{})
	if err := StopDataDir(t.Context(), s.DataDir()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("StopDataDir did not stop the server")
	}
	if err := StopDataDir(t.Context(), t.TempDir()); err != nil {
		t.Errorf("StopDataDir on a directory without server: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Port: -1}, "Port"},
		{Config{Port: 70000}, "Port"},
		{Config{Superuser: "a b"}, "Superuser"},
		{Config{Settings: map[string]string{"port": "1"}}, "Settings"},
		{Config{Settings: map[string]string{"unix_socket_directories": "/x"}}, "Settings"},
		{Config{Settings: map[string]string{"a=b": "1"}}, "Settings"},
	} {
		_, err := Start(t.Context(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Start(%+v) = %v, want error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestFindBinDirEnv(t *testing.T) {
	t.Setenv(EnvBinDir, t.TempDir())
	_, err := FindBinDir()
	if err == nil || !strings.Contains(err.Error(), EnvBinDir) || !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("FindBinDir with empty %s = %v", EnvBinDir, err)
	}
}

// fakeBinDir makes dir/<name>/bin with postgres and initdb scripts reporting
// the given version.
func fakeBinDir(t *testing.T, root, name, version string) string {
	t.Helper()
	dir := filepath.Join(root, name, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\necho 'postgres (PostgreSQL) %s'\n", version)
	for _, bin := range []string{"postgres", "initdb"} {
		if err := os.WriteFile(filepath.Join(dir, bin), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func noEnv(string) string { return "" }

func notOnPath(string) (string, error) { return "", exec.ErrNotFound }

func TestSearch(t *testing.T) {
	root := t.TempDir()
	v96 := fakeBinDir(t, root, "9.6", "9.6.24")
	v15 := fakeBinDir(t, root, "15", "15.4")
	v16 := fakeBinDir(t, root, "16", "16.1")
	v14 := fakeBinDir(t, t.TempDir(), "14", "14.9")
	clientOnly := filepath.Join(t.TempDir(), "bin")
	glob := filepath.Join(root, "*", "bin")

	for _, tc := range []struct {
		name    string
		s       search
		want    string
		wantErr error
	}{
		{"newest glob match", search{noEnv, func() string { return "" }, []string{glob}, notOnPath}, v16, nil},
		{"pg_config first", search{noEnv, func() string { return v15 }, []string{glob}, notOnPath}, v15, nil},
		{"pg_config of a client package is skipped", search{noEnv, func() string { return clientOnly }, []string{glob}, notOnPath}, v16, nil},
		{"old pg_config does not hide a newer server", search{noEnv, func() string { return v14 }, []string{glob}, notOnPath}, v16, nil},
		{"PATH last", search{noEnv, func() string { return "" }, nil, func(string) (string, error) { return filepath.Join(v15, "postgres"), nil }}, v15, nil},
		{"only old versions", search{noEnv, func() string { return v14 }, []string{filepath.Join(filepath.Dir(v96), "bin")}, notOnPath}, "", ErrUnsupportedVersion},
		{"env wins", search{func(string) string { return v15 }, func() string { return v16 }, []string{glob}, notOnPath}, v15, nil},
		{"env too old", search{func(string) string { return v14 }, func() string { return v16 }, nil, notOnPath}, "", ErrUnsupportedVersion},
		{"nothing", search{noEnv, func() string { return "" }, []string{filepath.Join(t.TempDir(), "*", "bin")}, notOnPath}, "", ErrNoBinaries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _, err := tc.s.find()
			if !errors.Is(err, tc.wantErr) || dir != tc.want {
				t.Fatalf("find() = %q, %v; want %q, %v", dir, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestNoBinariesMessage(t *testing.T) {
	s := search{noEnv, func() string { return "" }, []string{filepath.Join(t.TempDir(), "*", "bin")}, notOnPath}
	_, _, err := s.find()
	if !errors.Is(err, ErrNoBinaries) {
		t.Fatalf("err = %v, want ErrNoBinaries", err)
	}
	msg := err.Error()
	for _, want := range []string{"apt-get install -y postgresql", "brew install postgresql", "--database-url", "LANDLORD_DATABASE_URL"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message is not one line: %q", msg)
	}
}

func TestPathVersionOrder(t *testing.T) {
	if !pathVersionLess("/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/16/bin") {
		t.Error("9.6 should sort before 16")
	}
	if !pathVersionLess("/opt/homebrew/opt/postgresql@15/bin", "/opt/homebrew/opt/postgresql@17/bin") {
		t.Error("postgresql@15 should sort before postgresql@17")
	}
}

func TestCheckTraverse(t *testing.T) {
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	stranger := &runAs{name: "stranger", uid: 54321, gid: 54321}
	err := stranger.checkTraverse(filepath.Join(private))
	if !errors.Is(err, ErrNotTraversable) || !strings.Contains(err.Error(), private) {
		t.Fatalf("checkTraverse = %v, want ErrNotTraversable naming %s", err, private)
	}
	owner := &runAs{name: "owner", uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
	if err := owner.checkTraverse(private); err != nil {
		t.Fatalf("owner cannot traverse its own directory: %v", err)
	}
}

func TestDefaultDataDir(t *testing.T) {
	want := filepath.Join(t.TempDir(), "data")
	t.Setenv(EnvDataDir, want)
	if got, err := DefaultDataDir(); err != nil || got != want {
		t.Fatalf("DefaultDataDir = %q, %v; want %q", got, err, want)
	}
	t.Setenv(EnvDataDir, "")
	got, err := DefaultDataDir()
	if err != nil || !filepath.IsAbs(got) || filepath.Base(got) != "pgdata" {
		t.Fatalf("DefaultDataDir = %q, %v", got, err)
	}
}

func TestStartRefusesUntraversableParent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the server to another OS user")
	}
	private := filepath.Join(t.TempDir(), "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Config{DataDir: filepath.Join(private, "pgdata")})
	if !errors.Is(err, ErrNotTraversable) || !strings.Contains(err.Error(), private) {
		t.Fatalf("Start = %v, want ErrNotTraversable naming %s", err, private)
	}
	if _, err := os.Stat(filepath.Join(private, "pgdata")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed Start left its data directory behind: %v", err)
	}
}

func TestPortTaken(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = Start(t.Context(), Config{Port: port})
	if !errors.Is(err, errPortTaken) || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("Start on a taken port = %v, want errPortTaken with the server log", err)
	}
}

func TestURLEscapesSocketDir(t *testing.T) {
	s := &Server{socketDir: "/tmp/a b&c", port: 5432, superuser: "postgres"}
	want := "postgres://postgres@/app?host=/tmp/a%20b%26c&port=5432&sslmode=disable"
	if got := s.URL("app"); got != want {
		t.Fatalf("URL = %q, want %q", got, want)
	}
}

func TestRunningCreatesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pgdata")
	if _, err := Running(t.Context(), Config{DataDir: dir}); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Running on a missing data directory = %v, want ErrNotRunning", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Running created the data directory: %v", err)
	}
	if _, err := Running(t.Context(), Config{}); err == nil {
		t.Error("Running without DataDir succeeded")
	}
}

// TestStartDefault: the embedded default runs on LANDLORD_DATA_DIR with the
// control database the landlord command uses, and a second start reuses it.
func TestStartDefault(t *testing.T) {
	dataDir := filepath.Join(sharedTempDir(t), "pgdata")
	t.Setenv(EnvDataDir, dataDir)
	ctx := t.Context()
	srv, err := StartDefault(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	if got := queryString(t, srv.URL(ControlDatabase), "SELECT current_database()"); got != ControlDatabase {
		t.Fatalf("control database %q, want %q", got, ControlDatabase)
	}
	if srv.DataDir() != dataDir {
		t.Errorf("data directory %q, want %q", srv.DataDir(), dataDir)
	}
	again, err := StartDefault(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Reused() || again.PID() != srv.PID() {
		t.Errorf("a second StartDefault did not reuse the running server")
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(again.Stop(ctx)) // leaves it running: it found it
	if got := queryString(t, srv.URL(ControlDatabase), "SELECT 1"); got != "1" {
		t.Errorf("the server stopped with the second handle: %q", got)
	}
}
