package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// A placement is where a tenant's tables are: its model, server, schema and
// database (the fields of a tenant.Tenant that routing reads). A move makes
// the tenant's new placement beside its old one, with these.

// Placement returns tenant t placed in model m on server (LeastLoaded
// allowed): t with the schema and database names a new tenant there gets.
func (p *Provisioner) Placement(ctx context.Context, t tenant.Tenant, m tenant.Model, server string) (tenant.Tenant, error) {
	if _, err := tenant.ParseModel(string(m)); err != nil {
		return t, err
	}
	if server == LeastLoaded {
		loads, err := p.Loads(ctx)
		if err != nil {
			return t, err
		}
		server = loads[0].Server
	}
	schema, database, err := p.placement(ctx, t.ID, m, server)
	if err != nil {
		return t, err
	}
	t.Model, t.Server, t.Schema, t.Database = m, server, schema, database
	return t, nil
}

// PlacementRole is the role setting tenant traffic runs under at t's
// placement, which its signed context names: the tenant's role in the
// schema model, "none" (the connection's login role) in the others.
func PlacementRole(t tenant.Tenant) string {
	if t.Model == tenant.ModelSchema {
		return t.ID.RoleName()
	}
	return "none"
}

// WithTenantLock runs fn holding tenant id's provisioning lock, which
// every create, delete and move of the tenant takes: conn is the session
// that holds it, connected to the control database as the administrator.
func (p *Provisioner) WithTenantLock(ctx context.Context, id tenant.ID, fn func(conn *pgx.Conn) error) error {
	return p.withTenantLock(ctx, id, fn)
}

// TryTenantLock is WithTenantLock that skips fn (ok false) when another
// session holds the lock: for work that must not wait behind a live
// operation on the tenant, as Reconcile.
func (p *Provisioner) TryTenantLock(ctx context.Context, id tenant.ID, fn func(conn *pgx.Conn) error) (ok bool, err error) {
	return p.tryTenantLock(ctx, id, fn)
}

// MakePlacement creates what tenant t needs at the placement t names, at
// the migration set's head, and returns the version: nothing in the row
// model (the server's shared tables), the role, schema and tables in the
// schema model, the role, database and tables in the database model.
// Each step skips what is there, so a retry finishes an earlier attempt.
// conn holds the tenant's lock (WithTenantLock).
func (p *Provisioner) MakePlacement(ctx context.Context, conn *pgx.Conn, t tenant.Tenant) (int, error) {
	pu := purpose{mark: p.marker(t.ID), op: "move"}
	switch t.Model {
	case tenant.ModelRow:
		if _, err := p.server(ctx, t.Server); err != nil {
			return 0, err
		}
		return p.mig.Set().Head(), nil
	case tenant.ModelSchema:
		return p.createSchemaTenant(ctx, conn, t, pu)
	case tenant.ModelDatabase:
		return p.createDatabaseTenant(ctx, t, pu)
	}
	return 0, fmt.Errorf("placement of tenant %s: model %q: %w", t.ID, t.Model, tenant.ErrBadModel)
}

// DropPlacement removes tenant t's placement that t names, which no longer
// serves it: its rows in the shared tables of its server (row model), or
// its schema, or its database. The tenant's role goes with a schema or
// database unless keepRole (another placement of the tenant on the same
// server uses it); then it only loses what the old placement needed of it.
// Nothing is done for what is gone already. conn holds the tenant's lock.
func (p *Provisioner) DropPlacement(ctx context.Context, conn *pgx.Conn, t tenant.Tenant, keepRole bool) error {
	if err := p.dir.Log(ctx, t.ID, "move", "drop", fmt.Sprintf("%s/%s %s.%s", t.Model, t.Server, t.Database, t.Schema)); err != nil {
		return err
	}
	adm, err := p.adminOn(ctx, t.Server)
	if err != nil {
		return err
	}
	role := t.ID.RoleName()
	switch t.Model {
	case tenant.ModelRow:
		return p.dropSharedRows(ctx, t)
	case tenant.ModelSchema:
		q, done, err := p.openPlace(ctx, t.Server, t.Database)
		if err != nil {
			return err
		}
		defer done()
		// The schema and its migration ledger, which a later placement
		// of the tenant in this database starts afresh.
		if err := pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "DROP SCHEMA IF EXISTS "+ident.Quote(t.Schema)+" CASCADE"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DELETE FROM landlord.target_migrations WHERE target = $1`, t.Schema)
			return err
		}); err != nil {
			return fmt.Errorf("drop schema %s: %w", t.Schema, err)
		}
		if keepRole {
			return nil
		}
		return dropRole(ctx, q, role)
	case tenant.ModelDatabase:
		if err := dropDatabaseOn(ctx, adm, t.ID); err != nil {
			return fmt.Errorf("drop database %s: %w", t.Database, err)
		}
		if keepRole {
			// The schema model's role logs in never.
			_, err := adm.Exec(ctx, fmt.Sprintf("ALTER ROLE %s NOLOGIN PASSWORD NULL; COMMENT ON ROLE %s IS %s",
				ident.Quote(role), ident.Quote(role), ident.Literal(p.marker(t.ID))))
			return err
		}
		return dropRole(ctx, adm, role)
	}
	return fmt.Errorf("placement of tenant %s: model %q: %w", t.ID, t.Model, tenant.ErrBadModel)
}

// dropSharedRows deletes tenant t's rows from the shared tables of its
// server's database, children first, as Purge does.
func (p *Provisioner) dropSharedRows(ctx context.Context, t tenant.Tenant) error {
	q, done, err := p.openPlace(ctx, t.Server, t.Database)
	if err != nil {
		return err
	}
	defer done()
	return pgx.BeginFunc(ctx, q, func(tx pgx.Tx) error {
		all, err := tenantTables(ctx, tx)
		if err != nil {
			return err
		}
		all = slices.DeleteFunc(all, func(tt tenantTable) bool { return tt.schema != t.Schema })
		if len(all) == 0 {
			return nil
		}
		order, err := referencedLast(ctx, tx, all)
		if err != nil {
			return err
		}
		// Every row of the tenant goes, from every table of the schema,
		// children first: no foreign key can be left dangling, and its
		// checks (a lookup per row in each referencing table, indexed or
		// not) are skipped where the administrator may.
		if _, err := tx.Exec(ctx, `SAVEPOINT replica`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
			if _, err := tx.Exec(ctx, `ROLLBACK TO SAVEPOINT replica`); err != nil {
				return err
			}
		}
		entered, err := p.enterTenant(ctx, tx, t.ID)
		if err != nil {
			return fmt.Errorf("enter the tenant's context: %w", err)
		}
		for _, tt := range order {
			if tt.rls && !entered {
				return fmt.Errorf("table %s is under row-level security, and the database has no landlord_context.enter to delete with", tt)
			}
		}
		return p.deleteTenantRows(ctx, tx, t.ID, order)
	})
}

// deleteTenantRows deletes tenant id's rows from tables, in their order,
// each as a role that may read it (asReader), for Purge and DropPlacement.
func (p *Provisioner) deleteTenantRows(ctx context.Context, tx pgx.Tx, id tenant.ID, tables []tenantTable) error {
	for _, tt := range tables {
		if err := p.asReader(ctx, tx, tt); err != nil {
			return err
		}
		if err := deleteRows(ctx, tx, fmt.Sprintf("DELETE FROM %s WHERE tenant_id = $1", ident.Quote(tt.schema, tt.name)), id); err != nil {
			return fmt.Errorf("delete rows of %s: %w", tt, err)
		}
	}
	return nil
}

// deleteRows runs a DELETE on a table that may be published, going again
// when it met the publication race: PostgreSQL 15 reads the publications
// of a table it updates or deletes from (for the replica identity check),
// and a publication dropped meanwhile (a move's, done) fails the statement
// with "cache lookup failed for publication". The publication is gone for
// good once seen so: a second try reads the list without it.
func deleteRows(ctx context.Context, tx pgx.Tx, sql string, args ...any) error {
	for attempt := 0; ; attempt++ {
		if _, err := tx.Exec(ctx, "SAVEPOINT delete_rows"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, args...)
		if err == nil || attempt == 4 || !publicationRace(err) {
			return err
		}
		if _, err := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT delete_rows"); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		}
	}
}

// publicationRace reports whether err is PostgreSQL's failure to find a
// publication that was dropped while the statement read a table's list.
func publicationRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InternalError && strings.Contains(pgErr.Message, "cache lookup failed for publication")
}

// openPlace connects to database on server as open does (the pool for
// the control database, a new connection to close with done otherwise).
func (p *Provisioner) openPlace(ctx context.Context, server, database string) (q dbConn, done func(), err error) {
	srv, err := p.server(ctx, server)
	if err != nil {
		return nil, nil, err
	}
	control, err := p.currentDatabase(ctx)
	if err != nil {
		return nil, nil, err
	}
	return p.open(ctx, place{server: srv, database: database, control: srv.Host == "" && database == control})
}

// HoldSharedTables takes the migration lock of server's shared tables (the
// row model's placement there) in shared mode, on a session of its own, and
// returns the migration version the tables are at and the function that
// lets go. Until then no migrator changes those tables: a fleet run's step
// waits. Moves that copy rows out of or into the tables hold it, so that
// the rows keep one shape from the copy to the cutover; several moves hold
// it at once.
func (p *Provisioner) HoldSharedTables(ctx context.Context, server string) (version int, release func(), err error) {
	srv, err := p.server(ctx, server)
	if err != nil {
		return 0, nil, err
	}
	conn, err := p.Connect(ctx, srv.ID, srv.Database)
	if err != nil {
		return 0, nil, err
	}
	release = func() {
		// Let go before the connection closes, which would too, but only
		// once its server process has ended.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock_shared($1, hashtext($2))`, migrationLockNamespace, SharedSchema)
		conn.Close(uctx)
	}
	// The version is read in the statement after the lock, with a
	// snapshot that sees the last migration its holder committed.
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_advisory_lock_shared($1, hashtext($2))`, migrationLockNamespace, SharedSchema)
	b.Queue(`SELECT coalesce(max(version), 0) FROM landlord.target_migrations WHERE target = $1`, SharedSchema).QueryRow(func(r pgx.Row) error {
		return r.Scan(&version)
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		release()
		return 0, nil, fmt.Errorf("hold the shared tables of server %s: %w", server, err)
	}
	return version, release, nil
}
