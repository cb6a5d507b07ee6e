package provision

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
)

// Templates make provisioning fast. A new schema tenant replays the clone
// script of the template schema (TemplateSchema in the control database) in
// one transaction instead of running every migration; a new database tenant
// is a copy of the template database (TemplateDatabase), whose schema is
// renamed to the tenant's. Both templates are built on first need, kept at a
// migration version by fleet runs, and rebuilt when found broken.

// templateLockNamespace is the first key of the locks that serialize
// building and migrating the templates (SECURITY.md, I26: namespaced keys).
const templateLockNamespace = 0x4c4c5450 // "LLTP"

// Second keys of the template locks.
const (
	templateSchemaLock   = 1
	templateDatabaseLock = 2
)

// migrationLockNamespace is the first key of package migration's per-target
// lock ("LLMG"; the second key is hashtext of the target schema). Holding it
// keeps migrators off the template schema while its catalog is read.
const migrationLockNamespace = 0x4c4c4d47

// trialSchema is where a new clone script is replayed to be checked, inside
// a transaction that is rolled back.
const trialSchema = "landlord_template_trial"

// errBrokenTemplate marks a template that cannot be migrated and must be
// rebuilt.
var errBrokenTemplate = errors.New("broken template")

// PrepareTemplates brings both provisioning templates to the Provisioner's
// migration set (creating them when missing and rebuilding them when broken)
// and stores the template schema's clone script. Create does the same on
// first need; calling it ahead, at deploy time or after a fleet run, keeps
// that cost off the first sign-up.
func (p *Provisioner) PrepareTemplates(ctx context.Context) error {
	if _, _, err := p.schemaScript(ctx); err != nil {
		return fmt.Errorf("prepare template schema: %w", err)
	}
	if _, err := p.templateDatabase(ctx); err != nil {
		return fmt.Errorf("prepare template database: %w", err)
	}
	return nil
}

// WithTemplateDatabase runs fn on a connection to the template database,
// which otherwise accepts none: for a fleet run that migrates it. It holds
// the template database's lock meanwhile and creates the template first if
// it is missing. Afterwards the database is closed to connections again and
// marked ready for copies only if its ledger matches the Provisioner's
// migration set; otherwise the next Create migrates it first.
func (p *Provisioner) WithTemplateDatabase(ctx context.Context, fn func(ctx context.Context, conn *pgx.Conn) error) error {
	return p.withTemplateLock(ctx, templateDatabaseLock, func(*pgx.Conn) error {
		exists, _, _, err := p.templateDatabaseState(ctx)
		if err != nil {
			return err
		}
		if !exists {
			if _, err := p.buildTemplateDatabase(ctx); err != nil {
				return err
			}
		}
		tpl := p.TemplateDatabase()
		if err := p.exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", ident.Quote(tpl))); err != nil {
			return fmt.Errorf("open template database: %w", err)
		}
		conn, err := p.Connect(ctx, directory.DefaultServer, tpl)
		if err != nil {
			return err
		}
		fnErr := fn(ctx, conn)
		version, verr := p.mig.Version(ctx, conn, migration.Target{Schema: TemplateSchema})
		globalOK := true
		if p.gmig != nil && verr == nil {
			var gv int
			gv, verr = p.gmig.Version(ctx, conn, migration.GlobalTarget())
			globalOK = gv == p.gmig.Set().Head()
		}
		conn.Close(context.WithoutCancel(ctx))
		mark := p.templateDatabaseMark()
		if fnErr != nil || verr != nil || version != p.mig.Set().Head() || !globalOK {
			mark = p.templateDatabaseMarkStale()
		}
		if err := p.closeTemplateDatabase(ctx, mark); err != nil {
			return err
		}
		return errors.Join(fnErr, verr)
	})
}

// withTemplateLock runs fn holding template lock key.
func (p *Provisioner) withTemplateLock(ctx context.Context, key int32, fn func(conn *pgx.Conn) error) error {
	return p.withLock(ctx, templateLockNamespace, key, fn)
}

// schemaScript returns the clone script of the Provisioner's migration set,
// generating it on first need. ok is false when the set cannot be cloned by
// script: schema tenants are then migrated one by one.
func (p *Provisioner) schemaScript(ctx context.Context) (s cloneScript, ok bool, err error) {
	ts, found, err := directory.LoadTemplateScript(ctx, p.admin, p.scriptKey())
	if err != nil {
		return s, false, err
	}
	if !found {
		if ts, err = p.buildSchemaScript(ctx); err != nil {
			return s, false, err
		}
	}
	if ts.Script == "" {
		return s, false, nil
	}
	s, err = decodeCloneScript(ts.Script)
	return s, err == nil, err
}

// scriptKey is what the template schema's clone script is stored under:
// the migration set and the version of the tenant context, whose policies
// the script carries (a script made before the context was signed would
// make new tenants with unsigned policies).
func (p *Provisioner) scriptKey() string {
	h := sha256.Sum256([]byte(p.mig.Set().Hash() + "\x00" + migration.ContextVersion))
	return hex.EncodeToString(h[:])
}

// buildSchemaScript brings the template schema to the migration set,
// generates its clone script, checks it and stores it, all under the
// template schema's lock. A set that cannot be cloned is stored without a
// script, so that no later Create tries again.
func (p *Provisioner) buildSchemaScript(ctx context.Context) (directory.TemplateScript, error) {
	set := p.mig.Set()
	out := directory.TemplateScript{SetHash: p.scriptKey(), Version: set.Head()}
	err := p.withTemplateLock(ctx, templateSchemaLock, func(conn *pgx.Conn) error {
		if ts, found, err := directory.LoadTemplateScript(ctx, conn, out.SetHash); err != nil || found {
			out = ts
			return err // another process built it meanwhile
		}
		version, err := p.ensureTemplateSchema(ctx, conn)
		if err != nil {
			return err
		}
		if version != set.Head() {
			out.Note = fmt.Sprintf("the template schema is at version %d, the migrations at %d", version, set.Head())
		} else {
			s, err := p.verifiedCloneScript(ctx, conn)
			switch {
			case errors.Is(err, errNotClonable):
				out.Note = err.Error()
			case err != nil:
				return err
			default:
				if out.Script, err = s.encode(); err != nil {
					return err
				}
			}
		}
		if out.Script == "" {
			p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "schema tenants will be migrated one by one, not cloned",
				slog.String("reason", out.Note))
		}
		return p.dir.SaveTemplateScript(ctx, out)
	})
	if err != nil {
		return out, fmt.Errorf("build template schema script: %w", err)
	}
	return out, nil
}

// ensureTemplateSchema creates the template schema if it is missing and
// migrates it, rebuilding it when its ledger does not match the set. It
// returns the version the template is at, which is above the set's head
// when newer code migrated it.
func (p *Provisioner) ensureTemplateSchema(ctx context.Context, conn *pgx.Conn) (int, error) {
	target := migration.Target{Schema: TemplateSchema}
	for attempt := 0; ; attempt++ {
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL ROLE %s; CREATE SCHEMA IF NOT EXISTS %s;
				COMMENT ON SCHEMA %s IS 'landlord template: cloned for new schema tenants'`,
				ident.Quote(p.cfg.OwnerRole), ident.Quote(TemplateSchema), ident.Quote(TemplateSchema)))
			return err
		}); err != nil {
			return 0, fmt.Errorf("create template schema: %w", err)
		}
		res, err := p.mig.Apply(ctx, conn, target)
		if err == nil {
			return res.To, p.resecure(ctx, conn, target)
		}
		if attempt > 0 || !(errors.Is(err, migration.ErrChecksumMismatch) || errors.Is(err, migration.ErrUnknownVersion) ||
			errors.Is(err, migration.ErrMissingVersion)) {
			return 0, fmt.Errorf("migrate template schema: %w", err)
		}
		p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "rebuilding the template schema", slog.String("reason", err.Error()))
		if err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, fmt.Sprintf(`DROP SCHEMA %s CASCADE; DELETE FROM landlord.target_migrations WHERE target = %s`,
				ident.Quote(TemplateSchema), ident.Literal(TemplateSchema)))
			return err
		}); err != nil {
			return 0, fmt.Errorf("drop broken template schema: %w", err)
		}
	}
}

// verifiedCloneScript generates the template schema's clone script and
// checks it: replayed into a trial schema, it must give a catalog equal to
// the template's. Migrators are kept off the template meanwhile.
func (p *Provisioner) verifiedCloneScript(ctx context.Context, conn *pgx.Conn) (cloneScript, error) {
	var s cloneScript
	tx, err := conn.Begin(ctx)
	if err != nil {
		return s, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // nothing here is kept
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, migrationLockNamespace, TemplateSchema); err != nil {
		return s, err
	}
	set := p.mig.Set()
	rows, _ := tx.Query(ctx, `SELECT version, name, checksum FROM landlord.target_migrations WHERE target = $1 ORDER BY version`, TemplateSchema)
	ledger, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledgerRow, error) {
		var l ledgerRow
		err := r.Scan(&l.Version, &l.Name, &l.Checksum)
		return l, err
	})
	if err != nil {
		return s, fmt.Errorf("read template ledger: %w", err)
	}
	var want []ledgerRow
	for _, m := range set.Migrations() {
		want = append(want, ledgerRow{Version: m.Version, Name: m.Name, Checksum: m.Checksum})
	}
	if !slices.EqualFunc(ledger, set.Migrations(), func(l ledgerRow, m migration.Migration) bool {
		return l.Version == m.Version && l.Name == m.Name && m.Matches(l.Checksum)
	}) {
		return s, fmt.Errorf("template schema moved while its script was generated: %w", errBrokenTemplate)
	}
	templateLines, err := catalogLines(ctx, tx, TemplateSchema, "")
	if err != nil {
		return s, err
	}
	if s, err = generateCloneScript(ctx, tx, TemplateSchema, p.cfg.OwnerRole); err != nil {
		return s, err
	}
	s.Version, s.Ledger = set.Head(), want
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL ROLE %s; CREATE SCHEMA %s; SET LOCAL search_path = %s, pg_catalog, pg_temp;
		SET LOCAL check_function_bodies = off`, ident.Quote(p.cfg.OwnerRole), ident.Quote(trialSchema), ident.Quote(trialSchema))); err != nil {
		return s, fmt.Errorf("create trial schema: %w", err)
	}
	if _, err := tx.Exec(ctx, s.ddl(trialSchema)); err != nil {
		return s, fmt.Errorf("%w: the script fails on replay: %v", errNotClonable, err)
	}
	trialLines, err := catalogLines(ctx, tx, trialSchema, "")
	if err != nil {
		return s, err
	}
	if diff := diffLines(templateLines, trialLines); len(diff) > 0 {
		if len(diff) > 10 {
			diff = append(diff[:10], fmt.Sprintf("... %d more", len(diff)-10))
		}
		return s, fmt.Errorf("%w: the replay differs from the template: %s", errNotClonable, strings.Join(diff, "; "))
	}
	return s, nil
}

// templateDatabaseMark is the comment of a template database that is
// complete, closed to connections and at the Provisioner's migration set.
// It does not end in the installation id, so it is never taken for a
// tenant's marker.
func (p *Provisioner) templateDatabaseMark() string {
	// "signed context": templates made before the context was signed are
	// checked again, which installs it.
	mark := "landlord template of installation " + p.inst.ID.String() + " with signed context at migration set " + p.mig.Set().Hash()
	if p.gmig != nil {
		mark += " and global set " + p.gmig.Set().Hash()
	}
	return mark
}

// templateDatabaseMarkStale is the comment of a template database that must
// be checked and migrated before it is copied.
func (p *Provisioner) templateDatabaseMarkStale() string {
	return "landlord template of installation " + p.inst.ID.String() + " to be checked"
}

// TemplateDatabaseReady reports whether the template database is ready
// for copies: closed to connections and marked as at the Provisioner's
// migration set, which it is marked only after its ledger was found to
// match the set. It reads the mark, not the database, which accepts no
// connections.
func (p *Provisioner) TemplateDatabaseReady(ctx context.Context) (bool, error) {
	exists, allow, comment, err := p.templateDatabaseState(ctx)
	return err == nil && exists && !allow && comment == p.templateDatabaseMark(), err
}

func (p *Provisioner) templateDatabaseState(ctx context.Context) (exists, allowConn bool, comment string, err error) {
	err = p.admin.QueryRow(ctx, `SELECT datallowconn, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1`,
		p.TemplateDatabase()).Scan(&allowConn, &comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, "", nil
	}
	if err != nil {
		return false, false, "", fmt.Errorf("look up template database: %w", err)
	}
	return true, allowConn, comment, nil
}

// templateDatabase reports whether the template database can be copied
// now, building or migrating it first when needed. ok is false when it is
// ahead of the Provisioner's migrations (newer code migrated it).
func (p *Provisioner) templateDatabase(ctx context.Context) (ok bool, err error) {
	exists, allow, comment, err := p.templateDatabaseState(ctx)
	if err != nil || (exists && !allow && comment == p.templateDatabaseMark()) {
		return err == nil, err
	}
	err = p.withTemplateLock(ctx, templateDatabaseLock, func(*pgx.Conn) error {
		ok, err = p.prepareTemplateDatabase(ctx)
		return err
	})
	return ok, err
}

// prepareTemplateDatabase is templateDatabase's slow path; the caller holds
// the template database's lock.
func (p *Provisioner) prepareTemplateDatabase(ctx context.Context) (bool, error) {
	exists, allow, comment, err := p.templateDatabaseState(ctx)
	switch {
	case err != nil:
		return false, err
	case exists && !allow && comment == p.templateDatabaseMark():
		return true, nil // prepared while we waited for the lock
	case exists:
		ok, err := p.migrateTemplateDatabase(ctx)
		if !errors.Is(err, errBrokenTemplate) {
			return ok, err
		}
		p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "rebuilding the template database", slog.String("reason", err.Error()))
	}
	return p.buildTemplateDatabase(ctx)
}

// buildTemplateDatabase (re)creates the template database from template0
// and migrates it. The caller holds the template database's lock.
func (p *Provisioner) buildTemplateDatabase(ctx context.Context) (bool, error) {
	tpl := ident.Quote(p.TemplateDatabase())
	if p.gmig != nil {
		// The record of the old copy must not vouch for the new one.
		if err := p.dir.ForgetGlobalCopies(ctx, directory.CopyKey{Server: directory.DefaultServer, Database: p.TemplateDatabase()}); err != nil {
			return false, err
		}
	}
	if err := p.exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", tpl)); err != nil {
		return false, fmt.Errorf("drop template database: %w", err)
	}
	// template0 holds nothing an installation added to template1; WAL_LOG
	// avoids the checkpoints FILE_COPY forces.
	if err := p.exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' STRATEGY WAL_LOG",
		tpl, ident.Quote(p.cfg.OwnerRole))); err != nil {
		return false, fmt.Errorf("create template database: %w", err)
	}
	if err := p.exec(ctx, fmt.Sprintf(`COMMENT ON DATABASE %s IS %s; REVOKE ALL ON DATABASE %s FROM PUBLIC`,
		tpl, ident.Literal(p.templateDatabaseMarkStale()), tpl)); err != nil {
		return false, fmt.Errorf("lock down template database: %w", err)
	}
	conn, err := p.Connect(ctx, directory.DefaultServer, p.TemplateDatabase())
	if err != nil {
		return false, err
	}
	_, err = conn.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL ROLE %s; DROP SCHEMA IF EXISTS public; CREATE SCHEMA %s; COMMIT`,
		ident.Quote(p.cfg.OwnerRole), ident.Quote(TemplateSchema)))
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return false, fmt.Errorf("create template schema in the template database: %w", err)
	}
	ok, err := p.migrateTemplateDatabase(ctx)
	if err != nil {
		return false, fmt.Errorf("migrate new template database: %w", err)
	}
	return ok, nil
}

// migrateTemplateDatabase opens the template database, checks that it holds
// what a template holds, migrates it and closes it again, marked ready when
// it is at the Provisioner's migration set. A template that fails the check
// or cannot be migrated gets an error wrapping errBrokenTemplate.
func (p *Provisioner) migrateTemplateDatabase(ctx context.Context) (bool, error) {
	tpl := p.TemplateDatabase()
	if err := p.exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS true", ident.Quote(tpl))); err != nil {
		return false, fmt.Errorf("open template database: %w", err)
	}
	conn, err := p.Connect(ctx, directory.DefaultServer, tpl)
	if err != nil {
		return false, err
	}
	version, err := p.checkAndMigrateTemplate(ctx, conn)
	if err == nil {
		// Every copy copies each block of the template: rewritten and
		// frozen, its catalogs are smaller than template0's, and no copy
		// sets hint bits on them later.
		if _, err = conn.Exec(ctx, `VACUUM (FULL, FREEZE)`); err != nil {
			err = fmt.Errorf("vacuum template database: %w", err)
		}
	}
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return false, err
	}
	ok := version == p.mig.Set().Head()
	mark := p.templateDatabaseMark()
	if !ok {
		mark = p.templateDatabaseMarkStale()
	}
	return ok, p.closeTemplateDatabase(ctx, mark)
}

func (p *Provisioner) checkAndMigrateTemplate(ctx context.Context, conn *pgx.Conn) (int, error) {
	if err := p.lockDown(ctx, conn, p.TemplateDatabase()); err != nil {
		return 0, err
	}
	var schemas []string
	if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(nspname::text ORDER BY nspname), '{}') FROM pg_namespace
		WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'`).Scan(&schemas); err != nil {
		return 0, fmt.Errorf("check template database: %w", err)
	}
	schemas = slices.DeleteFunc(schemas, func(s string) bool { return p.gmig != nil && s == migration.GlobalSchema })
	schemas = slices.DeleteFunc(schemas, func(s string) bool { return s == migration.ContextSchema })
	if !slices.Equal(schemas, []string{"landlord", TemplateSchema}) && !slices.Equal(schemas, []string{TemplateSchema}) {
		return 0, fmt.Errorf("%w: the template database holds schemas %v", errBrokenTemplate, schemas)
	}
	if p.gmig != nil {
		// The global tables first, rows included: the tenant tables may
		// reference them.
		err := p.syncNew(ctx, conn, directory.CopyKey{Server: directory.DefaultServer, Database: p.TemplateDatabase()})
		if errors.Is(err, migration.ErrChecksumMismatch) || errors.Is(err, migration.ErrUnknownVersion) ||
			errors.Is(err, migration.ErrMissingVersion) || errors.Is(err, migration.ErrShape) {
			return 0, fmt.Errorf("%w: %v", errBrokenTemplate, err)
		}
		if err != nil {
			return 0, fmt.Errorf("template database: %w", err)
		}
	}
	// Also when no step is left: a template made before the context was
	// signed, or with another key, gets it here, and so does every copy.
	if err := migration.InstallContext(ctx, conn, p.cfg.OwnerRole, p.roles.ContextKey()); err != nil {
		return 0, fmt.Errorf("template database: %w", err)
	}
	if err := p.ensureContextCheck(ctx, conn); err != nil {
		return 0, fmt.Errorf("template database: %w", err)
	}
	res, err := p.mig.Apply(ctx, conn, migration.Target{Schema: TemplateSchema})
	if err == nil {
		err = p.resecure(ctx, conn, migration.Target{Schema: TemplateSchema})
	}
	if errors.Is(err, migration.ErrChecksumMismatch) || errors.Is(err, migration.ErrUnknownVersion) ||
		errors.Is(err, migration.ErrMissingVersion) || errors.Is(err, migration.ErrShape) {
		return 0, fmt.Errorf("%w: %v", errBrokenTemplate, err)
	}
	if err != nil {
		return 0, fmt.Errorf("migrate template database: %w", err)
	}
	return res.To, nil
}

// closeTemplateDatabase closes the template database to connections, which
// CREATE DATABASE ... TEMPLATE needs, and marks it.
func (p *Provisioner) closeTemplateDatabase(ctx context.Context, mark string) error {
	tpl := ident.Quote(p.TemplateDatabase())
	if err := p.exec(ctx, fmt.Sprintf(`BEGIN; ALTER DATABASE %s ALLOW_CONNECTIONS false; COMMENT ON DATABASE %s IS %s; COMMIT`,
		tpl, tpl, ident.Literal(mark))); err != nil {
		return fmt.Errorf("close template database: %w", err)
	}
	return nil
}
