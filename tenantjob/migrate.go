package tenantjob

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// Schema is the schema of the control database that holds River's tables;
// set river.Config.Schema to it.
const Schema = "river"

// migrateLock is the pair of keys of the session advisory lock that
// serializes migrations of River's schema ("LLRJ" in ASCII, and 1): two
// keys, which are out of tenant SQL's reach where a superuser bootstrapped
// the installation (SECURITY.md, I39), so no tenant can hold them up.
var migrateLock = [2]int32{0x4c4c524a, 1}

// Migrate creates Schema if it is missing and brings River's tables in it up
// to date with pool (the installation's administrator:
// ll.Provisioner().Admin()). It then takes every right on the schema and on
// what it holds from PUBLIC, so that no role but the tables' owner (and
// superusers) can read or write jobs: tenant traffic, whose SQL may be
// written by anybody, must not see other tenants' jobs, nor insert a job
// that would run as another tenant. Migrate is idempotent and safe to call
// from several processes at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if pool == nil {
		return fmt.Errorf("tenantjob: migrate: no pool")
	}
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Schema: Schema,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return fmt.Errorf("tenantjob: migrate: %w", err)
	}
	// A session lock on a connection of its own: River applies each
	// migration in a transaction of its own (a value added to an enum
	// cannot be used in the transaction that added it).
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("tenantjob: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, migrateLock[0], migrateLock[1]); err != nil {
		return fmt.Errorf("tenantjob: migrate: lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, migrateLock[0], migrateLock[1]); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // closing the session frees its lock
		}
	}()
	err = func() error {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+Schema); err != nil {
			return fmt.Errorf("create schema %s: %w", Schema, err)
		}
		if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("River migrations: %w", err)
		}
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for _, sql := range []string{
				`REVOKE ALL ON SCHEMA ` + Schema + ` FROM PUBLIC`,
				`REVOKE ALL ON ALL TABLES IN SCHEMA ` + Schema + ` FROM PUBLIC`,
				`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ` + Schema + ` FROM PUBLIC`,
				`REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ` + Schema + ` FROM PUBLIC`,
			} {
				if _, err := tx.Exec(ctx, sql); err != nil {
					return fmt.Errorf("%s: %w", sql, err)
				}
			}
			return nil
		})
	}()
	if err != nil {
		return fmt.Errorf("tenantjob: migrate River's tables in schema %s: %w", Schema, err)
	}
	return nil
}
