// Package embedded runs a private PostgreSQL server from the machine's own
// server binaries, so that the tools and the tests need no database URL.
//
// The server listens on a unix socket, where every local role is trusted, and
// on 127.0.0.1, where roles log in with passwords. When the process runs as
// root the server runs as an unprivileged OS user, because PostgreSQL refuses
// to run as root.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	defaultSuperuser = "postgres"
	readyTimeout     = 30 * time.Second
	reuseTimeout     = 5 * time.Second
	portAttempts     = 5
	socketDirPrefix  = "landlord-sock-"
	logFileName      = "server.log"

	// maxSocketDirLen leaves room for "/.s.PGSQL.65535.lock" within the
	// smallest unix socket path limit (104 bytes on macOS, 108 on Linux).
	maxSocketDirLen = 80
)

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// Config configures Start. The zero value starts a throwaway server in a
// temporary directory on a free port.
type Config struct {
	// DataDir is the data directory. It is created and initialized when it
	// holds no cluster yet. "" means a temporary directory that Stop removes.
	DataDir string

	// Temporary marks DataDir as disposable: initdb skips fsync, the server
	// runs with fsync, synchronous_commit and full_page_writes off, and Stop
	// removes DataDir. It is implied when DataDir is "".
	Temporary bool

	// BinDir holds the postgres and initdb binaries. "" means FindBinDir.
	BinDir string

	// Port is the TCP port on 127.0.0.1. 0 picks a free one.
	Port int

	// Settings are extra postgresql.conf settings passed on the command line;
	// they override the defaults. port and unix_socket_directories are
	// managed by Start and may not be set here.
	Settings map[string]string

	// OSUser is the OS account that runs initdb and the server when this
	// process is root. "" means "postgres" when that account exists, else
	// "nobody". It is ignored when the process is not root.
	OSUser string

	// Superuser is the bootstrap superuser role created by initdb. "" means
	// "postgres".
	Superuser string

	// Logger receives what Start and Stop do (never passwords). nil discards.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("Port %d: must be between 0 and 65535", c.Port)
	}
	if c.Superuser != "" && !settingName.MatchString(c.Superuser) {
		return fmt.Errorf("Superuser %q: must be letters, digits and underscores", c.Superuser)
	}
	for k := range c.Settings {
		switch {
		case !settingName.MatchString(k):
			return fmt.Errorf("Settings[%q]: not a setting name", k)
		case strings.EqualFold(k, "port"):
			return fmt.Errorf("Settings[%q]: use Port", k)
		case strings.EqualFold(k, "unix_socket_directories"):
			return fmt.Errorf("Settings[%q]: the socket directory is managed by Start", k)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Superuser == "" {
		c.Superuser = defaultSuperuser
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DataDir == "" {
		c.Temporary = true
	}
}

// Server is a running PostgreSQL server started, or found running, by Start.
type Server struct {
	binDir    string
	dataDir   string
	socketDir string
	port      int
	superuser string
	osUser    string
	temporary bool
	logger    *slog.Logger
	pid       int
	// reused is set when Start or Running found the server already running
	// instead of starting it: Stop then leaves it running.
	reused bool
	// done is closed when the postmaster this process started exits; it is
	// nil for a server found already running.
	done chan struct{}

	mu      sync.Mutex
	stopped bool
	stopErr error
}

// Start starts a server on cfg.DataDir, initializing the directory first when
// it holds no cluster. When a server already runs on the directory and
// answers (left running by another process, or started by hand), Start
// returns it instead of starting another, with Reused reporting true, and
// Stop leaves it running. One that runs but does not answer within a few
// seconds is shut down (immediate) and replaced, and a postmaster.pid whose
// process is gone is removed. ctx bounds the start; without a deadline the
// wait for the server to accept connections is limited to 30 seconds.
//
// Once returned, the server outlives ctx and this process until Stop is
// called; a server that fails to come up is shut down before Start returns.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	cfg.setDefaults()
	st, err := newStarter(cfg)
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s, err := st.start(ctx)
	if err != nil {
		st.discard()
		return nil, fmt.Errorf("start postgres in %s: %w", st.dataDir, err)
	}
	return s, nil
}

// starter carries what Start has resolved from the Config.
type starter struct {
	cfg       Config
	binDir    string
	major     int
	dataDir   string
	socketDir string
	run       *runAs
	madeDirs  []string // created by this Start, removed again if it fails
}

func newStarter(cfg Config) (*starter, error) {
	st := &starter{cfg: cfg, binDir: cfg.BinDir}
	var err error
	if st.binDir == "" {
		if st.binDir, st.major, err = systemSearch().find(); err != nil {
			return nil, err
		}
	} else if st.major, err = checkBinDir(st.binDir); err != nil {
		return nil, fmt.Errorf("BinDir: %w", err)
	}
	if os.Geteuid() == 0 {
		if st.run, err = lookupRunAs(cfg.OSUser); err != nil {
			return nil, err
		}
	}
	if cfg.DataDir == "" {
		if st.dataDir, err = os.MkdirTemp("", "landlord-data-*"); err != nil {
			return nil, err
		}
		st.madeDirs = append(st.madeDirs, st.dataDir)
	} else if st.dataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("DataDir: %w", err)
	}
	return st, nil
}

// discard removes what a failed Start created.
func (st *starter) discard() {
	for _, d := range st.madeDirs {
		_ = os.RemoveAll(d)
	}
}

func (st *starter) start(ctx context.Context) (*Server, error) {
	log := st.cfg.Logger
	if err := st.prepareDataDir(ctx); err != nil {
		return nil, err
	}
	if s, err := st.reuse(ctx); s != nil || err != nil {
		return s, err
	}
	if err := st.prepareSocketDir(); err != nil {
		return nil, err
	}
	port := st.cfg.Port
	for attempt := 1; ; attempt++ {
		p := port
		if p == 0 {
			var err error
			if p, err = freePort(); err != nil {
				return nil, err
			}
		}
		s, err := st.launch(ctx, p)
		if err == nil {
			log.Info("postgres started", "pid", s.pid, "port", s.port, "socket_dir", s.socketDir, "data_dir", s.dataDir)
			return s, nil
		}
		// Another process can take a port between freePort closing it and
		// the server binding it.
		if port != 0 || !errors.Is(err, errPortTaken) || attempt == portAttempts {
			return nil, err
		}
		log.Info("port taken, retrying with another", "port", p)
	}
}

// prepareDataDir creates the data directory and runs initdb when it holds no
// cluster yet.
func (st *starter) prepareDataDir(ctx context.Context) error {
	if _, err := os.Stat(st.dataDir); errors.Is(err, fs.ErrNotExist) {
		// Parents we create must let the server's OS user through; the
		// data directory itself is private, as PostgreSQL demands.
		if err := os.MkdirAll(filepath.Dir(st.dataDir), 0o755); err != nil {
			return err
		}
		if err := os.Mkdir(st.dataDir, 0o700); err != nil {
			return err
		}
		st.madeDirs = append(st.madeDirs, st.dataDir)
	}
	if err := st.run.checkTraverse(filepath.Dir(st.dataDir)); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(st.dataDir, "PG_VERSION"))
	if err == nil {
		if v, _ := strconv.Atoi(strings.TrimSpace(string(b))); v != st.major {
			return fmt.Errorf("%w: data directory is PostgreSQL %s but the binaries in %s are %d",
				ErrUnsupportedVersion, strings.TrimSpace(string(b)), st.binDir, st.major)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := st.run.chown(st.dataDir); err != nil {
		return err
	}
	if err := os.Chmod(st.dataDir, 0o700); err != nil {
		return err
	}
	args := []string{"-D", st.dataDir, "-U", st.cfg.Superuser, "-A", "trust", "-E", "UTF8", "--locale=C"}
	if st.cfg.Temporary {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(st.binDir, "initdb"), args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: st.run.credential()}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, strings.TrimSpace(string(out)))
	}
	hba := filepath.Join(st.dataDir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(hbaConf), 0o600); err != nil {
		return err
	}
	if err := st.run.chown(hba); err != nil {
		return err
	}
	st.cfg.Logger.Info("initialized data directory", "data_dir", st.dataDir, "superuser", st.cfg.Superuser)
	return nil
}

// hbaConf trusts the unix socket, whose directory (the data directory or a
// fresh one of mode 0700) only the server's OS user and root can enter, and
// asks for passwords over TCP so that per-role passwords mean something.
const hbaConf = `# Written by landlord.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 trust
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
local   replication  all                 trust
host    replication  all   127.0.0.1/32  scram-sha-256
host    replication  all   ::1/128       scram-sha-256
`

// reuse returns the server that runs on the data directory when it answers.
// It returns nil, nil when there is none, after removing a stale
// postmaster.pid or shutting down a server that does not answer.
func (st *starter) reuse(ctx context.Context) (*Server, error) {
	log := st.cfg.Logger
	s, pf, err := st.find(ctx)
	switch {
	case err != nil:
		return nil, err
	case s != nil:
		log.Info("reusing running postgres", "pid", s.pid, "port", s.port, "socket_dir", s.socketDir, "data_dir", s.dataDir)
		return s, nil
	case pf == nil:
		return nil, nil
	}
	pidPath := filepath.Join(st.dataDir, "postmaster.pid")
	if !serves(pf.pid, st.dataDir) {
		log.Info("removing stale postmaster.pid", "pid", pf.pid, "data_dir", st.dataDir)
		return nil, os.Remove(pidPath)
	}
	log.Warn("running postgres does not answer, shutting it down", "pid", pf.pid, "data_dir", st.dataDir)
	if err := shutdown(ctx, pf.pid, func() bool { return !alive(pf.pid) }, true); err != nil {
		return nil, err
	}
	removeSocketDir(pf.socketDir, st.dataDir)
	if err := os.Remove(pidPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return nil, nil
}

// find looks for a server running on the data directory, changing nothing.
// It returns the server when one runs there and answers within a few
// seconds. Otherwise it returns a nil server and the postmaster.pid it read:
// nil when there is none (or it cannot be read), one whose process is gone
// (stale), or one whose server does not answer.
func (st *starter) find(ctx context.Context) (*Server, *pidFile, error) {
	pf, err := readPidFile(st.dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		// A garbled lock file: postgres itself explains it better.
		st.cfg.Logger.Warn("unreadable postmaster.pid", "err", err)
		return nil, nil, nil
	}
	if !serves(pf.pid, st.dataDir) {
		return nil, pf, nil
	}
	gone := func() bool { return !alive(pf.pid) }
	readyCtx, cancel := context.WithTimeout(ctx, reuseTimeout)
	defer cancel()
	// A server still starting up has not yet recorded its port and socket.
	waitUntil(readyCtx, reuseTimeout, func() bool {
		if p, err := readPidFile(st.dataDir); err == nil && p.pid == pf.pid {
			pf = p
		}
		return pf.socketDir != "" || gone()
	})
	s := &Server{
		binDir: st.binDir, dataDir: st.dataDir, socketDir: pf.socketDir, port: pf.port,
		superuser: st.cfg.Superuser, osUser: st.run.userName(), temporary: st.cfg.Temporary,
		logger: st.cfg.Logger, pid: pf.pid, reused: true,
	}
	if st.cfg.Port != 0 && st.cfg.Port != pf.port {
		st.cfg.Logger.Warn("running server listens on another port than configured", "port", pf.port, "configured", st.cfg.Port)
	}
	if s.socketDir != "" && s.waitReady(readyCtx, gone, true) == nil {
		return s, pf, nil
	}
	return nil, pf, ctx.Err()
}

// Running returns the server that runs on cfg.DataDir and answers, without
// starting, initializing or cleaning up anything: the way to look at, or
// stop, a server another process left running. Its Reused reports true.
// It returns an error wrapping ErrNotRunning when no server runs there (no
// postmaster.pid, or one whose process is gone), and another error when a
// process holds the directory but does not answer within a few seconds.
func Running(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("find postgres: DataDir is required")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("find postgres: %w", err)
	}
	cfg.setDefaults()
	st, err := newStarter(cfg)
	if err != nil {
		return nil, fmt.Errorf("find postgres: %w", err)
	}
	s, pf, err := st.find(ctx)
	switch {
	case err != nil:
		return nil, fmt.Errorf("find postgres in %s: %w", st.dataDir, err)
	case s != nil:
		return s, nil
	case pf == nil || !serves(pf.pid, st.dataDir):
		return nil, fmt.Errorf("%w in %s", ErrNotRunning, st.dataDir)
	}
	return nil, fmt.Errorf("find postgres in %s: process %d holds the data directory but does not answer", st.dataDir, pf.pid)
}

// prepareSocketDir puts the socket in the data directory when the path is
// short enough for a unix socket, else in a fresh directory under /tmp.
func (st *starter) prepareSocketDir() error {
	if len(st.dataDir) <= maxSocketDirLen {
		st.socketDir = st.dataDir
		return nil
	}
	root := "/tmp"
	if _, err := os.Stat(root); err != nil {
		root = os.TempDir()
	}
	dir, err := os.MkdirTemp(root, socketDirPrefix+"*")
	if err != nil {
		return err
	}
	st.madeDirs = append(st.madeDirs, dir)
	st.socketDir = dir
	return st.run.chown(dir)
}

// launch runs postgres in its own process group, so that a Ctrl-C meant for
// this process does not reach the server before Stop shuts it down cleanly.
func (st *starter) launch(ctx context.Context, port int) (*Server, error) {
	logPath := filepath.Join(st.dataDir, logFileName)
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := st.run.chown(logPath); err != nil {
		return nil, err
	}
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, err
	}

	args := []string{"-D", st.dataDir}
	settings := st.settings(port)
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		args = append(args, "-c", k+"="+settings[k])
	}
	cmd := exec.Command(filepath.Join(st.binDir, "postgres"), args...)
	cmd.Dir = "/"
	// A file, not a pipe: the server may outlive this process.
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: st.run.credential()}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &Server{
		binDir: st.binDir, dataDir: st.dataDir, socketDir: st.socketDir, port: port,
		superuser: st.cfg.Superuser, osUser: st.run.userName(), temporary: st.cfg.Temporary,
		logger: st.cfg.Logger, pid: cmd.Process.Pid, done: make(chan struct{}),
	}
	go func() {
		_ = cmd.Wait()
		close(s.done)
	}()

	readyCtx := ctx
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		readyCtx, cancel = context.WithTimeout(ctx, readyTimeout)
		defer cancel()
	}
	err = s.waitReady(readyCtx, s.exited, false)
	if err == nil {
		return s, nil
	}
	_ = shutdown(context.Background(), s.pid, s.exited, true)
	tail := logTail(logPath, offset)
	if strings.Contains(tail, "Address already in use") {
		err = fmt.Errorf("%w: %d: %w", errPortTaken, port, err)
	}
	where := logPath
	if slices.Contains(st.madeDirs, st.dataDir) {
		where = "(removed with the data directory this Start created)"
	}
	return nil, fmt.Errorf("%w\nserver log %s:\n%s", err, where, tail)
}

// ownServerSetting is provision.OwnServerSetting, which this package cannot
// import: the embedded server serves Landlord alone.
const ownServerSetting = "landlord.own_server"

// settings returns the server settings: defaults suited to landlord (logical
// decoding, many connections and locks for many tenants), then cfg.Settings,
// then the ones Start manages.
func (st *starter) settings(port int) map[string]string {
	m := map[string]string{
		"listen_addresses":          "127.0.0.1",
		"wal_level":                 "logical",
		"max_wal_senders":           "10",
		"max_replication_slots":     "10",
		"max_connections":           "300",
		"shared_buffers":            "128MB",
		"max_locks_per_transaction": "256",
		// Each backend keeps its open relation files in a cache of this
		// size (1,000 by default). A backend serving a thousand schema
		// tenants touches a heap and an index per tenant table, and at
		// the default it closes and reopens files on most calls
		// (README, Performance). The server uses fewer when the process's
		// open-file limit is lower.
		"max_files_per_process": "4000",
		// One statement may write at most this much to temporary files:
		// without a limit, a tenant's sort or hash over generate_series
		// fills the disk and stops every tenant (SECURITY.md, I40). Only
		// a superuser may raise it for a session.
		"temp_file_limit":   "4GB",
		"log_min_messages":  "warning",
		"logging_collector": "off",
		// The server is Landlord's alone: bootstrap closes its maintenance
		// databases to tenant roles (provision.OwnServerSetting,
		// SECURITY.md, I36). Settings may turn it off.
		ownServerSetting: "on",
	}
	if hasPgStatStatements(st.binDir) {
		m["shared_preload_libraries"] = "pg_stat_statements"
	}
	if st.cfg.Temporary {
		m["fsync"] = "off"
		m["synchronous_commit"] = "off"
		m["full_page_writes"] = "off"
	}
	maps.Copy(m, st.cfg.Settings)
	m["port"] = strconv.Itoa(port)
	m["unix_socket_directories"] = st.socketDir
	return m
}

// hasPgStatStatements reports whether the pg_stat_statements library is
// installed, which on Debian comes with the server but elsewhere may not.
func hasPgStatStatements(binDir string) bool {
	libDir := filepath.Join(binDir, "..", "lib")
	if out, err := exec.Command(filepath.Join(binDir, "pg_config"), "--pkglibdir").Output(); err == nil {
		libDir = strings.TrimSpace(string(out))
	}
	for _, ext := range []string{".so", ".dylib"} {
		if _, err := os.Stat(filepath.Join(libDir, "pg_stat_statements"+ext)); err == nil {
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the last lines the server logged after offset.
func logTail(path string, offset int64) string {
	const maxBytes, maxLines = 4096, 20
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > maxBytes {
		offset = fi.Size() - maxBytes
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, maxBytes))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return strings.Join(lines, "\n")
}

// waitReady waits until the server accepts a connection. It gives up when
// gone reports the server has exited, and, unless anyAnswer is set, when the
// server answers with an error other than "starting up". With anyAnswer, any
// answer from the server counts as ready: a wrong role name still proves
// that something serves the socket.
func (s *Server) waitReady(ctx context.Context, gone func() bool, anyAnswer bool) error {
	err := errors.New("server has not reported ready in postmaster.pid")
	for {
		// Connecting before the server says it is ready would only fill
		// its log with "the database system is starting up".
		if s.reportsReady() {
			err = s.ping(ctx)
			var pgErr *pgconn.PgError
			switch {
			case err == nil:
				return nil
			case errors.As(err, &pgErr) && pgErr.Code != pgerrcode.CannotConnectNow:
				if anyAnswer {
					return nil
				}
				return err
			}
		}
		if gone() {
			// The server log says why; a failed dial would not.
			return errors.New("server exited during startup")
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server not ready: %w (last error: %w)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) reportsReady() bool {
	pf, err := readPidFile(s.dataDir)
	return err == nil && pf.pid == s.pid && (pf.status == "ready" || pf.status == "standby")
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// URL returns a connection URL for database as the superuser over the unix
// socket, where no password is needed.
func (s *Server) URL(database string) string {
	// Slashes stay readable; spaces become %20, which libpq decodes (it
	// does not decode "+").
	host := strings.NewReplacer("%2F", "/", "+", "%20").Replace(url.QueryEscape(s.socketDir))
	return fmt.Sprintf("postgres://%s@/%s?host=%s&port=%d&sslmode=disable",
		url.PathEscape(s.superuser), url.PathEscape(database), host, s.port)
}

// TCPURL returns a connection URL for database as the superuser over TCP on
// 127.0.0.1. TCP connections authenticate with passwords, so callers set
// one on the role they log in as and add it to the URL.
func (s *Server) TCPURL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable",
		url.PathEscape(s.superuser), s.port, url.PathEscape(database))
}

// Port returns the server's TCP port, which is also part of its unix socket
// name.
func (s *Server) Port() int { return s.port }

// SocketDir returns the directory holding the server's unix socket.
func (s *Server) SocketDir() string { return s.socketDir }

// DataDir returns the server's data directory.
func (s *Server) DataDir() string { return s.dataDir }

// BinDir returns the directory of the binaries Start used.
func (s *Server) BinDir() string { return s.binDir }

// Superuser returns the name of the bootstrap superuser role.
func (s *Server) Superuser() string { return s.superuser }

// OSUser returns the OS user the server runs as when this process is root,
// and "" when the server runs as this process's own user.
func (s *Server) OSUser() string { return s.osUser }

// PID returns the process id of the postmaster.
func (s *Server) PID() int { return s.pid }

// Version returns the running server's version, such as "15.18".
func (s *Server) Version(ctx context.Context) (string, error) {
	conn, err := pgconn.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if v := conn.ParameterStatus("server_version"); v != "" {
		return strings.Fields(v)[0], nil
	}
	return "", errors.New("server did not report server_version")
}

// Reused reports whether the server was found already running (by Start or
// Running) rather than started by this process. Stop leaves such a server
// running; Shutdown stops it.
func (s *Server) Reused() bool { return s.reused }

// Stop stops a server this process started, as Shutdown does. A server found
// already running (Reused) is left running, with its data directory, even a
// temporary one: whoever started it may still use it. Calling Stop again
// returns the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	if s.reused {
		s.logger.Info("leaving running postgres as found", "pid", s.pid, "data_dir", s.dataDir)
		return nil
	}
	return s.Shutdown(ctx)
}

// Shutdown shuts the server down (fast: open sessions are ended and a
// checkpoint written), escalating to an immediate shutdown when that takes
// longer than 15 seconds or ctx ends, and then removes a temporary data
// directory. Unlike Stop it also stops a server found already running.
// Calling Shutdown again returns the first call's result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	gone := s.exited
	if s.done == nil {
		gone = func() bool { return !alive(s.pid) }
	}
	if err := shutdown(ctx, s.pid, gone, false); err != nil {
		s.stopErr = fmt.Errorf("stop postgres in %s: %w", s.dataDir, err)
		return s.stopErr
	}
	s.logger.Info("postgres stopped", "pid", s.pid, "data_dir", s.dataDir)
	removeSocketDir(s.socketDir, s.dataDir)
	if s.temporary {
		if err := os.RemoveAll(s.dataDir); err != nil {
			s.stopErr = fmt.Errorf("remove temporary data directory: %w", err)
		}
	}
	return s.stopErr
}
