package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

func newPsql(g *globals) *cobra.Command {
	var migrationsDir, tenantFlag string
	cmd := &cobra.Command{
		Use:   "psql [--tenant ID|SLUG] [-- PSQL-ARGUMENTS...]",
		Short: "Open psql as the administrator, or as one tenant in its context",
		Long: `psql runs this machine's psql (the one next to the PostgreSQL server binaries,
else the first on PATH) with standard input, output and error passed through.

Without --tenant the session is the administrator's, in the control database.
With --tenant it is the tenant's, the way its traffic runs:
  row       the app role in the control database
  schema    the app role switched to the tenant's role r_<id>, whose schema
            t_<id> is the only one it may use
  database  the tenant's role r_<id> in its own database t_<id>
with landlord.tenant_id set to the tenant, signed for an hour, and the search
path on the schema of its tables, so that row-level security shows its rows
and no others; after an hour the session sees no rows, and a new one does. A
read-only tenant's session runs read-only transactions. These settings are the
session's own: as in the tenant's traffic, SQL can change them, so the
session is a way to look at a tenant's data, not a boundary against its user.
Tenants that are suspended, moving, being provisioned or being deleted are
refused. Passwords reach psql through PGPASSWORD, never its command line.

Everything after -- goes to psql as it is, except the options that choose the
server, database and user (-h, -p, -U, -d and a database or user name), which
psql gets from landlord.

With the embedded server and none running, psql starts it for the session
and stops it when psql exits; one already running ("landlord server start")
stays running.
` + helpMigrations + `

Exit codes: 0 psql ended well; 1 the session could not be opened or psql
exited with an error (psql says why); 2 bad command line or bad input (a
malformed tenant id or slug, psql options landlord sets itself).`,
		Example: `  landlord psql
  landlord psql --tenant acme
  landlord psql --tenant acme -- -c 'SELECT count(*) FROM products'
  landlord psql --tenant 01a20915-aec6-7380-9488-7d104b64977b -- -f report.sql`,
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 && cmd.ArgsLenAtDash() != 0 {
				return usageError{fmt.Errorf("unexpected argument %q: psql's arguments go after --, as in: landlord psql -- -c 'SELECT 1'", a[0])}
			}
			return checkPsqlArgs(a)
		},
	}
	cmd.Flags().StringVar(&tenantFlag, "tenant", "", "open the session as this tenant (id or slug)")
	addMigrationsFlag(cmd, &migrationsDir)
	cmd.RunE = func(cmd *cobra.Command, psqlArgs []string) error {
		ctx := cmd.Context()
		var ref *tenantRef
		if cmd.Flags().Changed("tenant") {
			r, err := parseTenantRef(tenantFlag)
			if err != nil {
				return err
			}
			ref = &r
		}
		migrations, err := loadMigrations(migrationsDir)
		if err != nil {
			return err
		}
		psql, err := findPsql()
		if err != nil {
			return err
		}
		stderr := cmd.ErrOrStderr()
		return g.withDatabase(ctx, stderr, func(dbURL string) error {
			var s *psqlSession
			if ref == nil {
				cc, err := pgx.ParseConfig(dbURL)
				if err != nil {
					return err
				}
				s = &psqlSession{conn: &cc.Config}
			} else {
				// The installation is open only to find the tenant: an
				// interactive session holds none of its connections.
				in, err := openInstallation(ctx, dbURL, migrations, g.logger(stderr), provision.InstallNever)
				if err != nil {
					return err
				}
				s, err = tenantSession(cmd, in, *ref)
				g.close(in)
				if err != nil {
					return err
				}
			}
			s.tls = tlsParams(dbURL)
			c := exec.Command(psql, append([]string{"-d", s.conninfo()}, psqlArgs...)...)
			c.Env = s.env(os.Environ())
			c.Stdin, c.Stdout, c.Stderr = cmd.InOrStdin(), cmd.OutOrStdout(), stderr
			// Not bound to ctx: Ctrl-C in psql cancels its query, and must
			// not end the session under it.
			if err := c.Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return fmt.Errorf("psql exited with status %d", exit.ExitCode())
				}
				return fmt.Errorf("run psql: %w", err)
			}
			return nil
		})
	}
	return cmd
}

// psqlSession is who psql connects as, where, and with which settings.
type psqlSession struct {
	conn     *pgconn.Config
	settings [][2]string       // session settings, sent as PGOPTIONS -c name=value
	tls      map[string]string // libpq TLS parameters of the database URL
}

// tenantSession resolves ref and returns the session of its tenant.
func tenantSession(cmd *cobra.Command, in *installation, ref tenantRef) (*psqlSession, error) {
	ctx := cmd.Context()
	t, err := ref.lookup(ctx, in.dir)
	if err != nil {
		return nil, err
	}
	if t.State != tenant.StateActive && t.State != tenant.StateReadOnly {
		return nil, fmt.Errorf("tenant %s (%s): %w: only active and read-only tenants have sessions", t.Slug, t.ID, &tenant.StateError{ID: t.ID, State: t.State})
	}
	p := in.ll.Provisioner()
	s := &psqlSession{settings: [][2]string{
		{migration.TenantSetting, t.ID.String()},
		{"search_path", t.Schema},
	}}
	login, role := p.Roles().App, "none"
	switch t.Model {
	case tenant.ModelSchema:
		// The tenant's role cannot log in; the app role, a member, switches
		// to it, as its traffic does in every transaction.
		role = t.ID.RoleName()
		s.settings = append(s.settings, [2]string{"role", role})
	case tenant.ModelDatabase:
		login = t.ID.RoleName()
	}
	// Signed for the role the session runs as, like every transaction of
	// the tenant's traffic (SECURITY.md, I31).
	s.settings = append(s.settings, [2]string{migration.SignatureSetting, p.Roles().SignContext(t.ID, role)})
	if t.State == tenant.StateReadOnly {
		s.settings = append(s.settings, [2]string{"default_transaction_read_only", "on"})
	}
	cc, err := p.ConnConfig(ctx, t.Server, t.Database, login)
	if err != nil {
		return nil, err
	}
	s.conn = &cc.Config
	return s, nil
}

// conninfo is the libpq connection string of the session, without its
// password.
func (s *psqlSession) conninfo() string {
	kv := [][2]string{
		{"host", s.conn.Host},
		{"port", strconv.Itoa(int(s.conn.Port))},
		{"dbname", s.conn.Database},
		{"user", s.conn.User},
		{"sslmode", sslMode(s.conn)},
	}
	for _, k := range tlsKeys {
		if v, ok := s.tls[k]; ok {
			if k == "sslmode" {
				kv[4][1] = v
				continue
			}
			kv = append(kv, [2]string{k, v})
		}
	}
	var b strings.Builder
	for i, p := range kv {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s='%s'", p[0], strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(p[1]))
	}
	return b.String()
}

// env is the environment of psql: this process's, with the password and
// the session settings added.
func (s *psqlSession) env(base []string) []string {
	env := slices.DeleteFunc(slices.Clone(base), func(e string) bool {
		return strings.HasPrefix(e, "PGPASSWORD=") && s.conn.Password != ""
	})
	if s.conn.Password != "" {
		env = append(env, "PGPASSWORD="+s.conn.Password)
	}
	if len(s.settings) > 0 {
		opts := strings.Fields(os.Getenv("PGOPTIONS"))
		for _, kv := range s.settings {
			// Names and values are ids and identifiers Landlord derives:
			// no spaces or backslashes to escape.
			opts = append(opts, "-c", kv[0]+"="+kv[1])
		}
		env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, "PGOPTIONS=") })
		env = append(env, "PGOPTIONS="+strings.Join(opts, " "))
	}
	return env
}

// sslMode is the libpq sslmode that matches the TLS settings pgx parsed.
func sslMode(c *pgconn.Config) string {
	var plainFallback, tlsFallback bool
	for _, f := range c.Fallbacks {
		if f.TLSConfig == nil {
			plainFallback = true
		} else {
			tlsFallback = true
		}
	}
	switch {
	case c.TLSConfig == nil && tlsFallback:
		return "allow"
	case c.TLSConfig == nil:
		return "disable"
	case plainFallback:
		return "prefer"
	case c.TLSConfig.InsecureSkipVerify:
		return "require"
	}
	return "verify-full"
}

// tlsKeys are the libpq TLS parameters a database URL may carry, which
// psql needs as they are (pgx has turned them into a tls.Config).
var tlsKeys = []string{"sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl"}

// tlsParams returns the TLS parameters of a postgres:// URL; a keyword=value
// connection string gives none, and sslMode derives the mode.
func tlsParams(raw string) map[string]string {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil
	}
	m := map[string]string{}
	q := u.Query()
	for _, k := range tlsKeys {
		if q.Has(k) {
			m[k] = q.Get(k)
		}
	}
	return m
}

// findPsql returns the psql next to the server binaries, else psql on PATH.
func findPsql() (string, error) {
	if dir, err := embedded.FindBinDir(); err == nil {
		p := filepath.Join(dir, "psql")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	return "", errors.New("psql not found next to the PostgreSQL server binaries or on PATH: install the PostgreSQL client (Debian/Ubuntu: apt-get install -y postgresql-client; macOS: brew install libpq)")
}

// psqlValueLong are psql's long options that take the next argument as their
// value when it is not attached with "=", and psqlValueShort the letters of
// its short options that take the rest of the argument, or the next one.
var (
	psqlValueLong = []string{"command", "file", "set", "variable", "output", "log-file",
		"pset", "table-attr", "field-separator", "record-separator"}
	psqlValueShort = "cfvoLPTFR"
)

// checkPsqlArgs refuses the psql arguments that would choose another
// server, database or user than the session's.
func checkPsqlArgs(a []string) error {
	for i := 0; i < len(a); i++ {
		arg := a[i]
		switch {
		case arg == "--":
			return usageError{errors.New("psql arguments: a second -- would pass a database or user name to psql; landlord psql sets them")}
		case !strings.HasPrefix(arg, "-") || arg == "-":
			return usageError{fmt.Errorf("psql argument %q: landlord psql sets the database and user itself", arg)}
		case strings.HasPrefix(arg, "--"):
			name, _, attached := strings.Cut(arg[2:], "=")
			if slices.Contains([]string{"host", "port", "username", "dbname"}, name) {
				return usageError{fmt.Errorf("psql option %q: landlord psql sets the server, database and user itself", arg)}
			}
			if !attached && slices.Contains(psqlValueLong, name) {
				i++
			}
		default:
			// Short options may be bundled (-qc SQL, -qAtc SQL).
			for j, r := range arg[1:] {
				if strings.ContainsRune("hpUd", r) {
					return usageError{fmt.Errorf("psql option %q: landlord psql sets the server, database and user itself", arg)}
				}
				if strings.ContainsRune(psqlValueShort, r) {
					if j == len(arg)-2 {
						i++ // the value is the next argument
					}
					break
				}
			}
		}
	}
	return nil
}
