package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/changefeed"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// A purge removes everything a deleted tenant had, on every server of the
// directory: replication slots and publications named after it, its rows in
// every table with a tenant_id column, its schema, database and role, what
// is left of it in the template database or on other servers, its River
// jobs, and every directory record of it but the provisioning ledger (the
// installation's audit trail) and the purge record (what was purged, and
// what the verifier found). Each step looks before it acts, is logged in
// the ledger before it acts when there is something to do, and can run
// again: a purge killed at any step is finished by Purge, PurgeDue or
// Reconcile (SECURITY.md, F09). VerifyPurge then looks for all of it again.

// ErrNotDeleted is returned by Purge without now, and by Restore, for a
// tenant that is not deleting.
var ErrNotDeleted = errors.New("tenant is not deleted")

// ErrPurgeNotDue is returned by Purge without now for a tenant whose grace
// period has not ended; the message says when it ends.
var ErrPurgeNotDue = errors.New("the tenant's grace period has not ended")

// ErrPurgeStarted is returned by Restore for a tenant whose purge has begun:
// some of it may be gone already, so only finishing the purge is left.
var ErrPurgeStarted = errors.New("the tenant's purge has begun")

// ErrNotPurged is returned by Purge when the verifier found something of
// the tenant left, or could not run one of its checks; the report returned
// with it lists them.
var ErrNotPurged = errors.New("the purge left something of the tenant, or could not be verified")

// Names of River's tables and of the metadata key in which package
// tenantjob records a job's tenant (tenantjob.Schema,
// tenantjob.MetadataTenant; provision does not import River).
const (
	riverJobTable     = "river.river_job"
	riverTenantKeyArg = "landlord_tenant"
)

// connectTimeout bounds each connection a purge or its verifier opens to a
// server, so that an unreachable server is an error instead of a hang.
const connectTimeout = 10 * time.Second

// purgeFaultKey carries, in a test's context, a function called after each
// step of a purge with the step's number and name: an error it returns
// ends the purge there, as a crash would (nothing more is logged).
type purgeFaultKey struct{}

// DeleteAfter deletes tenant id as Delete does, with grace instead of
// Config.PurgeGrace: the tenant moves to state deleting at once (routers
// refuse it; BeforeDrop stops its traffic) and its purge is recorded, due
// after grace. With grace ≤ 0 it is purged before DeleteAfter returns;
// otherwise Purge, PurgeDue or Reconcile purges it once the grace period
// is over, and Restore takes it back until then. Deleting a tenant that is
// deleting already never postpones its purge.
func (p *Provisioner) DeleteAfter(ctx context.Context, id tenant.ID, grace time.Duration) error {
	start := time.Now()
	var purged bool
	err := p.withTenantLock(ctx, id, func(conn *pgx.Conn) (err error) {
		purged, err = p.delete(ctx, conn, id, grace)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete tenant %s: %w", id, err)
	}
	msg := "tenant deleted"
	if !purged {
		msg = "tenant deleted; purge scheduled"
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, msg, slog.String("tenant", id.String()), slog.Duration("took", time.Since(start)))
	return nil
}

// Restore takes tenant id, deleted with a grace period that has not ended
// and whose purge has not begun, back to the state it had before it was
// deleted, and returns it. A tenant that is not deleting gets an error
// wrapping ErrNotDeleted, one whose purge has begun ErrPurgeStarted.
func (p *Provisioner) Restore(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	var out tenant.Tenant
	err := p.withTenantLock(ctx, id, func(*pgx.Conn) error {
		t, err := p.dir.Get(ctx, id)
		if err != nil {
			return err
		}
		if t.State != tenant.StateDeleting {
			return fmt.Errorf("%w: it is %s", ErrNotDeleted, t.State)
		}
		restored, ok, err := p.dir.CancelPurge(ctx, id)
		if err != nil {
			return err
		}
		if !ok {
			return ErrPurgeStarted
		}
		out = restored
		p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant restored", slog.String("tenant", id.String()), slog.String("state", string(out.State)))
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("restore tenant %s: %w", id, err)
	}
	return out, nil
}

// Purge removes everything tenant id had, and then runs VerifyPurge and
// returns its report. The tenant must be deleting with its grace period
// over, or purged already (the steps run again, which removes what was
// found left); with now it may also be in its grace period, or in any
// other state, which it leaves for deleting first. An error wraps
// ErrNotDeleted or ErrPurgeNotDue when the tenant may not be purged yet
// (nothing is changed then), ErrNotPurged when the verifier found
// something left, and tenant.ErrNotFound for an id that names neither a
// tenant nor a purge.
func (p *Provisioner) Purge(ctx context.Context, id tenant.ID, now bool) (PurgeReport, error) {
	start := time.Now()
	err := p.withTenantLock(ctx, id, func(conn *pgx.Conn) error {
		return p.purge(ctx, conn, id, now)
	})
	if err != nil {
		return PurgeReport{Tenant: id}, fmt.Errorf("purge tenant %s: %w", id, err)
	}
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant purged", slog.String("tenant", id.String()), slog.Duration("took", time.Since(start)))
	rep, err := p.VerifyPurge(ctx, id)
	if err != nil {
		return rep, fmt.Errorf("purge tenant %s: %w", id, err)
	}
	if !rep.Clean() {
		return rep, fmt.Errorf("purge tenant %s: %w: %s", id, ErrNotPurged, rep.Summary())
	}
	return rep, nil
}

// PurgeResult is what PurgeDue did with one tenant.
type PurgeResult struct {
	Tenant tenant.ID
	Slug   string
	// Skipped is set when another session was working on the tenant; the
	// next PurgeDue takes it.
	Skipped bool
	Report  PurgeReport // the verifier's, when the purge ran
	Err     error       // the purge failed, or ErrNotPurged
}

// PurgeDue purges, one after the other, every tenant whose purge is due:
// its grace period is over, or its purge began and was interrupted, or it
// was deleting before purges were recorded. Tenants another session works
// on are skipped. progress, when set, is called after each tenant with
// the number done and the total. A tenant's failure does not stop the
// others; the results say what happened to each, and the error is only
// about listing them.
func (p *Provisioner) PurgeDue(ctx context.Context, progress func(done, total int)) ([]PurgeResult, error) {
	due, err := p.duePurges(ctx)
	if err != nil {
		return nil, err
	}
	results := make([]PurgeResult, 0, len(due))
	for i, t := range due {
		if ctx.Err() != nil {
			return results, ctx.Err()
		}
		r := PurgeResult{Tenant: t.ID, Slug: t.Slug}
		ok, err := p.tryTenantLock(ctx, t.ID, func(conn *pgx.Conn) error { return p.purge(ctx, conn, t.ID, false) })
		switch {
		case err != nil:
			r.Err = fmt.Errorf("purge tenant %s (%s): %w", t.ID, t.Slug, err)
		case !ok:
			r.Skipped = true
		default:
			r.Report, err = p.VerifyPurge(ctx, t.ID)
			switch {
			case err != nil:
				r.Err = fmt.Errorf("verify the purge of tenant %s (%s): %w", t.ID, t.Slug, err)
			case !r.Report.Clean():
				r.Err = fmt.Errorf("purge tenant %s (%s): %w: %s", t.ID, t.Slug, ErrNotPurged, r.Report.Summary())
			}
		}
		results = append(results, r)
		if progress != nil {
			progress(i+1, len(due))
		}
	}
	return results, nil
}

// duePurges lists the tenants whose purge is due, as their directory rows,
// or built from the purge record when the row is gone.
func (p *Provisioner) duePurges(ctx context.Context) ([]tenant.Tenant, error) {
	recs, err := p.dir.Purges(ctx, false)
	if err != nil {
		return nil, err
	}
	seen := map[tenant.ID]bool{}
	var due []tenant.Tenant
	for _, r := range recs {
		seen[r.Tenant] = true
		if r.Due {
			due = append(due, tenantOf(r))
		}
	}
	deleting, err := p.dir.List(ctx, directory.Filter{State: tenant.StateDeleting})
	if err != nil {
		return nil, err
	}
	for _, t := range deleting {
		if !seen[t.ID] {
			due = append(due, t)
		}
	}
	return due, nil
}

// purgeDue reports whether the deleting tenant id may be purged now: its
// record says so, or it has none (deleting since before purges were
// recorded, as every deletion then finished at once).
func (p *Provisioner) purgeDue(ctx context.Context, id tenant.ID) (bool, error) {
	rec, err := p.dir.GetPurge(ctx, id)
	if errors.Is(err, tenant.ErrNotFound) {
		return true, nil
	}
	return rec.Due, err
}

// tenantOf is the tenant a purge record describes, for a purge whose
// directory row is gone.
func tenantOf(r directory.Purge) tenant.Tenant {
	return tenant.Tenant{ID: r.Tenant, Slug: r.Slug, Model: r.Model, Server: r.Server, Schema: r.Schema, Database: r.Database,
		State: tenant.StateDeleting}
}

// purge is Purge for a caller that holds the tenant's lock on conn.
func (p *Provisioner) purge(ctx context.Context, conn *pgx.Conn, id tenant.ID, now bool) error {
	t, err := p.dir.Get(ctx, id)
	if errors.Is(err, tenant.ErrNotFound) {
		// Purged already, or its directory row went without the rest:
		// run the steps again from the record.
		rec, rerr := p.dir.GetPurge(ctx, id)
		if rerr != nil {
			return err
		}
		return p.purgeTenant(ctx, conn, tenantOf(rec))
	}
	if err != nil {
		return err
	}
	if t.State != tenant.StateDeleting {
		if !now {
			return fmt.Errorf("%w: it is %s; delete it first, or purge it now", ErrNotDeleted, t.State)
		}
		if t, _, err = p.dir.ScheduleDelete(ctx, id, 0); err != nil {
			return err
		}
	}
	if !now {
		rec, err := p.dir.GetPurge(ctx, id)
		if err == nil && !rec.Due {
			return fmt.Errorf("%w: it may be purged from %s", ErrPurgeNotDue, rec.PurgeAfter.UTC().Format(time.RFC3339))
		}
		if err != nil && !errors.Is(err, tenant.ErrNotFound) {
			return err
		}
	}
	if _, err := p.dir.StartPurge(ctx, t); err != nil {
		return err
	}
	return p.purgeTenant(ctx, conn, t)
}

// purgeStep is one step of a purge. Each looks for what it removes, logs
// itself when it found something (or always, when log is set) and then
// removes it; it can run any number of times.
type purgeStep struct {
	name string
	run  func(ctx context.Context) error
}

// purgeTenant runs the steps of t's purge. The caller holds t's lock, the
// tenant is deleting (or gone from the directory) and its purge record
// says the purge has begun.
func (p *Provisioner) purgeTenant(ctx context.Context, conn *pgx.Conn, t tenant.Tenant) error {
	if p.cfg.BeforeDrop != nil {
		if err := p.cfg.BeforeDrop(ctx, t); err != nil {
			return err
		}
	}
	steps := []purgeStep{
		// Before the database: a logical slot on it keeps it from
		// being dropped.
		{"replication", func(ctx context.Context) error { return p.purgeReplication(ctx, t) }},
		{"drop", func(ctx context.Context) error {
			switch t.Model {
			case tenant.ModelSchema:
				return p.dropSchemaTenant(ctx, conn, t.ID)
			case tenant.ModelDatabase:
				return p.dropDatabaseTenant(ctx, t.ID)
			}
			return nil
		}},
		{"rows", func(ctx context.Context) error { return p.purgeRows(ctx, t) }},
		{"objects", func(ctx context.Context) error { return p.purgeObjects(ctx, t) }},
		{"template", func(ctx context.Context) error {
			rec, err := p.dir.GetPurge(ctx, t.ID)
			if err != nil {
				return nil // no verification to go by
			}
			return p.purgeTemplate(ctx, t, &rec)
		}},
		{"removed", func(ctx context.Context) error { return p.purgeRecords(ctx, t) }},
	}
	fault, _ := ctx.Value(purgeFaultKey{}).(func(n int, step string) error)
	for i, s := range steps {
		if err := s.run(ctx); err != nil {
			_ = p.dir.Log(ctx, t.ID, "delete", "failed", s.name+": "+err.Error())
			return err
		}
		if fault != nil {
			if err := fault(i, s.name); err != nil {
				return err
			}
		}
	}
	return nil
}

// dbConn is a connection or a pool to one database.
type dbConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Begin(ctx context.Context) (pgx.Tx, error)
}

// place is one server's database, which a purge or its verifier looks
// into.
type place struct {
	server   directory.Server
	database string
	control  bool // the control database
}

// places lists the databases of every server, the control database first.
func (p *Provisioner) places(ctx context.Context) ([]place, error) {
	servers, err := p.dir.Servers(ctx)
	if err != nil {
		return nil, err
	}
	control, err := p.currentDatabase(ctx)
	if err != nil {
		return nil, err
	}
	var out, others []place
	for _, s := range servers {
		if pl := (place{server: s, database: s.Database, control: s.Host == "" && s.Database == control}); pl.control {
			out = append(out, pl)
		} else {
			others = append(others, pl)
		}
	}
	return append(out, others...), nil
}

// inTemplate runs fn on a connection to the template database, which
// accepts none otherwise (see WithTemplateDatabase), and reports whether
// there is one.
func (p *Provisioner) inTemplate(ctx context.Context, fn func(q dbConn) error) (bool, error) {
	var exists bool
	if err := p.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, p.TemplateDatabase()).Scan(&exists); err != nil || !exists {
		return false, err
	}
	return true, p.WithTemplateDatabase(ctx, func(ctx context.Context, conn *pgx.Conn) error { return fn(conn) })
}

// open returns a connection to pl's database as the administrator: the
// administrator's pool for the control database, a new connection (to
// close with the returned function) for any other.
func (p *Provisioner) open(ctx context.Context, pl place) (dbConn, func(), error) {
	if pl.control {
		return p.admin, func() {}, nil
	}
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := p.Connect(cctx, pl.server.ID, pl.database)
	if err != nil {
		return nil, nil, fmt.Errorf("server %s: %w", pl.server.ID, err)
	}
	return conn, func() { conn.Close(context.WithoutCancel(ctx)) }, nil
}

// eachPlace calls fn with a connection to each server's database, one at a
// time.
func (p *Provisioner) eachPlace(ctx context.Context, fn func(pl place, q dbConn) error) error {
	pls, err := p.places(ctx)
	if err != nil {
		return err
	}
	for _, pl := range pls {
		q, done, err := p.open(ctx, pl)
		if err != nil {
			return err
		}
		err = fn(pl, q)
		done()
		if err != nil {
			return fmt.Errorf("server %s, database %s: %w", pl.server.ID, pl.database, err)
		}
	}
	return nil
}

// Catalog queries for what carries a tenant's name: $1 is its 32 hex
// digits, $2 its schema and database name, $3 its role name.
const (
	slotsSQL = `SELECT slot_name::text FROM pg_replication_slots
		WHERE strpos(slot_name::text, $1) > 0 OR database = $2 ORDER BY 1`
	publicationsSQL = `SELECT pubname::text FROM pg_publication WHERE strpos(pubname::text, $1) > 0 ORDER BY 1`
)

// purgeReplication drops the replication slots (on every server) and
// publications (in every server's database) whose name carries the
// tenant's id, and the slots on its database.
func (p *Provisioner) purgeReplication(ctx context.Context, t tenant.Tenant) error {
	hex, db := t.ID.Hex(), t.ID.DatabaseName()
	return p.eachPlace(ctx, func(pl place, q dbConn) error {
		slots, err := strings1(ctx, q, slotsSQL, hex, db)
		if err != nil {
			return fmt.Errorf("list replication slots: %w", err)
		}
		pubs, err := strings1(ctx, q, publicationsSQL, hex)
		if err != nil {
			return fmt.Errorf("list publications: %w", err)
		}
		if len(slots)+len(pubs) == 0 {
			return nil
		}
		detail := fmt.Sprintf("server %s, database %s: slots %v, publications %v", pl.server.ID, pl.database, slots, pubs)
		if err := p.dir.Log(ctx, t.ID, "delete", "replication", detail); err != nil {
			return err
		}
		for _, s := range slots {
			// A slot in use is released by ending the session using it.
			if _, err := q.Exec(ctx, `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL`, s); err != nil {
				return fmt.Errorf("release replication slot %s: %w", s, err)
			}
			if _, err := q.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, s); err != nil {
				return fmt.Errorf("drop replication slot %s: %w", s, err)
			}
		}
		for _, pub := range pubs {
			// In two steps: a publication on the shared tables is read by
			// every tenant's writes there.
			if err := changefeed.DropPublication(ctx, q, "", pub); err != nil {
				return err
			}
		}
		return nil
	})
}

// strings1 runs a query returning one text column.
func strings1(ctx context.Context, q dbConn, sql string, args ...any) ([]string, error) {
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// tenantTable is a table with a uuid tenant_id column.
type tenantTable struct {
	oid    uint32
	schema string
	name   string
	rls    bool // row-level security is enabled: read it as the owner, in the tenant's context
}

func (tt tenantTable) String() string { return tt.schema + "." + tt.name }

// tenantTablesSQL lists the tables with a uuid tenant_id column in every
// schema of a database (a partitioned table stands for its partitions) but
// the schemas of schema tenants and the template: a tenant's schema holds
// its own rows only (its policies admit no other tenant's id), so looking
// into every other tenant's schema would make one purge cost as much as
// the whole installation; the tenant's own schema goes whole.
const tenantTablesSQL = `SELECT c.oid, n.nspname::text, c.relname::text, c.relrowsecurity
	FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace
	JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped AND a.atttypid = 'uuid'::regtype
	WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
	  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
	  AND n.nspname !~ '^t_[0-9a-f]{32}$' AND n.nspname <> '` + TemplateSchema + `'
	ORDER BY 2, 3`

func tenantTables(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) ([]tenantTable, error) {
	rows, err := q.Query(ctx, tenantTablesSQL)
	if err != nil {
		return nil, fmt.Errorf("list tables with tenant_id: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (tenantTable, error) {
		var tt tenantTable
		err := r.Scan(&tt.oid, &tt.schema, &tt.name, &tt.rls)
		return tt, err
	})
}

// asReader switches tx to the role that sees the tenant's rows of tt: the
// owner in the tenant's context (entered once per transaction by
// enterTenant) for a table under row-level security, whose policies hide
// every row from the administrator that is not a superuser; the
// administrator itself for any other table, which the owner may have no
// right on.
func (p *Provisioner) asReader(ctx context.Context, tx pgx.Tx, tt tenantTable) error {
	role := "NONE"
	if tt.rls {
		role = ident.Quote(p.cfg.OwnerRole)
	}
	_, err := tx.Exec(ctx, "SET LOCAL ROLE "+role)
	return err
}

// enterTenant sets tenant id's context in tx for the owner role, when the
// database has Landlord's context functions: the tables under row-level
// security then show the owner that tenant's rows.
func (p *Provisioner) enterTenant(ctx context.Context, tx pgx.Tx, id tenant.ID) (bool, error) {
	var has bool
	if err := tx.QueryRow(ctx, `SELECT to_regprocedure('landlord_context.enter(uuid)') IS NOT NULL`).Scan(&has); err != nil || !has {
		return false, err
	}
	if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+ident.Quote(p.cfg.OwnerRole)); err != nil {
		return false, err
	}
	_, err := tx.Exec(ctx, `SELECT landlord_context.enter($1)`, id)
	return err == nil, err
}

// purgeRows deletes the tenant's rows from every table with a tenant_id
// column in every schema of every server's database, but the directory's
// (which purgeRecords empties of the tenant), children before parents. A
// row tenant logs the step always (its rows are what it is); any other
// only when some table holds rows of it.
func (p *Provisioner) purgeRows(ctx context.Context, t tenant.Tenant) error {
	logged := false
	if t.Model == tenant.ModelRow {
		if err := p.dir.Log(ctx, t.ID, "delete", "rows", t.Schema); err != nil {
			return err
		}
		logged = true
	}
	return p.eachPlace(ctx, func(pl place, q dbConn) error {
		return pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
			all, err := tenantTables(ctx, tx)
			if err != nil {
				return err
			}
			all = slices.DeleteFunc(all, func(tt tenantTable) bool {
				_, keep := p.kept(tt.String())
				return tt.schema == directory.Schema || keep
			})
			if len(all) == 0 {
				return nil
			}
			entered, err := p.enterTenant(ctx, tx, t.ID)
			if err != nil {
				return fmt.Errorf("enter the tenant's context: %w", err)
			}
			var found []tenantTable
			for _, tt := range all {
				if tt.rls && !entered {
					return fmt.Errorf("table %s is under row-level security, and the database has no landlord_context.enter to read it with", tt)
				}
				if err := p.asReader(ctx, tx, tt); err != nil {
					return err
				}
				var has bool
				if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT EXISTS (SELECT FROM %s WHERE tenant_id = $1)`, ident.Quote(tt.schema, tt.name)), t.ID).Scan(&has); err != nil {
					return fmt.Errorf("look for rows in %s: %w", tt, err)
				}
				if has {
					found = append(found, tt)
				}
			}
			if len(found) == 0 {
				return nil
			}
			order, err := referencedLast(ctx, tx, found)
			if err != nil {
				return err
			}
			if !logged {
				names := make([]string, len(order))
				for i, tt := range order {
					names[i] = tt.String()
				}
				if err := p.dir.Log(ctx, t.ID, "delete", "rows", strings.Join(names, ", ")); err != nil {
					return err
				}
				logged = true
			}
			return p.deleteTenantRows(ctx, tx, t.ID, order)
		})
	})
}

// referencedLast orders tables so that each comes before the tables its
// foreign keys reference, among tables only.
func referencedLast(ctx context.Context, tx pgx.Tx, tables []tenantTable) ([]tenantTable, error) {
	oids := make([]uint32, len(tables))
	byOID := map[uint32]tenantTable{}
	for i, tt := range tables {
		oids[i] = tt.oid
		byOID[tt.oid] = tt
	}
	rows, err := tx.Query(ctx, `SELECT DISTINCT conrelid, confrelid FROM pg_constraint
		WHERE contype = 'f' AND conrelid = ANY($1) AND confrelid = ANY($1) AND conrelid <> confrelid`, oids)
	if err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	refs := map[uint32][]uint32{}
	referencedBy := map[uint32]int{}
	var from, to uint32
	if _, err := pgx.ForEachRow(rows, []any{&from, &to}, func() error {
		refs[from] = append(refs[from], to)
		referencedBy[to]++
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read foreign keys: %w", err)
	}
	var order []tenantTable
	var ready []uint32
	for _, o := range oids {
		if referencedBy[o] == 0 {
			ready = append(ready, o)
		}
	}
	for len(ready) > 0 {
		o := ready[0]
		ready = ready[1:]
		order = append(order, byOID[o])
		for _, r := range refs[o] {
			if referencedBy[r]--; referencedBy[r] == 0 {
				ready = append(ready, r)
			}
		}
	}
	if len(order) != len(tables) {
		return nil, errors.New("foreign keys between the tables holding the tenant's rows form a cycle; make one of them DEFERRABLE or break the cycle")
	}
	return order, nil
}

// purgeObjects drops what is left with the tenant's names on any server: a
// database, a role, a schema in a server's database (a crash, a
// pre-provisioned tenant's leftovers, a tenant once placed elsewhere).
// After the model's own drop on its server there is normally nothing, and
// the step is not logged.
func (p *Provisioner) purgeObjects(ctx context.Context, t tenant.Tenant) error {
	id := t.ID
	return p.eachPlace(ctx, func(pl place, q dbConn) error {
		var db, role, schema bool
		if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1), EXISTS (SELECT FROM pg_roles WHERE rolname = $2),
			EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)`, id.DatabaseName(), id.RoleName()).Scan(&db, &role, &schema); err != nil {
			return err
		}
		if !db && !role && !schema {
			return nil
		}
		var what []string
		for _, w := range []struct {
			on   bool
			text string
		}{{db, "database " + id.DatabaseName()}, {schema, "schema " + id.SchemaName()}, {role, "role " + id.RoleName()}} {
			if w.on {
				what = append(what, w.text)
			}
		}
		if err := p.dir.Log(ctx, id, "delete", "objects", fmt.Sprintf("server %s, database %s: %s", pl.server.ID, pl.database, strings.Join(what, ", "))); err != nil {
			return err
		}
		if db {
			var err error
			if pl.control {
				err = p.dropDatabase(ctx, id)
			} else {
				err = dropDatabaseOn(ctx, q, id)
			}
			if err != nil {
				return fmt.Errorf("drop database %s: %w", id.DatabaseName(), err)
			}
		}
		if schema {
			if _, err := q.Exec(ctx, fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE", ident.Quote(id.SchemaName()))); err != nil {
				return fmt.Errorf("drop schema %s: %w", id.SchemaName(), err)
			}
			// The migration ledger of another server's database holds
			// the schema's steps.
			if _, err := q.Exec(ctx, `DELETE FROM landlord.target_migrations WHERE target = $1`, id.SchemaName()); err != nil &&
				!isCode(err, pgerrcode.UndefinedTable) {
				return fmt.Errorf("forget the migrations of schema %s: %w", id.SchemaName(), err)
			}
		}
		if role {
			if err := dropRole(ctx, q, id.RoleName()); err != nil {
				return err
			}
		}
		return nil
	})
}

// purgeTemplate drops a schema or publications named after the tenant in
// the template database. The template database accepts no connections but
// Landlord's own, which build or migrate it and refuse one that holds a
// schema not its own, so the step runs only when the verifier last found
// something of the tenant there: opening the template holds up the
// tenants being created from it meanwhile.
func (p *Provisioner) purgeTemplate(ctx context.Context, t tenant.Tenant, rec *directory.Purge) error {
	if rec == nil || !foundIn(rec.Verification, p.TemplateDatabase()) {
		return nil
	}
	id := t.ID
	_, err := p.inTemplate(ctx, func(q dbConn) error {
		schemas, err := strings1(ctx, q, `SELECT nspname::text FROM pg_namespace WHERE nspname = $1`, id.SchemaName())
		if err != nil {
			return err
		}
		pubs, err := strings1(ctx, q, publicationsSQL, id.Hex())
		if err != nil {
			return err
		}
		if len(schemas)+len(pubs) == 0 {
			return nil
		}
		if err := p.dir.Log(ctx, id, "delete", "template", fmt.Sprintf("database %s: schemas %v, publications %v", p.TemplateDatabase(), schemas, pubs)); err != nil {
			return err
		}
		for _, s := range schemas {
			if _, err := q.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident.Quote(s)+" CASCADE"); err != nil {
				return fmt.Errorf("drop schema %s: %w", s, err)
			}
		}
		for _, pub := range pubs {
			if _, err := q.Exec(ctx, "DROP PUBLICATION IF EXISTS "+ident.Quote(pub)); err != nil {
				return fmt.Errorf("drop publication %s: %w", pub, err)
			}
		}
		return nil
	})
	return err
}

// foundIn reports whether a verification (the JSON of its checks) found
// something left in database.
func foundIn(verification []byte, database string) bool {
	var checks []PurgeCheck
	if json.Unmarshal(verification, &checks) != nil {
		return false
	}
	return slices.ContainsFunc(checks, func(c PurgeCheck) bool { return c.Database == database && (c.Leftover() || c.Err != "") })
}

// dropRole drops role; when it still holds privileges or objects in the
// database of q, those go first.
func dropRole(ctx context.Context, q dbConn, role string) error {
	_, err := q.Exec(ctx, "DROP ROLE IF EXISTS "+ident.Quote(role))
	if isCode(err, pgerrcode.DependentObjectsStillExist) {
		if _, err = q.Exec(ctx, "DROP OWNED BY "+ident.Quote(role)); err == nil {
			_, err = q.Exec(ctx, "DROP ROLE IF EXISTS "+ident.Quote(role))
		}
	}
	if err != nil {
		return fmt.Errorf("drop role %s: %w", role, err)
	}
	return nil
}

// dropDatabaseOn drops the database of tenant id on the server q is
// connected to, as dropDatabase does on the control server.
func dropDatabaseOn(ctx context.Context, q dbConn, id tenant.ID) error {
	db := id.DatabaseName()
	if _, err := q.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS false", ident.Quote(db))); err != nil {
		if isCode(err, pgerrcode.InvalidCatalogName) {
			return nil // gone already, or never made (a move stopped before it)
		}
		return err
	}
	for attempt := 0; ; attempt++ {
		if _, err := q.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			  AND pg_has_role(current_user, usesysid, 'MEMBER')`, db); err != nil {
			return err
		}
		_, err := q.Exec(ctx, "DROP DATABASE IF EXISTS "+ident.Quote(db))
		if err == nil || !isCode(err, pgerrcode.ObjectInUse) || attempt >= 20 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// purgeRecords removes, in one transaction, the tenant's River jobs and
// every directory record of it but the ledger and the purge record, which
// it marks purged: the last step, after which the tenant is gone.
func (p *Provisioner) purgeRecords(ctx context.Context, t tenant.Tenant) error {
	return pgx.BeginFunc(ctx, p.admin, func(tx pgx.Tx) error {
		var river bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, riverJobTable).Scan(&river); err != nil {
			return err
		}
		if river {
			if _, err := tx.Exec(ctx, `DELETE FROM `+riverJobTable+` WHERE metadata ->> $2 = $1`, t.ID.String(), riverTenantKeyArg); err != nil {
				return fmt.Errorf("delete River jobs: %w", err)
			}
		}
		return directory.RemovePurged(ctx, tx, t.ID)
	})
}

// PurgeCheck is one thing the verifier looked at: what, where, and what it
// found of the tenant there.
type PurgeCheck struct {
	// What names the check: database, role, schema, replication slots,
	// publications, rows, River jobs, directory, kept.
	What string `json:"what"`
	// Server and Database say where it looked; Database is empty for
	// what a server holds once for all its databases (databases, roles,
	// replication slots).
	Server   string `json:"server"`
	Database string `json:"database,omitempty"`
	// Object is what it looked for: a name, a table, the tables of a
	// schema.
	Object string `json:"object"`
	// Found is how many objects or rows of the tenant it found: 0 when
	// nothing is left.
	Found int64 `json:"found"`
	// Detail names what was found, or says why a kept record is kept.
	Detail string `json:"detail,omitempty"`
	// Err says why the check could not be run; such a check proves
	// nothing.
	Err string `json:"error,omitempty"`
	// Kept marks records kept on purpose: Found counts them, and they
	// are not leftovers.
	Kept bool `json:"kept,omitempty"`
}

// Leftover reports whether the check found something of the tenant that
// should be gone.
func (c PurgeCheck) Leftover() bool { return !c.Kept && c.Found > 0 }

// PurgeReport is the verifier's report: every check it ran.
type PurgeReport struct {
	Tenant tenant.ID
	// Record is the tenant's purge record as it was before the verifier
	// ran; nil when the tenant was never deleted.
	Record *directory.Purge
	Checks []PurgeCheck
	At     time.Time
}

// Clean reports whether every check ran and none found anything of the
// tenant left.
func (r PurgeReport) Clean() bool {
	if len(r.Checks) == 0 {
		return false
	}
	for _, c := range r.Checks {
		if c.Leftover() || c.Err != "" {
			return false
		}
	}
	return true
}

// Summary names the leftovers and the checks that could not run, or says
// that nothing is left.
func (r PurgeReport) Summary() string {
	var left, failed []string
	for _, c := range r.Checks {
		where := c.Server
		if c.Database != "" {
			where += "/" + c.Database
		}
		switch {
		case c.Err != "":
			failed = append(failed, fmt.Sprintf("%s %s on %s: %s", c.What, c.Object, where, c.Err))
		case c.Leftover():
			left = append(left, fmt.Sprintf("%s %s on %s: %d found (%s)", c.What, c.Object, where, c.Found, c.Detail))
		}
	}
	switch {
	case len(left)+len(failed) == 0 && len(r.Checks) > 0:
		return fmt.Sprintf("nothing left (%d checks)", len(r.Checks))
	case len(left)+len(failed) == 0:
		return "nothing checked"
	}
	var parts []string
	if len(left) > 0 {
		parts = append(parts, "left: "+strings.Join(left, "; "))
	}
	if len(failed) > 0 {
		parts = append(parts, "not checked: "+strings.Join(failed, "; "))
	}
	return strings.Join(parts, "; ")
}

// VerifyPurge looks on every server of the directory for anything of
// tenant id: its database and role, its schema in each server's database
// and in the template database, replication slots and publications whose
// name carries its id, rows of it in every table with a tenant_id column
// in every schema of each server's database, its River jobs, and every
// directory record of it. The records kept on purpose (the provisioning
// ledger and the purge record) are reported as kept. It runs on a tenant
// in any state, but records its answer in the purge record only once the
// tenant is purged. A check that cannot run is in the report with its
// error (and makes it not Clean); the error is for what stops the
// verifier as a whole.
func (p *Provisioner) VerifyPurge(ctx context.Context, id tenant.ID) (PurgeReport, error) {
	rep := PurgeReport{Tenant: id, At: time.Now()}
	if id.IsZero() {
		return rep, fmt.Errorf("verify purge: %w: the zero id names no tenant", tenant.ErrBadID)
	}
	rec, err := p.dir.GetPurge(ctx, id)
	switch {
	case err == nil:
		rep.Record = &rec
	case !errors.Is(err, tenant.ErrNotFound):
		return rep, err
	}
	pls, err := p.places(ctx)
	if err != nil {
		return rep, fmt.Errorf("verify purge of %s: %w", id, err)
	}
	for _, pl := range pls {
		rep.Checks = append(rep.Checks, p.verifyPlace(ctx, pl, id)...)
	}
	rep.Checks = append(rep.Checks, p.verifyTemplate(ctx, id)...)
	rep.Checks = append(rep.Checks, p.verifyDirectory(ctx, id)...)
	if rep.Record != nil && rep.Record.State == directory.PurgePurged {
		doc, err := json.Marshal(rep.Checks)
		if err != nil {
			return rep, err
		}
		if err := p.dir.SetPurgeVerified(ctx, id, rep.Clean(), doc); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// verifyPlace runs the checks of one database: the server-wide ones from a
// server's own database, the schema and publications from every one, the
// rows from the servers' databases.
func (p *Provisioner) verifyPlace(ctx context.Context, pl place, id tenant.ID) []PurgeCheck {
	srv, db := pl.server.ID, pl.database
	var checks []PurgeCheck
	add := func(what, database, object string, names []string, err error) {
		c := PurgeCheck{What: what, Server: srv, Database: database, Object: object, Found: int64(len(names)), Detail: strings.Join(names, ", ")}
		if err != nil {
			c.Err = oneLine(err.Error())
		}
		checks = append(checks, c)
	}
	q, done, err := p.open(ctx, pl)
	if err != nil {
		add("database", "", id.DatabaseName(), nil, err)
		add("role", "", id.RoleName(), nil, err)
		add("replication slots", "", "named after "+id.Hex(), nil, err)
		add("schema", db, id.SchemaName(), nil, err)
		add("publications", db, "named after "+id.Hex(), nil, err)
		add("rows", db, "every table with tenant_id", nil, err)
		return checks
	}
	defer done()
	names, err := strings1(ctx, q, `SELECT datname::text FROM pg_database WHERE datname = $1`, id.DatabaseName())
	add("database", "", id.DatabaseName(), names, err)
	names, err = strings1(ctx, q, `SELECT rolname::text FROM pg_roles WHERE rolname = $1`, id.RoleName())
	add("role", "", id.RoleName(), names, err)
	names, err = strings1(ctx, q, slotsSQL, id.Hex(), id.DatabaseName())
	add("replication slots", "", "named after "+id.Hex()+" or on "+id.DatabaseName(), names, err)
	names, err = strings1(ctx, q, `SELECT nspname::text FROM pg_namespace WHERE nspname = $1`, id.SchemaName())
	add("schema", db, id.SchemaName(), names, err)
	names, err = strings1(ctx, q, publicationsSQL, id.Hex())
	add("publications", db, "named after "+id.Hex(), names, err)
	return append(checks, p.verifyRows(ctx, q, srv, db, id)...)
}

// verifyTemplate looks for the tenant's schema and publications in the
// template database, which it opens for the purpose.
func (p *Provisioner) verifyTemplate(ctx context.Context, id tenant.ID) []PurgeCheck {
	db := p.TemplateDatabase()
	schema := PurgeCheck{What: "schema", Server: directory.DefaultServer, Database: db, Object: id.SchemaName()}
	pubs := PurgeCheck{What: "publications", Server: directory.DefaultServer, Database: db, Object: "named after " + id.Hex()}
	exists, err := p.inTemplate(ctx, func(q dbConn) error {
		for _, c := range []struct {
			check *PurgeCheck
			sql   string
			arg   string
		}{{&schema, `SELECT nspname::text FROM pg_namespace WHERE nspname = $1`, id.SchemaName()}, {&pubs, publicationsSQL, id.Hex()}} {
			names, err := strings1(ctx, q, c.sql, c.arg)
			if err != nil {
				return err
			}
			c.check.Found, c.check.Detail = int64(len(names)), strings.Join(names, ", ")
		}
		return nil
	})
	if err != nil {
		schema.Err, pubs.Err = oneLine(err.Error()), oneLine(err.Error())
	}
	if !exists && err == nil {
		schema.Detail, pubs.Detail = "no template database", "no template database"
	}
	return []PurgeCheck{schema, pubs}
}

// kept says why table ("schema.name") keeps a purged tenant's rows, when
// it does: the directory's own records, and Config.PurgeKeep.
func (p *Provisioner) kept(table string) (string, bool) {
	if why, ok := keptTables[table]; ok {
		return why, true
	}
	why, ok := p.cfg.PurgeKeep[table]
	return why, ok
}

// keptTables are the directory's tables that keep a purged tenant's
// records on purpose, and why.
var keptTables = map[string]string{
	directory.Schema + ".provisioning_ledger": "the provisioning ledger is the installation's audit trail: every step of the tenant's life, ids only",
	directory.Schema + ".purges":              "the purge record: what was purged, and what the verifier found",
}

// verifyRows counts the tenant's rows in every table with a tenant_id
// column in every schema of q's database: one check per schema, naming
// the tables that hold rows; one per kept table.
func (p *Provisioner) verifyRows(ctx context.Context, q dbConn, srv, db string, id tenant.ID) []PurgeCheck {
	var checks []PurgeCheck
	err := pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		// Read only, and never waiting long behind a migration's locks.
		if _, err := tx.Exec(ctx, `SET TRANSACTION READ ONLY; SET LOCAL lock_timeout = '10s'`); err != nil {
			return err
		}
		tables, err := tenantTables(ctx, tx)
		if err != nil {
			return err
		}
		entered, err := p.enterTenant(ctx, tx, id)
		if err != nil {
			return fmt.Errorf("enter the tenant's context: %w", err)
		}
		bySchema := map[string]*PurgeCheck{}
		var schemas []string
		for _, tt := range tables {
			count, err := p.countRows(ctx, tx, tt, id, entered)
			if why, ok := p.kept(tt.String()); ok {
				c := PurgeCheck{What: "kept", Server: srv, Database: db, Object: tt.String(), Found: count, Detail: why, Kept: true}
				if err != nil {
					c.Err = oneLine(err.Error())
				}
				checks = append(checks, c)
				continue
			}
			c := bySchema[tt.schema]
			if c == nil {
				c = &PurgeCheck{What: "rows", Server: srv, Database: db}
				bySchema[tt.schema] = c
				schemas = append(schemas, tt.schema)
			}
			c.Object = fmt.Sprintf("%s in every table with tenant_id of schema %s", plural(tableCount(tables, tt.schema), "table"), tt.schema)
			switch {
			case err != nil:
				c.Err = strings.TrimPrefix(c.Err+"; ", "; ") + oneLine(fmt.Sprintf("%s: %v", tt, err))
			case count > 0:
				c.Found += count
				c.Detail = strings.TrimPrefix(c.Detail+", ", ", ") + fmt.Sprintf("%s: %d", tt, count)
			}
		}
		for _, s := range schemas {
			checks = append(checks, *bySchema[s])
		}
		if len(tables) == 0 {
			checks = append(checks, PurgeCheck{What: "rows", Server: srv, Database: db, Object: "no table with tenant_id"})
		}
		return nil
	})
	if err != nil {
		checks = append(checks, PurgeCheck{What: "rows", Server: srv, Database: db, Object: "every table with tenant_id", Err: oneLine(err.Error())})
	}
	return checks
}

// countRows counts the rows of tenant id in tt, in a savepoint so that a
// table that cannot be read fails only its own count.
func (p *Provisioner) countRows(ctx context.Context, tx pgx.Tx, tt tenantTable, id tenant.ID, entered bool) (int64, error) {
	if tt.rls && !entered {
		return 0, errors.New("under row-level security, and the database has no landlord_context.enter to read it with")
	}
	var n int64
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		if err := p.asReader(ctx, sp, tt); err != nil {
			return err
		}
		return sp.QueryRow(ctx, fmt.Sprintf(`SELECT count(*) FROM %s WHERE tenant_id = $1`, ident.Quote(tt.schema, tt.name)), id).Scan(&n)
	})
	return n, err
}

func tableCount(tables []tenantTable, schema string) int {
	n := 0
	for _, tt := range tables {
		if tt.schema == schema {
			n++
		}
	}
	return n
}

// directoryChecks count what the directory holds of a tenant outside
// the tables keyed by tenant_id ($1 its id, $2 its schema and database
// name).
var directoryChecks = []struct{ object, sql string }{
	{"landlord.tenants", `SELECT count(*) FROM landlord.tenants t, k WHERE t.id = k.id`},
	{"landlord.tenant_reserve", `SELECT count(*) FROM landlord.tenant_reserve r, k WHERE r.id = k.id`},
	{"landlord.target_migrations", `SELECT count(*) FROM landlord.target_migrations m, k WHERE m.target = k.name`},
	{"landlord.migration_targets", `SELECT count(*) FROM landlord.migration_targets m, k WHERE m.tenant_id = k.id OR m.schema_name = k.name OR m.database_name = k.name`},
	{"landlord.global_copies", `SELECT count(*) FROM landlord.global_copies g, k WHERE g.database_name = k.name`},
}

// verifyDirectory checks the directory's records keyed by the tenant's id
// or names, and River's jobs.
func (p *Provisioner) verifyDirectory(ctx context.Context, id tenant.ID) []PurgeCheck {
	var checks []PurgeCheck
	for _, d := range directoryChecks {
		c := PurgeCheck{What: "directory", Server: directory.DefaultServer, Database: "", Object: d.object}
		if err := p.admin.QueryRow(ctx, `WITH k (id, name) AS (SELECT $1::uuid, $2::text) `+d.sql, id, id.SchemaName()).Scan(&c.Found); err != nil {
			c.Err = oneLine(err.Error())
		}
		checks = append(checks, c)
	}
	c := PurgeCheck{What: "River jobs", Server: directory.DefaultServer, Object: riverJobTable + " with metadata " + riverTenantKeyArg + " = " + id.String()}
	var river bool
	err := p.admin.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, riverJobTable).Scan(&river)
	switch {
	case err != nil:
	case !river:
		c.Detail = "no River tables"
	default:
		err = p.admin.QueryRow(ctx, `SELECT count(*) FROM `+riverJobTable+` WHERE metadata ->> $2 = $1`, id.String(), riverTenantKeyArg).Scan(&c.Found)
	}
	if err != nil {
		c.Err = oneLine(err.Error())
	}
	if db, err := p.currentDatabase(ctx); err == nil {
		c.Database = db
		for i := range checks {
			checks[i].Database = db
		}
	}
	return append(checks, c)
}

// oneLine keeps error text on one line for reports.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// plural is "1 table", "2 tables".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
