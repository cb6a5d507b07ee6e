package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/internal/ident"
)

// OwnServerSetting is the server setting with which a server says that it
// serves Landlord alone: where it is on, bootstrap closes the server's
// maintenance databases, postgres and template1, to every role but the
// superusers and their owners (SECURITY.md, I36), which tenant logins of
// the database model could otherwise connect to (and hold TEMPORARY in
// postgres). Package embedded sets it on every server it starts; set it
// yourself (ALTER SYSTEM SET landlord.own_server = on) on a server no other
// application's roles use. Elsewhere the maintenance databases are the
// operator's, and Landlord leaves them alone.
const OwnServerSetting = "landlord.own_server"

// maintenanceDatabases are the databases every cluster is made with that
// accept connections; template0 accepts none.
var maintenanceDatabases = []string{"postgres", "template1"}

// lockDownSQL revokes from PUBLIC, in one database, what lets tenant SQL
// learn about other tenants outside their tables:
//
//   - PL/pgSQL (I32): a DO block's dynamic EXECUTE runs an EXPLAIN that the
//     handle cannot see. Running an existing PL/pgSQL function needs no
//     USAGE on the language, and the owner role, which creates the
//     application's functions, gets USAGE back.
//   - the server-side large-object functions (I35): every row tenant runs
//     as the app role, which owns every large object its tenants made, so
//     one tenant reads another's. Landlord uses none of them. lo_import
//     and lo_export are the superusers' already.
//   - pg_stat_activity and the two functions that return a backend's query
//     text (I35): the row model's tenants share the app role and would read
//     each other's statements in flight, literals included. Superusers keep
//     them; grant them to a monitoring role explicitly.
//   - pg_cancel_backend and pg_terminate_backend (I37): a role may signal
//     every backend logged in as itself, and every row and schema tenant
//     logs in as the app role, so one row tenant's SQL could cancel or end
//     every other tenant's connection (pids are small numbers to try, with
//     or without pg_stat_activity). Landlord signals backends as the
//     administrator only.
//   - the advisory-lock functions of two int4 keys (I39): Landlord
//     coordinates its own work with them (namespaced keys, I26), and a
//     tenant transaction that took one of its keys and stayed open held up
//     provisioning, migrations or the tenant context as long as it liked.
//     Applications keep the functions of one bigint key, whose locks never
//     meet those of two keys; the owner role, which takes some of
//     Landlord's locks, gets the two-key ones back.
//
// Only the objects' owner (the bootstrap superuser) can revoke these: run
// by another administrator the statements warn and change nothing, or fail
// once PUBLIC no longer holds them, which lockDown reports and the audit
// finds.
const lockDownSQL = `REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;
GRANT USAGE ON LANGUAGE plpgsql TO %[1]s;
REVOKE EXECUTE ON FUNCTION pg_catalog.lo_create(oid), pg_catalog.lo_creat(integer),
	pg_catalog.lo_open(oid, integer), pg_catalog.lo_close(integer),
	pg_catalog.loread(integer, integer), pg_catalog.lowrite(integer, bytea),
	pg_catalog.lo_lseek(integer, integer, integer), pg_catalog.lo_lseek64(integer, bigint, integer),
	pg_catalog.lo_tell(integer), pg_catalog.lo_tell64(integer),
	pg_catalog.lo_truncate(integer, integer), pg_catalog.lo_truncate64(integer, bigint),
	pg_catalog.lo_unlink(oid), pg_catalog.lo_from_bytea(oid, bytea),
	pg_catalog.lo_get(oid), pg_catalog.lo_get(oid, bigint, integer), pg_catalog.lo_put(oid, bigint, bytea)
	FROM PUBLIC;
REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer), pg_catalog.pg_stat_get_backend_activity(integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer), pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION ` + twoKeyLockFuncs + ` FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ` + twoKeyLockFuncs + ` TO %[1]s`

// twoKeyLockFuncs are the advisory-lock functions of two int4 keys, which
// Landlord's own locks use.
const twoKeyLockFuncs = `pg_catalog.pg_advisory_lock(integer, integer), pg_catalog.pg_advisory_lock_shared(integer, integer),
	pg_catalog.pg_try_advisory_lock(integer, integer), pg_catalog.pg_try_advisory_lock_shared(integer, integer),
	pg_catalog.pg_advisory_xact_lock(integer, integer), pg_catalog.pg_advisory_xact_lock_shared(integer, integer),
	pg_catalog.pg_try_advisory_xact_lock(integer, integer), pg_catalog.pg_try_advisory_xact_lock_shared(integer, integer),
	pg_catalog.pg_advisory_unlock(integer, integer), pg_catalog.pg_advisory_unlock_shared(integer, integer)`

// twoKeyLocksPublicSQL is true when PUBLIC may run one of twoKeyLockFuncs.
const twoKeyLocksPublicSQL = `EXISTS (SELECT FROM pg_proc f WHERE f.pronamespace = 'pg_catalog'::regnamespace
		AND f.proname LIKE 'pg\_%advisory%' AND f.proargtypes = '23 23'::oidvector AND has_function_privilege('public', f.oid, 'EXECUTE'))`

// lockedDownSQL reads whether PUBLIC still holds what lockDownSQL revokes.
const lockedDownSQL = `SELECT has_language_privilege('public', 'plpgsql', 'USAGE')
	OR EXISTS (SELECT FROM pg_proc f WHERE f.pronamespace = 'pg_catalog'::regnamespace
		AND (f.proname LIKE 'lo\_%' OR f.proname IN ('loread', 'lowrite')) AND has_function_privilege('public', f.oid, 'EXECUTE'))
	OR has_table_privilege('public', 'pg_catalog.pg_stat_activity', 'SELECT')
	OR has_function_privilege('public', 'pg_catalog.pg_stat_get_activity(integer)', 'EXECUTE')
	OR has_function_privilege('public', 'pg_catalog.pg_stat_get_backend_activity(integer)', 'EXECUTE')
	OR has_function_privilege('public', 'pg_catalog.pg_cancel_backend(integer)', 'EXECUTE')
	OR has_function_privilege('public', 'pg_catalog.pg_terminate_backend(integer, bigint)', 'EXECUTE')
	OR ` + twoKeyLocksPublicSQL

// lockConn is what lockDown needs of a connection: *pgx.Conn and
// *pgxpool.Pool have it.
type lockConn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lockDown revokes lockDownSQL's privileges in database db, which conn is
// connected to, and closes the server's maintenance databases where
// OwnServerSetting is on. It runs at every bootstrap (the control
// database) and whenever the template database is prepared, whose copies,
// the tenant databases, inherit its catalog. An administrator that is not a
// superuser changes nothing here, which is logged; the audit reports what
// is left open.
func (p *Provisioner) lockDown(ctx context.Context, conn lockConn, db string) error {
	open, err := publicHolds(ctx, conn, db)
	if err != nil || !open {
		return errors.Join(err, p.closeMaintenance(ctx, conn))
	}
	err = retryConcurrent(func() error {
		_, err := conn.Exec(ctx, fmt.Sprintf(lockDownSQL, ident.Quote(p.cfg.OwnerRole)))
		return err
	})
	if err != nil && !isCode(err, pgerrcode.InsufficientPrivilege) {
		return fmt.Errorf("revoke PL/pgSQL, large objects, pg_stat_activity, the signal functions and the two-key advisory locks from PUBLIC in %s: %w", ident.Quote(db), err)
	}
	if open, err = publicHolds(ctx, conn, db); err != nil {
		return err
	}
	if open {
		p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "PUBLIC keeps PL/pgSQL, the large-object functions, pg_stat_activity, the signal functions or the two-key advisory locks: only a superuser can revoke them (SECURITY.md, I32, I35, I37, I39)",
			slog.String("database", db))
	}
	return p.closeMaintenance(ctx, conn)
}

// publicHolds reports whether PUBLIC holds any of what lockDownSQL revokes
// in the database conn is connected to.
func publicHolds(ctx context.Context, conn lockConn, db string) (bool, error) {
	var open bool
	if err := conn.QueryRow(ctx, lockedDownSQL).Scan(&open); err != nil {
		return false, fmt.Errorf("check the privileges of PUBLIC in %s: %w", ident.Quote(db), err)
	}
	return open, nil
}

// closeMaintenance revokes CONNECT and TEMPORARY on the maintenance
// databases from PUBLIC on a server whose OwnServerSetting is on. Their
// owner and the superusers keep connecting: pg_dump, the embedded server
// and test harnesses connect to postgres as a superuser.
func (p *Provisioner) closeMaintenance(ctx context.Context, conn lockConn) error {
	var own bool
	if err := conn.QueryRow(ctx, `SELECT coalesce(current_setting($1, true), '') = 'on'`, OwnServerSetting).Scan(&own); err != nil {
		return fmt.Errorf("read %s: %w", OwnServerSetting, err)
	}
	if !own {
		return nil
	}
	var open []string
	if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(datname::text ORDER BY datname), '{}') FROM pg_database
		WHERE datname = ANY ($1) AND (has_database_privilege('public', oid, 'CONNECT') OR has_database_privilege('public', oid, 'TEMPORARY'))`,
		maintenanceDatabases).Scan(&open); err != nil {
		return fmt.Errorf("look up the maintenance databases: %w", err)
	}
	for _, d := range open {
		err := retryConcurrent(func() error {
			_, err := conn.Exec(ctx, fmt.Sprintf(`REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC`, ident.Quote(d)))
			return err
		})
		if isCode(err, pgerrcode.InsufficientPrivilege) {
			p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "PUBLIC keeps CONNECT on a maintenance database: only its owner or a superuser can revoke it (SECURITY.md, I36)",
				slog.String("database", d))
			continue
		}
		if err != nil {
			return fmt.Errorf("close maintenance database %s: %w", d, err)
		}
	}
	return nil
}

// retryConcurrent runs fn again, at most twice, when it fails because a
// concurrent bootstrap updated the same catalog row ("tuple concurrently
// updated", an internal error).
func retryConcurrent(fn func() error) error {
	var err error
	for range 3 {
		if err = fn(); err == nil || !isCode(err, pgerrcode.InternalError) {
			return err
		}
	}
	return err
}
