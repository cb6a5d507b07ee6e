package platform

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the pair of keys of the session advisory lock that
// serializes the platform's migrations across processes opening the same
// control database ("shop" in ASCII, and 1), apart from the keys Landlord
// uses. Locks of two keys are out of tenant SQL's reach where a superuser
// bootstrapped the installation (SECURITY.md, I39), so no store can hold
// up the platform's start.
var migrationLock = [2]int32{0x73686f70, 1}

// platformMigration is one NNN_name.up.sql file.
type platformMigration struct {
	version  int
	name     string
	sql      string
	checksum string // hex SHA-256 of sql
}

// loadMigrations reads the NNN_name.up.sql files of fsys, ordered by version.
func loadMigrations(fsys fs.FS) ([]platformMigration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("platform migrations: %w", err)
	}
	var ms []platformMigration
	for _, e := range entries {
		base, ok := strings.CutSuffix(e.Name(), ".up.sql")
		if !ok {
			return nil, fmt.Errorf("platform migrations: %s: name must end in .up.sql", e.Name())
		}
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 || name == "" {
			return nil, fmt.Errorf("platform migrations: %s: name must be NNN_name.up.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("platform migrations: %w", err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, platformMigration{version: v, name: name, sql: string(b), checksum: hex.EncodeToString(sum[:])})
	}
	slices.SortFunc(ms, func(a, b platformMigration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("platform migrations: two files with version %d", ms[i].version)
		}
	}
	return ms, nil
}

// migrate brings schema shop of the control database to the newest
// migration: under a session advisory lock, so that processes starting
// together apply each file once, and each file in one transaction with its
// row in shop.migrations. A file applied before must be unchanged.
func migrate(ctx context.Context, db *pgxpool.Pool, ms []platformMigration, log *slog.Logger) (err error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("platform migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, migrationLock[0], migrationLock[1]); err != nil {
		return fmt.Errorf("platform migrations: lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, $2)`, migrationLock[0], migrationLock[1]); uerr != nil {
			// A connection that may still hold the lock must not go back
			// to the pool: closing it ends the session and the lock.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			err = errors.Join(err, fmt.Errorf("platform migrations: unlock: %w", uerr))
		}
	}()

	// The schema is closed to everyone but its owner: tenant traffic roles
	// get nothing here, whatever default privileges the database has.
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, q := range []string{
			`CREATE SCHEMA IF NOT EXISTS shop`,
			`REVOKE ALL ON SCHEMA shop FROM PUBLIC`,
			`CREATE TABLE IF NOT EXISTS shop.migrations (
				version    integer     PRIMARY KEY,
				name       text        NOT NULL,
				checksum   text        NOT NULL,
				applied_at timestamptz NOT NULL DEFAULT now()
			)`,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("platform migrations: create schema shop: %w", err)
	}

	applied := map[int]string{} // version -> checksum
	rows, err := conn.Query(ctx, `SELECT version, checksum FROM shop.migrations`)
	if err != nil {
		return fmt.Errorf("platform migrations: read ledger: %w", err)
	}
	var v int
	var sum string
	if _, err := pgx.ForEachRow(rows, []any{&v, &sum}, func() error { applied[v] = sum; return nil }); err != nil {
		return fmt.Errorf("platform migrations: read ledger: %w", err)
	}
	for _, m := range ms {
		if got, ok := applied[m.version]; ok {
			if got != m.checksum {
				return fmt.Errorf("platform migrations: %03d_%s was changed after it was applied; add a new migration instead", m.version, m.name)
			}
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO shop.migrations (version, name, checksum) VALUES ($1, $2, $3)`, m.version, m.name, m.checksum)
			return err
		})
		if err != nil {
			return fmt.Errorf("platform migrations: apply %03d_%s: %w", m.version, m.name, err)
		}
		log.LogAttrs(ctx, slog.LevelInfo, "platform migration applied", slog.Int("version", m.version), slog.String("name", m.name))
	}
	return nil
}
