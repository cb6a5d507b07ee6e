package provision

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// The reserve holds pre-provisioned schema and database tenants that nobody
// has claimed, so that a sign-up only renames one (a directory row and the
// objects' markers, in one transaction) instead of creating one. Reserved
// tenants are not in the directory's tenants, so nothing routes to them, and
// hold no data. Their objects carry a reserve marker, not a tenant marker:
// Reconcile leaves them alone, and FillReserve finishes or removes what an
// interrupted fill left behind.
//
// Row tenants are never reserved: one is only a directory row, and creating
// it costs no more than claiming one would.

// reserveLockNamespace is the first key of the lock that serializes
// FillReserve per model (SECURITY.md, I26: namespaced keys).
const reserveLockNamespace = 0x4c4c504c // "LLPL"

// reserveMarker is the comment on a reserved tenant's objects. It does not
// end in the installation id, so Reconcile never takes the objects for
// orphans of a tenant. The text keeps the reserve's earlier name: the
// objects of tenants reserved by earlier versions carry it, and FillReserve
// must still recognize them.
func (p *Provisioner) reserveMarker(id tenant.ID) string {
	return "landlord pooled tenant " + id.String() + " installation " + p.inst.ID.String() + " unclaimed"
}

// FillReserve keeps n pre-provisioned tenants of model m ready in the
// reserve on the directory's own server: it creates what is missing,
// removes what is too many, and removes entries an interrupted fill left
// half made or that an older migration set made. It returns how many are
// ready. Create claims from them. Fills of one model run one at a time.
func (p *Provisioner) FillReserve(ctx context.Context, m tenant.Model, n int) (ready int, err error) {
	if _, err := tenant.ParseModel(string(m)); err != nil {
		return 0, err
	}
	if m == tenant.ModelRow {
		return 0, fmt.Errorf("fill the reserve: %w: row tenants are never reserved; creating one costs no more than claiming one", tenant.ErrBadModel)
	}
	if p.newer != nil {
		return 0, fmt.Errorf("fill the reserve: %w", p.newer)
	}
	if n < 0 || n > 1000 {
		return 0, fmt.Errorf("fill the reserve: n = %d: want 0 to 1000 tenants", n)
	}
	key := int32(slices.Index(tenant.Models, m))
	err = p.withLock(ctx, reserveLockNamespace, key, func(*pgx.Conn) error {
		ready, err = p.fillReserve(ctx, m, n)
		return err
	})
	if err != nil {
		return ready, fmt.Errorf("fill the reserve of %s tenants: %w", m, err)
	}
	return ready, nil
}

func (p *Provisioner) fillReserve(ctx context.Context, m tenant.Model, n int) (int, error) {
	if err := p.sweepReserve(ctx); err != nil {
		return 0, err
	}
	entries, err := p.dir.ListReserved(ctx, m, directory.DefaultServer)
	if err != nil {
		return 0, err
	}
	head := p.mig.Set().Head()
	var ready []directory.Reserved
	for _, e := range entries {
		if e.Ready && e.SchemaVersion == head {
			ready = append(ready, e)
			continue
		}
		if err := p.removeReserved(ctx, e); err != nil {
			return len(ready), err
		}
	}
	// Too many: the newest go first.
	for len(ready) > n {
		if err := p.removeReserved(ctx, ready[len(ready)-1]); err != nil {
			return len(ready), err
		}
		ready = ready[:len(ready)-1]
	}
	count := len(ready)
	for count < n {
		if err := p.addReserved(ctx, m); err != nil {
			return count, err
		}
		count++
	}
	return count, nil
}

// addReserved makes one reserved tenant: intent first, then its objects,
// then the entry is marked ready.
func (p *Provisioner) addReserved(ctx context.Context, m tenant.Model) error {
	id := tenant.NewID()
	schema, database, err := p.placement(ctx, id, m, directory.DefaultServer)
	if err != nil {
		return err
	}
	e := directory.Reserved{ID: id, Model: m, Server: directory.DefaultServer, Schema: schema, Database: database}
	if err := p.dir.AddReserved(ctx, e); err != nil {
		return err
	}
	t := tenant.Tenant{ID: id, Model: m, Server: e.Server, Schema: schema, Database: database, State: tenant.StateProvisioning}
	pu := purpose{mark: p.reserveMarker(id), op: directory.ReserveOperation}
	var version int
	err = p.withTenantLock(ctx, id, func(conn *pgx.Conn) (err error) {
		switch m {
		case tenant.ModelSchema:
			version, err = p.createSchemaTenant(ctx, conn, t, pu)
		case tenant.ModelDatabase:
			version, err = p.createDatabaseTenant(ctx, t, pu)
		}
		return err
	})
	if err != nil {
		_ = p.dir.Log(ctx, id, directory.ReserveOperation, "failed", err.Error())
		return fmt.Errorf("pre-provision tenant %s: %w", id, err)
	}
	return p.dir.SetReservedReady(ctx, id, version)
}

// removeReserved removes a reserve entry and its objects, unless a claim
// took it or another session holds its lock. The entry goes first, so no
// claim can hand out a tenant whose objects are being dropped; objects a
// crash leaves behind after that carry the reserve marker and no entry, and
// sweepReserve removes them.
func (p *Provisioner) removeReserved(ctx context.Context, e directory.Reserved) error {
	_, err := p.tryTenantLock(ctx, e.ID, func(*pgx.Conn) error {
		removed, err := p.dir.RemoveReserved(ctx, e.ID)
		if err != nil || !removed {
			return err
		}
		return p.dropReservedObjects(ctx, e.ID)
	})
	if err != nil {
		return fmt.Errorf("remove reserved tenant %s: %w", e.ID, err)
	}
	return nil
}

// dropReservedObjects drops the objects of reserved tenant id, but only
// those that still carry its reserve marker: a claimed tenant's objects
// carry the tenant marker.
func (p *Provisioner) dropReservedObjects(ctx context.Context, id tenant.ID) error {
	mark := p.reserveMarker(id)
	var schemaMarked, databaseMarked, roleMarked bool
	if err := p.admin.QueryRow(ctx, `SELECT
		EXISTS (SELECT FROM pg_namespace WHERE nspname = $1 AND obj_description(oid, 'pg_namespace') = $4),
		EXISTS (SELECT FROM pg_database WHERE datname = $2 AND shobj_description(oid, 'pg_database') = $4),
		EXISTS (SELECT FROM pg_roles WHERE rolname = $3 AND shobj_description(oid, 'pg_authid') = $4)`,
		id.SchemaName(), id.DatabaseName(), id.RoleName(), mark).Scan(&schemaMarked, &databaseMarked, &roleMarked); err != nil {
		return err
	}
	if schemaMarked {
		if err := pgx.BeginFunc(ctx, p.admin, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, fmt.Sprintf(`DROP SCHEMA IF EXISTS %s CASCADE; DELETE FROM landlord.target_migrations WHERE target = %s`,
				ident.Quote(id.SchemaName()), ident.Literal(id.SchemaName())))
			return err
		}); err != nil {
			return fmt.Errorf("drop reserved schema: %w", err)
		}
	}
	if databaseMarked {
		if err := p.dropDatabase(ctx, id); err != nil {
			return fmt.Errorf("drop reserved database: %w", err)
		}
	}
	if roleMarked {
		if err := p.exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %s", ident.Quote(id.RoleName()))); err != nil {
			return fmt.Errorf("drop reserved role: %w", err)
		}
	}
	return nil
}

// sweepReserve drops objects that carry this installation's reserve marker
// but whose entry is gone: what a crash left between removing an entry and
// dropping its objects.
func (p *Provisioner) sweepReserve(ctx context.Context) error {
	rows, err := p.admin.Query(ctx, `
		SELECT DISTINCT substr(name, 3) FROM (
			SELECT nspname::text AS name, obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'
			UNION ALL
			SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database WHERE datname ~ '^t_[0-9a-f]{32}$'
			UNION ALL
			SELECT rolname::text, shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname ~ '^r_[0-9a-f]{32}$'
		) o
		WHERE comment LIKE 'landlord pooled tenant % installation ' || $1 || ' unclaimed'
		  AND NOT EXISTS (SELECT FROM landlord.tenant_reserve e WHERE replace(e.id::text, '-', '') = substr(o.name, 3))`,
		p.inst.ID.String())
	if err != nil {
		return fmt.Errorf("list reserved objects: %w", err)
	}
	hexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list reserved objects: %w", err)
	}
	for _, h := range hexes {
		id, err := tenant.ParseID(h)
		if err != nil {
			continue
		}
		if _, err := p.tryTenantLock(ctx, id, func(*pgx.Conn) error { return p.dropReservedObjects(ctx, id) }); err != nil {
			return fmt.Errorf("sweep reserved objects of %s: %w", id, err)
		}
	}
	return nil
}

// claim hands req a reserved tenant when one of its model is ready on its
// server at the current migration version. ok is false when none is.
func (p *Provisioner) claim(ctx context.Context, req Request) (tenant.Tenant, bool, error) {
	if req.Model == tenant.ModelRow {
		return tenant.Tenant{}, false, nil
	}
	head := p.mig.Set().Head()
	// An empty reserve costs one indexed read, not a transaction.
	var any bool
	if err := p.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM landlord.tenant_reserve
		WHERE state = 'ready' AND model = $1 AND server_id = $2 AND schema_version = $3)`,
		string(req.Model), req.Server, head).Scan(&any); err != nil || !any {
		return tenant.Tenant{}, false, err
	}
	start := time.Now()
	t, ok, err := p.dir.Claim(ctx, directory.ClaimRequest{Model: req.Model, Server: req.Server, SchemaVersion: head, Slug: req.Slug, DisplayName: req.DisplayName},
		func(ctx context.Context, tx pgx.Tx, e directory.Reserved) error {
			// The objects become the tenant's: Reconcile and Delete know
			// them by this marker from now on.
			mark := ident.Literal(p.marker(e.ID))
			var b strings.Builder
			fmt.Fprintf(&b, "COMMENT ON ROLE %s IS %s;", ident.Quote(e.ID.RoleName()), mark)
			switch e.Model {
			case tenant.ModelSchema:
				fmt.Fprintf(&b, "COMMENT ON SCHEMA %s IS %s;", ident.Quote(e.Schema), mark)
			case tenant.ModelDatabase:
				fmt.Fprintf(&b, "COMMENT ON DATABASE %s IS %s;", ident.Quote(e.Database), mark)
			}
			_, err := tx.Exec(ctx, b.String())
			return err
		})
	if err != nil || !ok {
		return t, ok, err
	}
	// The attribute keeps the reserve's earlier name, which log queries
	// may match.
	p.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "tenant created", slog.String("tenant", t.ID.String()),
		slog.String("slug", t.Slug), slog.String("model", string(t.Model)), slog.Bool("pooled", true), slog.Duration("took", time.Since(start)))
	return t, true, nil
}

// withLock runs fn holding the session advisory lock (ns, key) on a
// connection of its own, for the reason withTenantLock gives.
func (p *Provisioner) withLock(ctx context.Context, ns, key int32, fn func(conn *pgx.Conn) error) error {
	conn, err := p.lockConn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, $2)`, ns, key); err != nil {
		return err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock($1, $2)`, ns, key)
	}()
	return fn(conn)
}
