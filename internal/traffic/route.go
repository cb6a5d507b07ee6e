package traffic

import (
	"cmp"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// An enter statement sets the tenant context of one transaction. It is
// prepared on every tenant connection and sent in the same round trip as the
// statement it guards (ARCHITECTURE.md, "Context in the same round trip"). Its settings are transaction-local, so
// they end with the transaction and a pooled connection carries nothing to
// its next user (SECURITY.md, I06).
//
// In the row and database models only the tenant setting changes: the
// connection's session role and search path are already the right ones. In
// the schema model the transaction also switches to the tenant's role and
// schema. pg_temp goes last on every path, so a temporary table can never
// shadow a tenant table (SECURITY.md, I18). A read-only tenant's transactions are
// read-only in the database itself.
//
// Session state that tenant SQL leaves behind is handled in two layers.
// Statements that can leave it (SET, RESET, DECLARE, LISTEN, PREPARE,
// set_config, session advisory locks; see leavesSessionState) cost their
// connection: it is closed after the call instead of going back to the pool.
// And before it sets anything, the enter statement checks that the
// connection has no session-level role, the one leftover that would change
// what a later transaction may touch (a function could set one where no
// statement text shows it). If it has, the enter statement fails, which
// aborts the round trip before the guarded statement runs; the handle then
// closes the connection and retries on another (see refused). A leftover
// tenant setting or search path needs no check: every transaction sets its
// own tenant, and privileges keep any other path away from tenant tables.
// The check costs one setting read; overriding the role in every
// transaction would cost a setting change and its revert on every call.
//
// With Config.TagSessions each transaction also sets application_name to
// "landlord tenant <id>", so pg_stat_activity and server logs (%a in
// log_line_prefix) show whose work a backend is doing. A tenant with
// settings of its own (tenant.Settings: statement_timeout, work_mem, ...)
// sets them too, transaction-locally like the rest; its enter statement
// is prepared on a connection the first time that connection serves a
// tenant with the same settings' names, not when it opens.
type enter struct{ name, sql string }

// dirtyCheck refuses a connection left with a session-level role;
// dirtyCheckShared also one whose session search path is not the one it
// was opened with ($3), which a DO block or a function could have changed
// where no statement text shows it (SECURITY.md, I34). In the schema model
// every transaction sets its own path.
const (
	dirtyCheck       = `CASE WHEN current_setting('role') <> 'none' THEN current_setting('` + refusedSetting + `') END`
	dirtyCheckShared = `CASE WHEN current_setting('role') <> 'none' OR current_setting('search_path') <> $3 THEN current_setting('` + refusedSetting + `') END`
)

// refusedSetting names no setting: reading it is how the enter statement
// raises its error, with a message that says why.
const refusedSetting = "landlord.refused: session state was left on this connection"

// enterKind is what an enter statement sets besides the tenant.
type enterKind int

const (
	kindShared enterKind = iota // row and database models: the tenant only
	kindSchema                  // schema model: tenant, role and search path
	// kindPooled is for traffic behind a transaction pooler: nothing is
	// prepared (the name is the SQL itself), nothing is checked, and every
	// transaction sets tenant, role and path, since the server connection
	// may have served anyone before. The role "none" is the connection's
	// own login role.
	kindPooled
)

// enterFor composes the enter statement of kind. Parameters: $1 the tenant
// id, $2 its signature (migration.SignContext); for kindShared $3 the
// connection's own search path, to check; for kindSchema and kindPooled $3
// the role and $4 the search path, to set; when tagged, the application
// name; then the values of the settings named by settings, in order (the
// names are PostgreSQL's, from tenant.Settings.ServerSettings, never user
// text).
func enterFor(kind enterKind, readOnly, tagged bool, settings ...string) enter {
	var b strings.Builder
	name := "landlord_enter"
	b.WriteString("SELECT ")
	switch kind {
	case kindShared:
		b.WriteString(dirtyCheckShared + ", ")
	case kindSchema:
		b.WriteString(dirtyCheck + ", ")
	}
	b.WriteString("set_config('" + migration.TenantSetting + "', $1, true), set_config('" + migration.SignatureSetting + "', $2, true)")
	next := 4
	if kind != kindShared {
		b.WriteString(", set_config('role', $3, true), set_config('search_path', $4, true)")
		next = 5
		name += "_schema"
	}
	if readOnly {
		b.WriteString(", set_config('transaction_read_only', 'on', true)")
		name += "_ro"
	}
	if tagged {
		fmt.Fprintf(&b, ", set_config('application_name', $%d, true)", next)
		name += "_tagged"
		next++
	}
	for _, n := range settings {
		fmt.Fprintf(&b, ", set_config('%s', $%d, true)", n, next)
		name += "_" + cmp.Or(settingCodes[n], n)
		next++
	}
	if kind == kindPooled {
		return enter{b.String(), b.String()}
	}
	return enter{name, b.String()}
}

// settingCodes shorten the names of a tenant's settings in the names of
// enter statements: the server keeps only the first 63 bytes of a prepared
// statement's name, and two statements whose names agree that far would
// be taken for one.
var settingCodes = map[string]string{
	tenant.SettingStatementTimeout:         "st",
	tenant.SettingLockTimeout:              "lt",
	tenant.SettingIdleInTransactionTimeout: "it",
	tenant.SettingWorkMem:                  "wm",
}

// preparedEnters are the enter statements prepared on every tenant
// connection that is not behind a pooler.
func preparedEnters(tagged bool) []enter {
	var out []enter
	for _, k := range []enterKind{kindShared, kindSchema} {
		for _, ro := range []bool{false, true} {
			out = append(out, enterFor(k, ro, tagged))
		}
	}
	return out
}

// searchPath is the search path of a connection or transaction that works
// in schema.
func searchPath(schema string) string { return ident.Quote(schema) + ", pg_temp" }

// route is the cached routing entry of one tenant at one routing epoch.
type route struct {
	t      tenant.Tenant
	pooled bool // behind a transaction pooler: see Pooler
	enter  enter
	// params are the enter statement's parameters, signed; renewed by
	// enterParams before the signature's lifetime is half gone.
	params  atomic.Pointer[enterParams]
	sign    func(now time.Time) *enterParams
	target  pool.Target
	err     error                            // set for tenants that must not get traffic
	adminOK bool                             // an admin scope may still reach the tenant
	calls   func(start time.Time, err error) // the tracer's, or nil
	waits   func(wait time.Duration)         // the tracer's, or nil
}

// enterParams are the parameters of a route's enter statement, with the
// tenant's signed context.
type enterParams struct {
	raw     [][]byte // encoded once, for the prepared enter statement
	any     []any    // the same as strings, for pgx batches
	renewAt time.Time
}

// enterParams returns r's enter parameters, signed anew when half of the
// signature's lifetime is gone. Racing renewals sign alike and either wins.
func (r *route) enterParams() *enterParams {
	p := r.params.Load()
	if now := time.Now(); !now.Before(p.renewAt) {
		p = r.sign(now)
		r.params.Store(p)
	}
	return p
}

// buildRoute turns a directory row into a route.
func (tr *Traffic) buildRoute(t tenant.Tenant) (*route, error) {
	r := &route{t: t}
	if tr.cfg.Tracer != nil {
		r.calls = tr.cfg.Tracer.TenantCalls(t)
		if w, ok := tr.cfg.Tracer.(ConnWaitTracer); ok {
			r.waits = w.TenantConnWaits(t)
		}
	}
	readOnly := false
	switch t.State {
	case tenant.StateActive:
	case tenant.StateReadOnly:
		readOnly = true
	case tenant.StateSuspended:
		// Refused to tenant traffic, open to an admin scope.
		r.err = &tenant.StateError{ID: t.ID, State: t.State}
		r.adminOK = true
	default:
		r.err = &tenant.StateError{ID: t.ID, State: t.State}
	}
	if r.err == nil && !tr.Compatible(t.SchemaVersion) {
		r.err = &tenant.VersionError{ID: t.ID, Version: t.SchemaVersion, Min: tr.cfg.MinSchemaVersion, Max: tr.cfg.MaxSchemaVersion}
	}
	if err := tenant.CheckIdent(t.Schema); err != nil {
		return nil, fmt.Errorf("route tenant %s: %w", t.ID, err)
	}
	id := t.ID.String()
	kind, role := kindShared, "none" // the connection's own login role
	var rest []string                // the parameters after the signature
	switch t.Model {
	case tenant.ModelRow:
		rest = []string{searchPath(provision.SharedSchema)} // as the connection was opened (conns.go)
	case tenant.ModelDatabase:
		rest = []string{searchPath(t.Database)}
	case tenant.ModelSchema:
		kind, role = kindSchema, t.ID.RoleName()
		rest = []string{role, searchPath(t.Schema)}
	default:
		return nil, fmt.Errorf("route tenant %s: model %q: %w", t.ID, t.Model, tenant.ErrBadModel)
	}
	if tr.cfg.Pooler != nil {
		r.pooled = true
		kind = kindPooled
		rest = []string{role, searchPath(t.Schema)}
	}
	if tr.cfg.TagSessions {
		rest = append(rest, "landlord tenant "+id)
	}
	settings, values := t.Settings.ServerSettings()
	rest = append(rest, values...)
	r.enter = enterFor(kind, readOnly, tr.cfg.TagSessions, settings...)
	key := tr.cfg.ContextKey
	r.sign = func(now time.Time) *enterParams {
		expires := now.Add(migration.ContextLifetime)
		p := &enterParams{renewAt: now.Add(migration.ContextLifetime / 2)}
		for _, a := range append([]string{id, migration.SignContext(key, id, role, expires)}, rest...) {
			p.raw = append(p.raw, []byte(a))
			p.any = append(p.any, a)
		}
		return p
	}
	r.params.Store(r.sign(time.Now()))
	// The target follows the placement: a moved tenant's routes, rebuilt at
	// its new routing epoch, never reach its old database (SECURITY.md, I22).
	r.target = tr.targetOf(t)
	return r, nil
}
