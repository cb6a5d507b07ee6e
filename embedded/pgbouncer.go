package embedded

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrNoPgBouncer is returned by StartPgBouncer when no pgbouncer binary is
// found.
var ErrNoPgBouncer = errors.New("no pgbouncer binary found: install it (Debian/Ubuntu: apt-get install -y pgbouncer; macOS: brew install pgbouncer)")

// PoolerConfig configures StartPgBouncer.
type PoolerConfig struct {
	// Server is the PostgreSQL server PgBouncer forwards to. Required.
	Server *Server
	// PoolMode is PgBouncer's pool_mode. Default "transaction".
	PoolMode string
	// PoolSize is default_pool_size: server connections per database and
	// user. Default 20.
	PoolSize int
	// Settings are extra [pgbouncer] settings; they override the defaults.
	Settings map[string]string
	// Binary is the pgbouncer executable; "" searches PATH and /usr/sbin.
	Binary string
}

// Pooler is a private PgBouncer in front of a Server, for tests and
// benchmarks. Clients connect to 127.0.0.1:Port() with any database and role
// of the server and that role's password (SCRAM); PgBouncer checks it with
// auth_query as the server's superuser and forwards over the server's unix
// socket.
type Pooler struct {
	dir  string
	port int
	pid  int
	done chan struct{}
}

// StartPgBouncer starts PgBouncer in front of cfg.Server, as the server's OS
// user when this process is root (PgBouncer refuses to run as root).
func StartPgBouncer(ctx context.Context, cfg PoolerConfig) (*Pooler, error) {
	if cfg.Server == nil {
		return nil, errors.New("start pgbouncer: PoolerConfig.Server is required")
	}
	bin := cfg.Binary
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("pgbouncer"); err != nil {
			if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
				return nil, ErrNoPgBouncer
			}
			bin = "/usr/sbin/pgbouncer"
		}
	}
	if cfg.PoolMode == "" {
		cfg.PoolMode = "transaction"
	}
	if cfg.PoolSize == 0 {
		cfg.PoolSize = 20
	}
	var run *runAs
	if os.Geteuid() == 0 {
		var err error
		if run, err = lookupRunAs(cfg.Server.OSUser()); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp("", "landlord-pgbouncer-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	if err := run.chown(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	settings := map[string]string{
		"listen_addr":     "127.0.0.1",
		"listen_port":     strconv.Itoa(port),
		"unix_socket_dir": "",
		// Clients log in with their roles' passwords, which PgBouncer
		// looks up through the server's superuser (auth_query), as a
		// production setup with per-tenant roles does.
		"auth_type":                 "scram-sha-256",
		"auth_user":                 cfg.Server.Superuser(),
		"auth_file":                 filepath.Join(dir, "users.txt"),
		"pool_mode":                 cfg.PoolMode,
		"default_pool_size":         strconv.Itoa(cfg.PoolSize),
		"max_client_conn":           "1000",
		"max_db_connections":        "0",
		"server_reset_query":        "DISCARD ALL",
		"logfile":                   filepath.Join(dir, "pgbouncer.log"),
		"pidfile":                   filepath.Join(dir, "pgbouncer.pid"),
		"ignore_startup_parameters": "extra_float_digits",
	}
	for k, v := range cfg.Settings {
		settings[k] = v
	}
	var ini strings.Builder
	fmt.Fprintf(&ini, "[databases]\n* = host=%s port=%d\n\n[pgbouncer]\n", cfg.Server.SocketDir(), cfg.Server.Port())
	for k, v := range settings {
		fmt.Fprintf(&ini, "%s = %s\n", k, v)
	}
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	for path, text := range map[string]string{iniPath: ini.String(), settings["auth_file"]: ""} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := run.chown(path); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	cmd := exec.Command(bin, "-q", iniPath)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: run.credential()}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start pgbouncer: %w", err)
	}
	b := &Pooler{dir: dir, port: port, pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(b.done)
	}()
	// Ready when it accepts TCP connections.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.done:
			log, _ := os.ReadFile(settings["logfile"])
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer exited at start:\n%s", log)
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, errors.New("pgbouncer did not accept connections within 10s")
		}
	}
}

// Host is the address PgBouncer listens on.
func (b *Pooler) Host() string { return "127.0.0.1" }

// Port is the TCP port PgBouncer listens on.
func (b *Pooler) Port() int { return b.port }

// Stop stops PgBouncer (SIGINT: safe shutdown) and removes its directory.
func (b *Pooler) Stop() {
	_ = syscall.Kill(b.pid, syscall.SIGINT)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(b.pid, syscall.SIGKILL)
		<-b.done
	}
	os.RemoveAll(b.dir)
}
