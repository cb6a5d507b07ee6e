package provision

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// Delete removes tenant id: its rows (row model), its schema and role
// (schema model) or its database and role (database model), everything
// else it had (see Purge), and then its directory entry. The tenant first
// moves to state deleting, so routers stop sending it traffic; a crash part
// way leaves it there, and Delete or Reconcile finishes the job. With
// Config.PurgeGrace set, Delete stops there: the tenant stays deleting,
// restorable, until its purge is due (see DeleteAfter).
func (p *Provisioner) Delete(ctx context.Context, id tenant.ID) error {
	return p.DeleteAfter(ctx, id, p.cfg.PurgeGrace)
}

// delete marks tenant id deleting with its purge due after grace, stops
// its traffic, and purges it when the purge is due. purged reports the
// latter.
func (p *Provisioner) delete(ctx context.Context, conn *pgx.Conn, id tenant.ID, grace time.Duration) (purged bool, err error) {
	t, rec, err := p.dir.ScheduleDelete(ctx, id, grace)
	if err != nil {
		return false, err
	}
	if !rec.Due {
		if p.cfg.BeforeDrop != nil {
			if err := p.cfg.BeforeDrop(ctx, t); err != nil {
				return false, err
			}
		}
		return false, nil
	}
	if rec.State != directory.PurgePurging {
		if _, err := p.dir.StartPurge(ctx, t); err != nil {
			return false, err
		}
	}
	return true, p.purgeTenant(ctx, conn, t)
}

func (p *Provisioner) dropSchemaTenant(ctx context.Context, conn *pgx.Conn, id tenant.ID) error {
	if err := p.dir.Log(ctx, id, "delete", "schema", id.SchemaName()); err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, fmt.Sprintf(`DROP SCHEMA IF EXISTS %s CASCADE; DROP ROLE IF EXISTS %s;`,
			ident.Quote(id.SchemaName()), ident.Quote(id.RoleName())))
		if err != nil {
			return fmt.Errorf("drop schema and role: %w", err)
		}
		_, err = tx.Exec(ctx, `DELETE FROM landlord.target_migrations WHERE target = $1`, id.SchemaName())
		return err
	})
}

func (p *Provisioner) dropDatabaseTenant(ctx context.Context, id tenant.ID) error {
	if err := p.dir.Log(ctx, id, "delete", "database", id.DatabaseName()); err != nil {
		return err
	}
	// The role goes after its database, which holds its only privilege.
	if err := p.dropDatabase(ctx, id); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	if err := p.exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s", ident.Quote(id.RoleName()))); err != nil {
		return fmt.Errorf("drop role: %w", err)
	}
	return nil
}

// dropDatabase drops the database of tenant id. It first closes the
// database to new connections and ends the tenant role's sessions on it;
// ending another role's session takes that role's privileges, so an
// administrator that is not a superuser first joins the tenant's role. It
// does not use DROP DATABASE ... WITH (FORCE): that also terminates
// autovacuum workers, which PostgreSQL lets only a superuser do, while a
// plain DROP DATABASE stops them itself.
func (p *Provisioner) dropDatabase(ctx context.Context, id tenant.ID) error {
	role, db := id.RoleName(), id.DatabaseName()
	var dbExists, roleExists bool
	if err := p.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1), EXISTS (SELECT FROM pg_roles WHERE rolname = $2)`,
		db, role).Scan(&dbExists, &roleExists); err != nil {
		return err
	}
	if !dbExists {
		return nil
	}
	if err := p.exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS false", ident.Quote(db))); err != nil {
		return fmt.Errorf("close database %s to new connections: %w", db, err)
	}
	if roleExists {
		if err := p.exec(ctx, fmt.Sprintf("GRANT %s TO CURRENT_USER", ident.Quote(role))); err != nil {
			return fmt.Errorf("join role %s to end its sessions: %w", role, err)
		}
	}
	for attempt := 0; ; attempt++ {
		// Every client session we may end: the tenant's and Landlord's
		// own (the provisioner may hold one on the tenant database).
		if _, err := p.admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
			  AND pg_has_role(current_user, usesysid, 'MEMBER')`, db); err != nil {
			return fmt.Errorf("end sessions on %s: %w", db, err)
		}
		err := p.exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s", ident.Quote(db)))
		if err == nil || !isCode(err, pgerrcode.ObjectInUse) || attempt >= 20 {
			return err
		}
		// A session was still ending ("being accessed by other users").
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Report says what Reconcile did.
type Report struct {
	Resumed  []tenant.ID // provisioning finished
	Deleted  []tenant.ID // deletion finished
	Skipped  []tenant.ID // busy: another session holds the tenant's lock
	Orphans  []string    // objects dropped because no directory entry owns them
	Failures []error     // per-tenant errors; Reconcile goes on past them
}

var tenantObject = regexp.MustCompile(`^[tr]_([0-9a-f]{32})$`)

// Reconcile finishes interrupted provisioning and deletion, and drops
// schemas, databases and roles that carry this installation's marker but
// belong to no tenant in the directory (the leftovers of a crash between
// dropping objects and removing the entry, or of a lost directory row).
// Objects of other installations, and objects whose tenant is being worked on
// by another session, are never touched.
func (p *Provisioner) Reconcile(ctx context.Context) (Report, error) {
	var rep Report
	all, err := p.dir.List(ctx, directory.Filter{})
	if err != nil {
		return rep, err
	}
	known := map[tenant.ID]bool{}
	for _, t := range all {
		known[t.ID] = true
		var work func(conn *pgx.Conn) error
		var done *[]tenant.ID
		switch t.State {
		case tenant.StateProvisioning:
			done = &rep.Resumed
			work = func(conn *pgx.Conn) error {
				_, err := p.resume(ctx, conn, t.ID)
				if errors.Is(err, ErrUnfilled) {
					// An import whose process died: its rows are gone
					// with it.
					done = &rep.Deleted
					_, err := p.delete(ctx, conn, t.ID, 0)
					return err
				}
				return err
			}
		case tenant.StateDeleting:
			// In its grace period the tenant waits for its purge; one
			// whose purge began is finished whatever the grace said.
			due, err := p.purgeDue(ctx, t.ID)
			if err != nil {
				rep.Failures = append(rep.Failures, fmt.Errorf("tenant %s (%s): %w", t.ID, t.Slug, err))
				continue
			}
			if !due {
				continue
			}
			work = func(conn *pgx.Conn) error { return p.purge(ctx, conn, t.ID, false) }
			done = &rep.Deleted
		default:
			continue
		}
		ok, err := p.tryTenantLock(ctx, t.ID, work)
		switch {
		case err != nil:
			rep.Failures = append(rep.Failures, fmt.Errorf("tenant %s (%s): %w", t.ID, t.Slug, err))
		case !ok:
			rep.Skipped = append(rep.Skipped, t.ID)
		default:
			*done = append(*done, t.ID)
		}
	}

	// Objects are listed after the directory: an object created after the
	// listing belongs to an intent written before it, which is in `known`
	// only if it was listed; check again under the tenant's lock.
	rows, err := p.admin.Query(ctx, `
		SELECT kind, name, comment FROM (
			SELECT 1 AS ord, 'database' AS kind, datname::text AS name, coalesce(shobj_description(oid, 'pg_database'), '') AS comment
			FROM pg_database WHERE datname ~ '^t_[0-9a-f]{32}$'
			UNION ALL
			SELECT 2, 'schema', nspname::text, coalesce(obj_description(oid, 'pg_namespace'), '')
			FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'
			UNION ALL
			SELECT 3, 'role', rolname::text, coalesce(shobj_description(oid, 'pg_authid'), '')
			FROM pg_roles WHERE rolname ~ '^r_[0-9a-f]{32}$'
		) o ORDER BY ord, name`)
	if err != nil {
		return rep, fmt.Errorf("list tenant objects: %w", err)
	}
	type object struct{ kind, name, comment string }
	objs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (object, error) {
		var o object
		err := r.Scan(&o.kind, &o.name, &o.comment)
		return o, err
	})
	if err != nil {
		return rep, fmt.Errorf("list tenant objects: %w", err)
	}
	ours := " installation " + p.inst.ID.String()
	for _, o := range objs {
		m := tenantObject.FindStringSubmatch(o.name)
		id, err := tenant.ParseID(m[1])
		if err != nil || known[id] || !strings.HasSuffix(o.comment, ours) {
			continue
		}
		_, err = p.tryTenantLock(ctx, id, func(*pgx.Conn) error {
			if _, err := p.dir.Get(ctx, id); !errors.Is(err, tenant.ErrNotFound) {
				return err // an entry appeared meanwhile, or the lookup failed
			}
			var sql string
			switch o.kind {
			case "database":
				if err := p.dropDatabase(ctx, id); err != nil {
					return err
				}
			case "schema":
				sql = fmt.Sprintf("DROP SCHEMA IF EXISTS %s CASCADE; DELETE FROM landlord.target_migrations WHERE target = %s",
					ident.Quote(o.name), ident.Literal(o.name))
			case "role":
				sql = fmt.Sprintf("DROP ROLE IF EXISTS %s", ident.Quote(o.name))
			}
			if sql != "" {
				if err := p.exec(ctx, sql); err != nil {
					return err
				}
			}
			rep.Orphans = append(rep.Orphans, o.kind+" "+o.name)
			return nil
		})
		if err != nil {
			rep.Failures = append(rep.Failures, fmt.Errorf("orphan %s %s: %w", o.kind, o.name, err))
		}
	}
	return rep, nil
}
