package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

func newTenants(g *globals) *cobra.Command {
	var migrationsDir string
	cmd := &cobra.Command{
		Use:   "tenants",
		Short: "Create, list, show and delete tenants, change their state, clean up after crashes",
		Long: `tenants manages the tenants of an installation: each lives in shared tables
guarded by row-level security (row), in its own schema (schema) or in its own
database (database). Commands that take one tenant accept its id or its slug.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants create acme --model schema --name "Acme Inc."
  landlord tenants list --model database --json
  landlord tenants show acme
  landlord tenants suspend acme --reason "unpaid invoice #1234"
  landlord tenants set acme statement_timeout=2s max_conns=2 --reason "runaway reports"
  landlord tenants top --window 1m
  landlord tenants delete acme --yes`,
		Args: args(noSubcommand),
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },

		SuggestionsMinimumDistance: 2,
	}
	addMigrationsFlag(cmd, &migrationsDir)
	cmd.AddCommand(
		newTenantsCreate(g, &migrationsDir),
		newTenantsList(g, &migrationsDir),
		newTenantsShow(g, &migrationsDir),
		newTenantsDelete(g, &migrationsDir),
		newTenantsState(g, &migrationsDir, "suspend", tenant.StateSuspended,
			"Refuse all traffic to a tenant until it is resumed",
			"suspend stops a tenant's traffic: its handle calls fail with tenant.ErrSuspended.\nAdmin scopes still reach it."),
		newTenantsState(g, &migrationsDir, "resume", tenant.StateActive,
			"Serve a suspended or read-only tenant again, or finish its provisioning",
			"resume makes a suspended or read-only tenant active again. A tenant whose\nprovisioning was interrupted (state provisioning) is provisioned to the end."),
		newTenantsState(g, &migrationsDir, "read-only", tenant.StateReadOnly,
			"Serve a tenant's reads and refuse its writes",
			"read-only lets a tenant read but not write: its transactions run read-only,\nwhich PostgreSQL enforces."),
		newTenantsSet(g, &migrationsDir),
		newTenantsReconcile(g, &migrationsDir),
		newTenantsTop(g, &migrationsDir),
		newTenantsExport(g, &migrationsDir),
		newTenantsImport(g, &migrationsDir),
		newTenantsClone(g, &migrationsDir),
		newTenantsPurge(g, &migrationsDir),
		newTenantsVerifyPurge(g, &migrationsDir),
		newTenantsRestore(g, &migrationsDir),
		newTenantsMove(g, &migrationsDir),
		newTenantsMoves(g, &migrationsDir),
	)
	return cmd
}

// noSubcommand rejects arguments to a command that only groups others, so
// that a mistyped subcommand is a usage error rather than a help page.
func noSubcommand(cmd *cobra.Command, a []string) error {
	if len(a) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", a[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg)
}

// tenantView is a tenant as the JSON output shows it. The field names are
// part of the command's interface: scripts rely on them.
type tenantView struct {
	ID          tenant.ID `json:"id"`
	Slug        string    `json:"slug"`
	DisplayName string    `json:"display_name"`
	Model       string    `json:"model"`
	Server      string    `json:"server"`
	Schema      string    `json:"schema"`
	Database    string    `json:"database"`
	State       string    `json:"state"`
	Version     int       `json:"version"`
	Epoch       int64     `json:"epoch"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Settings are the tenant's own settings that are set, by name
	// (tenants set).
	Settings map[string]string `json:"settings"`
}

func viewOf(t tenant.Tenant) tenantView {
	return tenantView{
		ID: t.ID, Slug: t.Slug, DisplayName: t.DisplayName, Model: string(t.Model), Server: t.Server,
		Schema: t.Schema, Database: t.Database, State: string(t.State), Version: t.SchemaVersion,
		Epoch: t.Epoch, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt, Settings: t.Settings.Map(),
	}
}

// timeText formats a timestamp for tables: UTC, to the second.
func timeText(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

// fields prints name/value pairs aligned, for the human form of one object.
func fields(w io.Writer, pairs [][2]string) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, p := range pairs {
		fmt.Fprintf(tw, "%s\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

func tenantFields(t tenant.Tenant) [][2]string {
	return [][2]string{
		{"ID", t.ID.String()},
		{"Slug", t.Slug},
		{"Name", t.DisplayName},
		{"Model", string(t.Model)},
		{"Server", t.Server},
		{"Schema", t.Schema},
		{"Database", t.Database},
		{"State", string(t.State)},
		{"Version", fmt.Sprint(t.SchemaVersion)},
		{"Epoch", fmt.Sprint(t.Epoch)},
		{"Settings", t.Settings.String()},
		{"Created", timeText(t.CreatedAt)},
		{"Updated", timeText(t.UpdatedAt)},
	}
}

// printTenant prints one tenant: a JSON object, or its fields.
func printTenant(o *output, t tenant.Tenant) error {
	if o.json {
		return o.emit(viewOf(t))
	}
	return fields(o.w, tenantFields(t))
}

// badInput reports whether err is the library refusing what the user asked
// for, as opposed to failing while doing it.
func badInput(err error) bool {
	for _, target := range []error{tenant.ErrBadSlug, tenant.ErrBadModel, tenant.ErrBadDisplayName, tenant.ErrBadID, tenant.ErrBadSetting} {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func newTenantsCreate(g *globals, migrationsDir *string) *cobra.Command {
	var model, name, id, server string
	cmd := &cobra.Command{
		Use:   "create SLUG --model row|schema|database",
		Short: "Create a tenant in one of the three isolation models",
		Long: `create provisions a tenant: a directory entry (row), a schema and role (schema),
or a database and login role (database), with the application's tables migrated
to the head version, and prints it.

The slug is normalized (Unicode NFC, lower case; the command says so when that
changes it) and must be 3-40 characters: a letter, then letters a-z, digits or
single hyphens. PostgreSQL's and Landlord's own names are reserved: the
prefixes pg-, t-, r-, xn-- and landlord-, and names such as admin, www, public
and postgres. Without --name the display name is the slug. Bad input is
refused before anything is written. With --id the command can be run again: a second
run with the same id, slug and model finishes an interrupted creation or prints
the tenant that exists.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants create acme --model row
  landlord tenants create big-market --model database --name "Big Market"

  # safe to retry: the same id finishes the same tenant
  landlord tenants create acme --model schema --id 0190f3c4-8a2b-7c4d-9e5f-0a1b2c3d4e5f --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&model, "model", "", "isolation model: row, schema or database (required)")
	cmd.Flags().StringVar(&name, "name", "", "display name, at most 200 characters")
	cmd.Flags().StringVar(&id, "id", "", "tenant id (a UUID) to use, so that a retry finishes the same tenant")
	cmd.Flags().StringVar(&server, "server", "", `server to place the tenant on (default: the directory's own, "main"; "least-loaded": the server with the least load, see "servers list")`)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if server == provision.LeastLoadedName {
			server = provision.LeastLoaded
		}
		if model == "" {
			return usageError{errors.New("--model is required: row, schema or database")}
		}
		m, err := tenant.ParseModel(model)
		if err != nil {
			return usageError{err}
		}
		slug, err := tenant.NormalizeSlug(a[0])
		if err != nil {
			return usageError{err}
		}
		if slug != a[0] {
			fmt.Fprintf(cmd.ErrOrStderr(), "landlord: slug %q is stored as %q\n", a[0], slug)
		}
		if name == "" {
			name = slug
		}
		req := provision.Request{Slug: slug, Model: m, DisplayName: name, Server: server}
		if id != "" {
			if req.ID, err = tenant.ParseID(id); err != nil {
				return usageError{fmt.Errorf("--id: %w", err)}
			}
			if req.ID.IsZero() {
				return usageError{fmt.Errorf("--id: %w: the zero id names no tenant", tenant.ErrBadID)}
			}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallAlways, func(in *installation) error {
			t, err := in.ll.CreateTenant(ctx, req)
			if err != nil {
				if badInput(err) {
					return usageError{err}
				}
				return err
			}
			return printTenant(o, t)
		})
	}
	return cmd
}

// states lists every lifecycle state, for --state.
var states = []tenant.State{
	tenant.StateProvisioning, tenant.StateActive, tenant.StateReadOnly,
	tenant.StateMoving, tenant.StateSuspended, tenant.StateDeleting,
}

func parseState(s string) (tenant.State, error) {
	if st := tenant.State(s); slices.Contains(states, st) {
		return st, nil
	}
	names := make([]string, len(states))
	for i, st := range states {
		names[i] = string(st)
	}
	return "", fmt.Errorf("state %q: unknown state: use %s", s, strings.Join(names, ", "))
}

func newTenantsList(g *globals, migrationsDir *string) *cobra.Command {
	var model, state, server string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants, optionally only those of one model, state or server",
		Long: `list prints the tenants of the directory, ordered by slug: id, slug, model,
state, schema version, placement (the schema, or the database, that holds the
tenant's tables) and creation time. With --json it prints one JSON object per
line (NDJSON), so that scripts can process the list as it streams.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants list
  landlord tenants list --model schema --state suspended

  # slugs of every database tenant
  landlord tenants list --model database --json | jq -r .slug`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&model, "model", "", "only tenants of this model: row, schema or database")
	cmd.Flags().StringVar(&state, "state", "", "only tenants in this state: provisioning, active, read_only, moving, suspended or deleting")
	cmd.Flags().StringVar(&server, "server", "", "only tenants on this server")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var f directory.Filter
		if model != "" {
			m, err := tenant.ParseModel(model)
			if err != nil {
				return usageError{err}
			}
			f.Model = m
		}
		if state != "" {
			s, err := parseState(state)
			if err != nil {
				return usageError{err}
			}
			f.State = s
		}
		f.Server = server
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			if f.Server != "" {
				// As create says: a server the directory does not list is
				// an error, not an empty table.
				if _, err := in.server(ctx, f.Server); err != nil {
					return fmt.Errorf("--server: %w", err)
				}
			}
			ts, err := in.dir.List(ctx, f)
			if err != nil {
				return err
			}
			if len(ts) == 0 && !o.json {
				o.printf("No tenants%s.\n", map[bool]string{true: " match the filters", false: ""}[f != directory.Filter{}])
				return nil
			}
			rows := make([][]string, len(ts))
			vs := make([]any, len(ts))
			for i, t := range ts {
				rows[i] = []string{t.ID.String(), t.Slug, string(t.Model), string(t.State), fmt.Sprint(t.SchemaVersion), placement(t), timeText(t.CreatedAt)}
				vs[i] = viewOf(t)
			}
			return o.lines([]string{"ID", "SLUG", "MODEL", "STATE", "VERSION", "PLACEMENT", "CREATED"}, rows, vs)
		})
	}
	return cmd
}

// stepView is one provisioning ledger entry in JSON output.
type stepView struct {
	Operation string    `json:"operation"`
	Step      string    `json:"step"`
	Detail    string    `json:"detail"`
	At        time.Time `json:"at"`
}

// objectView is one catalog object of a tenant in JSON output.
type objectView struct {
	Kind     string `json:"kind"` // role, database or schema
	Name     string `json:"name"`
	Database string `json:"database,omitempty"` // for a schema: the database holding it
	Exists   *bool  `json:"exists"`             // null when it could not be checked
	Error    string `json:"error,omitempty"`    // why it could not be checked
}

// tenantDetail is the JSON output of show.
type tenantDetail struct {
	tenantView
	Steps   []stepView   `json:"steps"`
	Objects []objectView `json:"objects"`
}

func newTenantsShow(g *globals, migrationsDir *string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show " + tenantArg,
		Short: "Show one tenant: its directory entry, ledger and objects",
		Long: `show prints one tenant in detail: its directory entry, every step of its
provisioning ledger (creation, deletion, in order), and whether the objects it
should own exist in the PostgreSQL catalog: its role and schema (schema model),
its login role, database and the schema inside it (database model), or the
shared schema (row model).
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants show acme
  landlord tenants show 0190f3c4-8a2b-7c4d-9e5f-0a1b2c3d4e5f --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			t, err := ref.lookup(ctx, in.dir)
			if err != nil {
				return err
			}
			steps, err := in.dir.Steps(ctx, t.ID)
			if err != nil {
				return err
			}
			d := tenantDetail{tenantView: viewOf(t), Steps: make([]stepView, len(steps)), Objects: in.catalog(ctx, t)}
			for i, s := range steps {
				d.Steps[i] = stepView{Operation: s.Operation, Step: s.Step, Detail: s.Detail, At: s.At}
			}
			if o.json {
				return o.emit(d)
			}
			return printDetail(o, t, d)
		})
	}
	return cmd
}

func printDetail(o *output, t tenant.Tenant, d tenantDetail) error {
	pairs := tenantFields(t)
	// Who set the state and the settings, when and why.
	for _, last := range []struct{ operation, name string }{{directory.StateOperation, "State set"}, {directory.SettingsOperation, "Settings set"}} {
		for i := len(d.Steps) - 1; i >= 0; i-- {
			if s := d.Steps[i]; s.Operation == last.operation {
				pairs = append(pairs, [2]string{last.name, fmt.Sprintf("%s at %s: %s", s.Step, timeText(s.At), oneLine(s.Detail))})
				break
			}
		}
	}
	if err := fields(o.w, pairs); err != nil {
		return err
	}
	o.printf("\nObjects in the catalog:\n")
	rows := make([][]string, len(d.Objects))
	for i, ob := range d.Objects {
		where := ob.Database
		if where == "" {
			where = "-"
		}
		exists := "unknown: " + ob.Error
		if ob.Exists != nil {
			exists = map[bool]string{true: "yes", false: "MISSING"}[*ob.Exists]
		}
		rows[i] = []string{ob.Kind, ob.Name, where, exists}
	}
	if err := o.table([]string{"KIND", "NAME", "IN DATABASE", "EXISTS"}, rows, nil); err != nil {
		return err
	}
	o.printf("\nProvisioning ledger:\n")
	rows = make([][]string, len(d.Steps))
	for i, s := range d.Steps {
		rows[i] = []string{timeText(s.At), s.Operation, s.Step, oneLine(s.Detail)}
	}
	return o.table([]string{"AT", "OPERATION", "STEP", "DETAIL"}, rows, nil)
}

// catalogTimeout bounds the catalog checks of show, so that an unreachable
// server makes the objects "unknown" instead of hanging the command.
const catalogTimeout = 10 * time.Second

// catalog reports which of the objects t should own exist. Objects that
// cannot be checked (server unreachable) are reported with the reason.
func (in *installation) catalog(ctx context.Context, t tenant.Tenant) []objectView {
	var objs []objectView
	switch t.Model {
	case tenant.ModelRow:
		objs = []objectView{{Kind: "schema", Name: t.Schema, Database: t.Database}}
	case tenant.ModelSchema:
		objs = []objectView{{Kind: "role", Name: t.ID.RoleName()}, {Kind: "schema", Name: t.Schema, Database: t.Database}}
	case tenant.ModelDatabase:
		objs = []objectView{{Kind: "role", Name: t.ID.RoleName()}, {Kind: "database", Name: t.Database}, {Kind: "schema", Name: t.Schema, Database: t.Database}}
	}
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	fail := func(err error) []objectView {
		for i := range objs {
			objs[i].Error = oneLine(err.Error())
		}
		return objs
	}
	s, err := in.server(ctx, t.Server)
	if err != nil {
		return fail(err)
	}
	conn, err := pgx.ConnectConfig(ctx, in.serverConnConfig(s, s.Database))
	if err != nil {
		return fail(fmt.Errorf("connect to server %q: %w", s.ID, err))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for i := range objs {
		ob := &objs[i]
		var q string
		switch ob.Kind {
		case "role":
			q = `SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)`
		case "database":
			q = `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`
		case "schema":
			if ob.Database != s.Database {
				ob.Exists, ob.Error = in.schemaIn(ctx, conn, s, ob.Database, ob.Name)
				continue
			}
			q = `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`
		}
		var b bool
		if err := conn.QueryRow(ctx, q, ob.Name).Scan(&b); err != nil {
			ob.Error = oneLine(err.Error())
			continue
		}
		ob.Exists = &b
	}
	return objs
}

// schemaIn checks for schema in database, another database of server s than
// the one conn is connected to: a database that does not exist holds no
// schema.
func (in *installation) schemaIn(ctx context.Context, conn *pgx.Conn, s directory.Server, database, schema string) (*bool, string) {
	var b bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, database).Scan(&b); err != nil {
		return nil, oneLine(err.Error())
	}
	if !b {
		return &b, ""
	}
	dc, err := pgx.ConnectConfig(ctx, in.serverConnConfig(s, database))
	if err != nil {
		return nil, oneLine(fmt.Sprintf("connect to database %s: %v", database, err))
	}
	defer dc.Close(context.WithoutCancel(ctx))
	if err := dc.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&b); err != nil {
		return nil, oneLine(err.Error())
	}
	return &b, ""
}

// deleted is the JSON output of delete: the tenant as it was found, as
// every other tenant command prints it, marked deleted.
type deleted struct {
	tenantView
	Deleted bool `json:"deleted"`
}

func newTenantsDelete(g *globals, migrationsDir *string) *cobra.Command {
	var yes bool
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "delete " + tenantArg,
		Short: "Delete a tenant and all of its data",
		Long: `delete removes a tenant for good: its rows (row model), its schema and role
(schema model) or its database and login role (database model), then its
directory entry. The tenant first moves to state deleting, so traffic stops
at once; an interrupted delete is finished by running it again or by
"landlord tenants reconcile".

On a terminal it asks you to type the tenant's slug to confirm. When standard
input is not a terminal it refuses to run without --yes.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  # asks for the slug before deleting
  landlord tenants delete acme

  # in scripts
  landlord tenants delete 0190f3c4-8a2b-7c4d-9e5f-0a1b2c3d4e5f --yes --json`,
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking for confirmation")
	cmd.Flags().DurationVar(&grace, "grace", 0, `keep the tenant, without traffic and restorable, this long before purging it (e.g. 72h); default: purge at once`)
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		if err := checkGrace(grace); err != nil {
			return err
		}
		stdin := cmd.InOrStdin()
		if !yes && !isTerminal(stdin) {
			return usageError{fmt.Errorf("refusing to delete tenant %q without confirmation: standard input is not a terminal; pass --yes", a[0])}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			t, err := ref.lookup(ctx, in.dir)
			if err != nil {
				return err
			}
			if !yes {
				if err := confirm(ctx, stdin, cmd.ErrOrStderr(), t); err != nil {
					return err
				}
			}
			return deleteTenant(ctx, in, o, t, grace)
		})
	}
	return cmd
}

// isTerminal reports whether r is a terminal, where a person can answer.
func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// errNotConfirmed is returned by delete when the confirmation did not match.
var errNotConfirmed = errors.New("confirmation did not match the slug; nothing deleted")

// confirm asks on w for the slug of t and reads the answer from r. Ctrl-C
// (ctx ending) stops the wait at once, without a newline from the user;
// nothing is deleted then.
func confirm(ctx context.Context, r io.Reader, w io.Writer, t tenant.Tenant) error {
	fmt.Fprintf(w, "This deletes tenant %s (%s, %s) and all of its data.\nType its slug to confirm: ", t.Slug, t.Model, t.ID)
	type answer struct {
		line string
		err  error
	}
	// The reader goroutine outlives an interrupted prompt, blocked on
	// standard input until the process exits; nothing reads its answer.
	got := make(chan answer, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadString('\n')
		got <- answer{line, err}
	}()
	var a answer
	select {
	case <-ctx.Done():
		fmt.Fprintln(w)
		return fmt.Errorf("confirmation: %w; nothing deleted", context.Cause(ctx))
	case a = <-got:
	}
	if a.err != nil && !errors.Is(a.err, io.EOF) {
		return fmt.Errorf("read confirmation: %w", a.err)
	}
	if strings.TrimSpace(a.line) != t.Slug {
		return errNotConfirmed
	}
	return nil
}

func newTenantsState(g *globals, migrationsDir *string, use string, to tenant.State, short, long string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   use + " " + tenantArg + " --reason TEXT",
		Short: short,
		Long: long + `

It runs in an admin scope: --reason says why, and is logged with the change
(run with --verbose to see the log). The tenant's new state is printed.
` + helpMigrations + "\n" + helpExitCodes,
		Example: fmt.Sprintf(`  landlord tenants %s acme --reason "ticket 4711"
  landlord tenants %s 0190f3c4-8a2b-7c4d-9e5f-0a1b2c3d4e5f --reason "ticket 4711" --json`, use, use),
		Args: args(cobra.ExactArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the log (required)")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		if strings.TrimSpace(reason) == "" {
			return usageError{fmt.Errorf("--reason is required: say why the tenant is to be %s; it is logged", to)}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withTenantAdmin(ctx, g, cmd, *migrationsDir, ref, reason, func(in *installation, t tenant.Tenant, admin *landlord.Admin) error {
			var err error
			if to == tenant.StateActive && t.State == tenant.StateProvisioning {
				t, err = admin.ResumeTenant(ctx, t.ID)
			} else {
				t, err = admin.SetState(ctx, t.ID, to)
			}
			if err != nil {
				return fmt.Errorf("%s tenant %q: %w", use, ref.arg, err)
			}
			if o.json {
				return o.emit(viewOf(t))
			}
			o.printf("Tenant %s (%s) is now %s.\n", t.Slug, t.ID, t.State)
			return nil
		})
	}
	return cmd
}

func newTenantsSet(g *globals, migrationsDir *string) *cobra.Command {
	var reason string
	var reset bool
	cmd := &cobra.Command{
		Use:   "set " + tenantArg + " NAME=VALUE... --reason TEXT",
		Short: "Bound a tenant's work: its statement timeout, memory, connections",
		Long: `set changes a tenant's own settings, which every handle of every application
process applies to the tenant's calls from its next one on (at once in the
process that changes them, within the routing cache's age elsewhere):

  statement_timeout                     longest statement (2s, 500ms, 1m)
  lock_timeout                          longest wait for a lock
  idle_in_transaction_session_timeout   longest idle time inside a transaction
  work_mem                              memory of one sort or hash (64MB, 4096kB)
  max_conns                             connections the tenant holds at once
                                        on a server, per process

The first four are PostgreSQL's settings, set in each of the tenant's
transactions; max_conns can only lower the handle's own cap. NAME=default
unsets one; --reset unsets all before the new ones apply; settings not named
keep their values. They bound the application's own work: SQL inside the
tenant's transaction can still SET its own statement_timeout.

It runs in an admin scope: --reason says why, and is logged with the change,
which the tenant's ledger keeps (tenants show). The tenant is printed.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants set acme statement_timeout=2s work_mem=16MB --reason "ticket 4711"
  landlord tenants set acme max_conns=default --reason "the reports are fixed"
  landlord tenants set acme --reset --reason "back to the defaults" --json`,
		Args: args(cobra.MinimumNArgs(1)),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the log (required)")
	cmd.Flags().BoolVar(&reset, "reset", false, "unset every setting before the ones given apply")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		ref, err := parseTenantRef(a[0])
		if err != nil {
			return err
		}
		pairs := a[1:]
		if len(pairs) == 0 && !reset {
			return usageError{errors.New("name at least one setting as NAME=VALUE, or give --reset; the settings are " + strings.Join(tenant.SettingNames, ", "))}
		}
		// Checked before anything is opened: a bad pair changes nothing.
		if _, err := (tenant.Settings{}).ParseSettings(pairs); err != nil {
			return usageError{err}
		}
		if strings.TrimSpace(reason) == "" {
			return usageError{errors.New("--reason is required: say why the tenant's settings change; it is logged")}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withTenantAdmin(ctx, g, cmd, *migrationsDir, ref, reason, func(in *installation, t tenant.Tenant, admin *landlord.Admin) error {
			var err error
			s := t.Settings
			if reset {
				s = tenant.Settings{}
			}
			if s, err = s.ParseSettings(pairs); err != nil {
				return usageError{err}
			}
			if t, err = admin.SetSettings(ctx, t.ID, s); err != nil {
				return fmt.Errorf("set the settings of tenant %q: %w", ref.arg, err)
			}
			return printTenant(o, t)
		})
	}
	return cmd
}

// reconcileView is the JSON output of reconcile.
type reconcileView struct {
	Resumed  []tenant.ID  `json:"resumed"`
	Deleted  []tenant.ID  `json:"deleted"`
	Skipped  []tenant.ID  `json:"skipped"`
	Dropped  []objectName `json:"dropped"`
	Failures []string     `json:"failures"`
	// Moves whose mover was gone: finished (past their fence) or undone.
	MovesFinished []tenant.ID `json:"moves_finished"`
	MovesUndone   []tenant.ID `json:"moves_undone"`
}

// objectName names a dropped catalog object.
type objectName struct {
	Kind string `json:"kind"` // database, schema or role
	Name string `json:"name"`
}

func newTenantsReconcile(g *globals, migrationsDir *string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Finish interrupted creations, deletions and moves, drop orphaned objects",
		Long: `reconcile cleans up after crashes: it finishes every provisioning and every
deletion that was interrupted, and drops the schemas, databases and roles that
carry this installation's mark but belong to no tenant in the directory. A
move whose mover stopped is undone when it had not reached its fence (the
tenant stays where it was, its replication slot goes) and finished when it
had (the tenant's calls stop waiting). Tenants another process is working on
are skipped; objects of other installations are never touched. It prints
what it resumed, deleted, finished, undone, skipped and dropped, and goes on
past failures, which make it exit with 1.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants reconcile
  landlord tenants reconcile --reason "after the outage of 2026-11-23" --json`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().StringVar(&reason, "reason", "reconcile from the landlord command", "why, for the log")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := requireReason(reason); err != nil {
			return err
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallExisting, func(in *installation) error {
			admin, err := in.ll.Admin(ctx, reason)
			if err != nil {
				return usageError{err}
			}
			rep, err := admin.Reconcile(ctx)
			if err != nil {
				return err
			}
			v := reconcileView{
				Resumed: orEmpty(rep.Resumed), Deleted: orEmpty(rep.Deleted), Skipped: orEmpty(rep.Skipped),
				Dropped: []objectName{}, Failures: []string{},
				MovesFinished: orEmpty(rep.MovesFinished), MovesUndone: orEmpty(rep.MovesUndone),
			}
			for _, ob := range rep.Orphans {
				kind, name, _ := strings.Cut(ob, " ")
				v.Dropped = append(v.Dropped, objectName{Kind: kind, Name: name})
			}
			for _, f := range rep.Failures {
				v.Failures = append(v.Failures, oneLine(f.Error()))
			}
			if o.json {
				if err := o.emit(v); err != nil {
					return err
				}
			} else {
				printReconcile(ctx, o, in, v)
			}
			if n := len(v.Failures); n > 0 {
				return fmt.Errorf("reconcile: %d of its steps failed (listed above); run it again once the cause is fixed", n)
			}
			return nil
		})
	}
	return cmd
}

// requireReason refuses an empty --reason as bad input, before anything is
// opened: an admin scope logs it with every use.
func requireReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return usageError{errors.New("--reason must not be empty: it is logged")}
	}
	return nil
}

func orEmpty(ids []tenant.ID) []tenant.ID {
	if ids == nil {
		return []tenant.ID{}
	}
	return ids
}

func printReconcile(ctx context.Context, o *output, in *installation, v reconcileView) {
	// Tenants still in the directory are shown with their slugs; deleted
	// ones only have their ids left.
	names := func(ids []tenant.ID) string {
		if len(ids) == 0 {
			return "none"
		}
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = id.String()
			if t, err := in.dir.Get(ctx, id); err == nil {
				s[i] = t.Slug + " (" + id.String() + ")"
			}
		}
		return strings.Join(s, ", ")
	}
	dropped := "none"
	if len(v.Dropped) > 0 {
		s := make([]string, len(v.Dropped))
		for i, d := range v.Dropped {
			s[i] = d.Kind + " " + d.Name
		}
		dropped = strings.Join(s, ", ")
	}
	_ = fields(o.w, [][2]string{
		{"Resumed:", names(v.Resumed)},
		{"Deleted:", names(v.Deleted)},
		{"Moves finished:", names(v.MovesFinished)},
		{"Moves undone:", names(v.MovesUndone)},
		{"Skipped (busy):", names(v.Skipped)},
		{"Dropped orphans:", dropped},
		{"Failures:", fmt.Sprint(len(v.Failures))},
	})
	for _, f := range v.Failures {
		o.printf("  %s\n", f)
	}
}
