package bench

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	identpkg "github.com/landlordhq/landlord/internal/ident"
	"io/fs"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/shopschema"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

//go:embed sql/app/*.sql
var sqlFiles embed.FS

// appMigrations are the tenant tables of the traffic and fleet cases: ten
// tables, items among them (sql/app).
func appMigrations() fs.FS { return subFS("sql/app") }

// shopMigrations are the ten-table store schema the provision case creates
// tenants of.
func shopMigrations() fs.FS { return shopschema.FS() }

func subFS(dir string) fs.FS {
	sub, err := fs.Sub(sqlFiles, dir)
	if err != nil {
		panic(err) // the directories are embedded above
	}
	return sub
}

// lookupSQL is the point lookup every traffic case runs as a tenant: row-level
// security (and, for schema and database tenants, the search path) supply
// the tenant.
const lookupSQL = `SELECT id, sku, secret FROM items WHERE id = $1`

// rawLookupSQL is the baseline's lookup: what an application writes by hand
// on shared tables.
const rawLookupSQL = `SELECT id, sku, secret FROM bench_raw.items WHERE tenant_id = $1 AND id = $2`

// env is one run of the suite: the server, the installations built on it
// and what is needed to put them away again.
type env struct {
	// sigs holds each tenant's signed context ("none" role), signed once
	// as the handle signs once per route: the hand-written baselines must
	// not pay an HMAC per call that Landlord does not.
	sigs  sync.Map // tenant.ID → string
	cfg   Config
	sz    sizes
	srv   Server
	tag   string // random, names everything this run creates
	base  *pgx.ConnConfig
	admin *pgxpool.Pool // the database of srv.URL, as the administrator
	super bool
	cpu   serverCPU
	setup map[string]any

	// w is the installation the traffic cases share; fleet is the one
	// fleet-migrate changes (see there).
	w, fleet *world

	pgss       bool   // replans can be counted with pg_stat_statements
	pgssReason string // why not, when not
	memory     *memProbe
	memReason  string // why catalog memory cannot be read, when not

	mu       sync.Mutex
	drops    []string // databases this run created by name
	installs []string // installation ids whose marked objects are this run's
	roles    []string // roles this run created by name, dropped last
	cleaned  bool
}

// world is one installation and the tenants built in it so far. It grows as
// cases need more.
type world struct {
	suffix     string // of the control database's and roles' names
	migrations fs.FS
	withRaw    bool // also the baseline's table and role

	built bool
	db    string // control database
	pool  *pgxpool.Pool
	prov  *provision.Provisioner
	owner string
	app   string

	row, schema, database []tenant.Tenant
	rowRows, schemaRows   int // tenants whose rows are written
	dbRows                int

	raw         string // the baseline's role
	rawPassword string
	rawOID      uint32 // to tell its statements apart

	times map[string]float64
}

func newEnv(ctx context.Context, srv Server, cfg Config) (*env, error) {
	base, err := pgx.ParseConfig(srv.URL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pc, err := pgxpool.ParseConfig(srv.URL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pc.MaxConns = 6
	admin, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to server: %w", err)
	}
	tag := make([]byte, 4)
	rand.Read(tag)
	e := &env{cfg: cfg, sz: sizesFor(cfg), srv: srv, tag: hex.EncodeToString(tag), base: base, admin: admin,
		w:     &world{migrations: appMigrations(), withRaw: true, times: map[string]float64{}},
		fleet: &world{suffix: "_fleet", migrations: appMigrations(), times: map[string]float64{}},
	}
	var createDB, createRole bool
	var backend int
	if err := admin.QueryRow(ctx, `SELECT rolsuper, rolcreatedb, rolcreaterole, pg_backend_pid() FROM pg_roles WHERE rolname = current_user`).
		Scan(&e.super, &createDB, &createRole, &backend); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to server: %w", err)
	}
	if !e.super && !(createDB && createRole) {
		admin.Close()
		return nil, ErrNotAdmin
	}
	if srv.Embedded != nil {
		e.cpu.postmaster = srv.Embedded.PID()
	} else if isUnixSocket(base.Host) || base.Host == "127.0.0.1" || base.Host == "localhost" || base.Host == "::1" {
		e.cpu.postmaster = localPostmaster(backend)
	}
	if err := e.describe(ctx); err != nil {
		admin.Close()
		return nil, err
	}
	return e, nil
}

// describe records the setup every result carries.
func (e *env) describe(ctx context.Context) error {
	names := []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers",
		"max_connections", "shared_preload_libraries", "pg_stat_statements.track_planning", "wal_level", "jit",
		"max_locks_per_transaction", "autovacuum"}
	rows, err := e.admin.Query(ctx, `SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY($1) ORDER BY name`, names)
	if err != nil {
		return err
	}
	settings := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		settings[k] = v
	}
	if err := rows.Err(); err != nil {
		return err
	}
	conn := "tcp " + e.base.Host
	if isUnixSocket(e.base.Host) {
		conn = "unix socket"
	}
	server := "given by URL"
	if e.srv.Embedded != nil {
		server = "private embedded server started for the run"
	}
	mode := "full"
	if e.sz.quick {
		mode = "quick"
	}
	e.setup = map[string]any{
		"postgres": map[string]any{
			"version":    settings["server_version"],
			"settings":   settings,
			"connection": conn,
			"server":     server,
			"superuser":  e.super,
			"server_cpu": e.cpu.postmaster != 0,
		},
		"machine": machine(),
		"mode":    mode,
		"rounds":  e.sz.rounds,
		"round_s": e.sz.roundTime.Seconds(),
	}
	return nil
}

// withSetup returns detail with the run's setup added.
func (e *env) withSetup(detail map[string]any) map[string]any {
	if detail == nil {
		detail = map[string]any{}
	}
	s := maps.Clone(e.setup)
	if la := loadAvg(); la != "" {
		s["loadavg_end"] = la
	}
	if e.w.built {
		s["data_setup_s"] = maps.Clone(e.w.times)
		s["database"] = e.w.db
	}
	detail["setup"] = s
	return detail
}

func (e *env) progressf(format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "bench: "+format+"\n", args...)
}

// url returns the connection string of database as the administrator, with
// params.
func (e *env) url(database string, params map[string]string) string {
	return rewriteURL(e.srv.URL, database, params)
}

func (e *env) name(suffix string) string { return "landlord_bench_" + e.tag + suffix }

// ensure grows installation w to what n asks for: it creates the
// installation on first use, then the tenants and rows still missing, and
// ends with a checkpoint, so that writing them out does not fall into the
// measurements that follow.
func (e *env) ensure(ctx context.Context, w *world, n needs) error {
	grew := false
	if !w.built {
		if err := e.install(ctx, w); err != nil {
			return err
		}
		grew = true
	}
	for _, m := range []struct {
		model tenant.Model
		n     int
		out   *[]tenant.Tenant
	}{
		{tenant.ModelRow, n.rowTenants, &w.row},
		{tenant.ModelSchema, max(n.schemaTenants, n.schemaRows), &w.schema},
		{tenant.ModelDatabase, max(n.dbTenants, n.dbRows), &w.database},
	} {
		have := len(*m.out)
		if m.n <= have {
			continue
		}
		grew = true
		start := time.Now()
		ts, err := e.createTenants(ctx, w.prov, m.model, have, m.n)
		if err != nil {
			return err
		}
		*m.out = append(*m.out, ts...)
		d := time.Since(start)
		key := string(m.model) + "_tenants"
		w.times[key+"_s"] += d.Seconds()
		w.times[string(m.model)+"_ms_per_tenant"] = round3(w.times[key+"_s"] * 1000 / float64(len(*m.out)))
		e.progressf("created %d %s tenants in %s (%.1f ms each, four at a time, from templates)",
			m.n-have, m.model, d.Round(time.Millisecond), ms(d)/float64(m.n-have))
	}
	start := time.Now()
	wrote, err := e.fillRows(ctx, w, n)
	if err != nil {
		return fmt.Errorf("write rows: %w", err)
	}
	if wrote {
		grew = true
		w.times["rows_s"] += time.Since(start).Seconds()
	}
	if grew && e.super {
		start := time.Now()
		if _, err := e.admin.Exec(ctx, "CHECKPOINT"); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		w.times["checkpoint_s"] += time.Since(start).Seconds()
	}
	return nil
}

// install creates installation w: its control database, roles and
// templates, and for the traffic cases the baseline's role and table.
func (e *env) install(ctx context.Context, w *world) error {
	start := time.Now()
	w.db = e.name(w.suffix)
	w.owner, w.app = "lb"+e.tag+w.suffix+"_owner", "lb"+e.tag+w.suffix+"_app"
	if err := e.createDatabase(ctx, w.db); err != nil {
		return err
	}
	pc, err := pgxpool.ParseConfig(e.url(w.db, nil))
	if err != nil {
		return err
	}
	pc.MaxConns = 8
	if w.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return err
	}
	set, err := migration.Load(w.migrations)
	if err != nil {
		return err
	}
	e.addRoles(w.app, w.owner)
	if w.prov, err = provision.New(ctx, w.pool, set, provision.Config{OwnerRole: w.owner, AppRole: w.app, Logger: e.cfg.Logger}); err != nil {
		return fmt.Errorf("bootstrap installation: %w", err)
	}
	e.addInstall(w.prov.Installation().ID.String(), w.prov.TemplateDatabase())
	if err := w.prov.PrepareTemplates(ctx); err != nil {
		return fmt.Errorf("prepare templates: %w", err)
	}
	if w.withRaw {
		if err := e.installRaw(ctx, w); err != nil {
			return fmt.Errorf("baseline table: %w", err)
		}
		e.checkCounters(ctx, w)
	}
	w.built = true
	w.times["installation_s"] = time.Since(start).Seconds()
	return nil
}

func (e *env) createDatabase(ctx context.Context, name string) error {
	e.mu.Lock()
	e.drops = append(e.drops, name)
	e.mu.Unlock()
	if _, err := e.admin.Exec(ctx, "CREATE DATABASE "+ident(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func (e *env) addRoles(roles ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.roles = append(e.roles, roles...)
}

func (e *env) addInstall(id, templateDB string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.installs = append(e.installs, id)
	e.drops = append(e.drops, templateDB)
}

// createTenants creates the tenants of model m numbered from to to - 1
// through Provisioner.Create, four at a time, and returns them in order.
func (e *env) createTenants(ctx context.Context, prov *provision.Provisioner, m tenant.Model, from, to int) ([]tenant.Tenant, error) {
	out := make([]tenant.Tenant, to-from)
	var done atomic.Int64
	stop := e.ticker(fmt.Sprintf("creating %d %s tenants", to-from, m), to-from, &done)
	defer stop()
	err := parallel(ctx, 4, to-from, func(ctx context.Context, i int) error {
		t, err := prov.Create(ctx, provision.Request{Slug: fmt.Sprintf("%s-%05d", m, from+i), Model: m})
		if err != nil {
			return fmt.Errorf("create %s tenant %d: %w", m, from+i, err)
		}
		out[i] = t
		done.Add(1)
		return nil
	})
	return out, err
}

// ticker writes a progress line every five seconds until stopped.
func (e *env) ticker(label string, total int, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				d := done.Load()
				e.progressf("%s: %d/%d (%.0f/s)", label, d, total, float64(d)/time.Since(start).Seconds())
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// fillItems writes rows items for each tenant into schema, as the owner
// role in each tenant's context (row-level security is forced on the
// owner too), and analyzes the table.
func fillItems(ctx context.Context, conn interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, owner, schema string, ids []tenant.ID, rows int, grantTo string) error {
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL ROLE " + ident(owner))
	table := ident(schema) + ".items"
	for _, id := range ids {
		b.Queue(`SELECT landlord_context.enter($1)`, id)
		b.Queue(`INSERT INTO `+table+` (tenant_id, id, sku, secret)
			SELECT $1, g, 'sku-' || g, md5($2::text || g::text) FROM generate_series(1, $3::int) g`, id, id.String(), rows)
	}
	b.Queue("ANALYZE " + table)
	if grantTo != "" {
		b.Queue("GRANT USAGE ON SCHEMA " + ident(schema) + " TO " + ident(grantTo))
		b.Queue("GRANT SELECT ON " + table + " TO " + ident(grantTo))
	}
	b.Queue("COMMIT")
	return conn.SendBatch(ctx, b).Close()
}

// fillRows writes the rows of the tenants n wants rows for and that have
// none yet: row tenants into shared.items, schema tenants into their
// schemas, database tenants into their databases, and all of them into the
// baseline's table. It reports whether it wrote anything.
func (e *env) fillRows(ctx context.Context, w *world, n needs) (bool, error) {
	var fresh []tenant.ID
	if n.rowTenants > w.rowRows {
		var ids []tenant.ID
		for _, t := range w.row[w.rowRows:n.rowTenants] {
			ids = append(ids, t.ID)
		}
		for i := 0; i < len(ids); i += 200 {
			if err := fillItems(ctx, w.pool, w.owner, provision.SharedSchema, ids[i:min(i+200, len(ids))], e.sz.rows, ""); err != nil {
				return false, err
			}
		}
		fresh = append(fresh, ids...)
		w.rowRows = n.rowTenants
	}
	if n.schemaRows > w.schemaRows {
		ts := w.schema[w.schemaRows:n.schemaRows]
		var done atomic.Int64
		stop := e.ticker(fmt.Sprintf("writing rows of %d schema tenants", len(ts)), len(ts), &done)
		err := parallel(ctx, 4, len(ts), func(ctx context.Context, i int) error {
			defer done.Add(1)
			return fillItems(ctx, w.pool, w.owner, ts[i].Schema, []tenant.ID{ts[i].ID}, e.sz.rows, w.raw)
		})
		stop()
		if err != nil {
			return false, err
		}
		for _, t := range ts {
			fresh = append(fresh, t.ID)
		}
		w.schemaRows = n.schemaRows
	}
	if n.dbRows > w.dbRows {
		ts := w.database[w.dbRows:n.dbRows]
		var done atomic.Int64
		stop := e.ticker(fmt.Sprintf("writing rows of %d database tenants", len(ts)), len(ts), &done)
		err := parallel(ctx, 4, len(ts), func(ctx context.Context, i int) error {
			defer done.Add(1)
			cc := e.base.Copy()
			cc.Database = ts[i].Database
			conn, err := pgx.ConnectConfig(ctx, cc)
			if err != nil {
				return fmt.Errorf("connect to %s: %w", ts[i].Database, err)
			}
			defer conn.Close(context.WithoutCancel(ctx))
			return fillItems(ctx, conn, w.owner, ts[i].Schema, []tenant.ID{ts[i].ID}, e.sz.rows, "")
		})
		stop()
		if err != nil {
			return false, err
		}
		for _, t := range ts {
			fresh = append(fresh, t.ID)
		}
		w.dbRows = n.dbRows
	}
	if len(fresh) == 0 || !w.withRaw {
		return len(fresh) > 0, nil
	}
	uuids := make([]string, len(fresh))
	for i, id := range fresh {
		uuids[i] = id.String()
	}
	_, err := w.pool.Exec(ctx, `INSERT INTO bench_raw.items (tenant_id, id, sku, secret)
		SELECT t::uuid, g, 'sku-' || g, md5(t || g::text) FROM unnest($1::text[]) t, generate_series(1, $2::int) g`,
		uuids, e.sz.rows)
	if err == nil {
		_, err = w.pool.Exec(ctx, `ANALYZE bench_raw.items`)
	}
	return true, err
}

// installRaw makes the baseline's table, which gets the same rows as every
// tenant with rows, in one table without row-level security, and the
// ordinary role that reads it, with the privileges of Landlord's app role.
func (e *env) installRaw(ctx context.Context, w *world) error {
	w.raw, w.rawPassword = "lb"+e.tag+"_raw", hex.EncodeToString(randomBytes(16))
	e.addRoles(w.raw)
	// The password is random hex: safe as a literal. Roles take no bind
	// parameters.
	if _, err := e.admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'", ident(w.raw), w.rawPassword)); err != nil {
		return err
	}
	_, err := w.pool.Exec(ctx, fmt.Sprintf(`
		CREATE SCHEMA bench_raw;
		CREATE TABLE bench_raw.items (tenant_id uuid NOT NULL, id bigint NOT NULL, parent_id bigint,
			sku text NOT NULL, secret text NOT NULL, PRIMARY KEY (tenant_id, id), UNIQUE (tenant_id, sku));
		GRANT CONNECT ON DATABASE %[2]s TO %[1]s;
		GRANT USAGE ON SCHEMA bench_raw TO %[1]s; GRANT SELECT ON bench_raw.items TO %[1]s`, ident(w.raw), ident(w.db)))
	if err != nil {
		return err
	}
	return w.pool.QueryRow(ctx, `SELECT oid FROM pg_roles WHERE rolname = $1`, w.raw).Scan(&w.rawOID)
}

// checkCounters finds out which counters this server offers: replans
// through pg_stat_statements (in w's control database), catalog memory
// through the server's log.
func (e *env) checkCounters(ctx context.Context, w *world) {
	switch {
	case !e.super:
		e.pgssReason = "needs a superuser to read other roles' statements"
	default:
		var on bool
		if _, err := w.pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
			e.pgssReason = "pg_stat_statements unavailable: " + err.Error()
		} else if err := w.pool.QueryRow(ctx, `SELECT coalesce(current_setting('pg_stat_statements.track_planning', true), '') = 'on'`).Scan(&on); err != nil || !on {
			e.pgssReason = "pg_stat_statements.track_planning is off"
		} else {
			e.pgss = true
		}
	}
	switch {
	case !e.super:
		e.memReason = "pg_log_backend_memory_contexts needs a superuser"
	case e.srv.Embedded == nil:
		e.memReason = "the server's log is readable only for a server the run started itself"
	default:
		e.memory = &memProbe{admin: w.pool, logPath: filepath.Join(e.srv.Embedded.DataDir(), "server.log")}
	}
}

// openLandlord opens the installation for a case, with application_name
// app on every connection so that pg_stat_activity tells its connections
// apart, and params added to the URL.
func (e *env) openLandlord(ctx context.Context, cfg landlord.Config, app string, params map[string]string) (*landlord.Landlord, error) {
	cfg.OwnerRole, cfg.AppRole = e.w.owner, e.w.app
	// The audit reads every tenant's catalog; it is not what is measured.
	cfg.StartupAudit = landlord.AuditOff
	cfg.Logger = e.cfg.Logger
	p := map[string]string{"application_name": app}
	maps.Copy(p, params)
	l, err := landlord.Open(ctx, e.url(e.w.db, p), appMigrations(), cfg)
	if err != nil {
		return nil, fmt.Errorf("open installation: %w", err)
	}
	return l, nil
}

// setContextCheck sets the installation's context check to check, and
// returns what sets it back to signed.
func (e *env) setContextCheck(ctx context.Context, l *landlord.Landlord, check landlord.ContextCheck) (restore func(), err error) {
	admin, err := l.Admin(ctx, "benchmark of the "+string(check)+" context check")
	if err != nil {
		return nil, err
	}
	if _, err := admin.SetContextCheck(ctx, check, nil); err != nil {
		return nil, err
	}
	return func() {
		if _, err := admin.SetContextCheck(context.WithoutCancel(ctx), landlord.ContextSigned, nil); err != nil {
			e.progressf("set the context check back to signed: %v", err)
		}
	}, nil
}

// rawPool opens a pool of conns connections as the baseline's role.
// searchPath, when set, is the session's search path.
func (e *env) rawPool(ctx context.Context, conns int32, app string, params map[string]string, searchPath string) (*pgxpool.Pool, error) {
	p := map[string]string{"application_name": app}
	maps.Copy(p, params)
	pc, err := pgxpool.ParseConfig(e.url(e.w.db, p))
	if err != nil {
		return nil, err
	}
	pc.ConnConfig.User, pc.ConnConfig.Password = e.w.raw, e.w.rawPassword
	pc.MaxConns = conns
	if searchPath != "" {
		pc.ConnConfig.RuntimeParams["search_path"] = searchPath
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

// parallel calls fn for 0..n-1, workers at a time, and stops at the first
// error.
func parallel(ctx context.Context, workers, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// close closes the pools; cleanup removes what the run built.
func (e *env) close() {
	for _, w := range []*world{e.w, e.fleet} {
		if w.pool != nil {
			w.pool.Close()
		}
	}
	e.admin.Close()
}

// cleanup drops every database and role this run created: by name, and by
// the installation markers Landlord puts on tenant databases and roles. A
// disposable server is left as it is.
func (e *env) cleanup() error {
	e.mu.Lock()
	if e.cleaned {
		e.mu.Unlock()
		return nil
	}
	e.cleaned = true
	drops, installs, roles := e.drops, e.installs, e.roles
	e.mu.Unlock()
	if e.srv.Disposable {
		return nil
	}
	for _, w := range []*world{e.w, e.fleet} {
		if w.pool != nil {
			w.pool.Close()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var marks []string
	for _, id := range installs {
		marks = append(marks, "% installation "+id+"%")
	}
	dbs, err := collect(ctx, e.admin, `SELECT datname FROM pg_database
		WHERE datname = ANY($1) OR shobj_description(oid, 'pg_database') LIKE ANY($2) ORDER BY datname`, drops, marks)
	if err != nil {
		return fmt.Errorf("clean up: %w", err)
	}
	var n atomic.Int64
	if len(dbs) > 20 {
		stop := e.ticker(fmt.Sprintf("dropping %d databases", len(dbs)), len(dbs), &n)
		defer stop()
	}
	var mu sync.Mutex
	var errs []error
	_ = parallel(ctx, 4, len(dbs), func(ctx context.Context, i int) error {
		defer n.Add(1)
		if _, err := e.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(dbs[i])+" WITH (FORCE)"); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("drop database %s: %w", dbs[i], err))
			mu.Unlock()
		}
		return nil
	})
	// Tenant roles first: the owner and app roles they were granted to
	// go last.
	tenantRoles, err := collect(ctx, e.admin, `SELECT rolname FROM pg_roles
		WHERE shobj_description(oid, 'pg_authid') LIKE ANY($1) AND NOT rolname = ANY($2)`, marks, roles)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("clean up: %w", err))...)
	}
	for _, r := range append(tenantRoles, roles...) {
		if _, err := e.admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident(r)); err != nil {
			errs = append(errs, fmt.Errorf("drop role %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

func collect(ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) ([]string, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func ident(s string) string { return identpkg.Quote(s) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
