package landlord

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/tenant"
)

// The enter statements set the tenant context of one transaction. Each is
// prepared on every tenant connection and sent in the same round trip as the
// statement it guards (DESIGN.md §3). All three settings are
// transaction-local, so they end with the transaction and a pooled
// connection carries nothing to its next user (THREATS I06). All three are
// set in every model, so no session-level leftover (a SET ROLE or a
// set_config(..., false) sent through the handle) can change what a later
// transaction sees; and the first column reports such a leftover, read before
// anything is set, so that the connection is destroyed after the call
// (see dirty). pg_temp goes last on the path so a temporary table can never
// shadow a tenant table (THREATS I18).
const (
	enterName = "landlord_enter"
	enterSQL  = `SELECT coalesce(current_setting('landlord.tenant_id', true), '') <> '' OR current_setting('role') <> 'none',
	set_config('landlord.tenant_id', $1, true), set_config('role', $2, true), set_config('search_path', $3, true)`
	enterROName = "landlord_enter_ro"
	// A read-only tenant's transactions are read-only in the database
	// itself, not by convention.
	enterROSQL = `SELECT coalesce(current_setting('landlord.tenant_id', true), '') <> '' OR current_setting('role') <> 'none',
	set_config('landlord.tenant_id', $1, true), set_config('role', $2, true), set_config('search_path', $3, true),
	set_config('transaction_read_only', 'on', true)`
)

// route is the cached routing entry of one tenant at one routing epoch.
type route struct {
	t         tenant.Tenant
	enterName string
	enterSQL  string
	enterArgs [][]byte // the enter statement's parameters, encoded once
	pool      func(context.Context) (*pgxpool.Pool, error)
	err       error // set for tenants that must not get traffic
	adminOK   bool  // an admin scope may still reach the tenant
}

// buildRoute turns a directory row into a route.
func (l *Landlord) buildRoute(t tenant.Tenant) (*route, error) {
	r := &route{t: t, enterName: enterName, enterSQL: enterSQL}
	switch t.State {
	case tenant.StateActive:
	case tenant.StateReadOnly:
		r.enterName, r.enterSQL = enterROName, enterROSQL
	case tenant.StateSuspended:
		// Refused to tenant traffic, open to an admin scope.
		r.err = &tenant.StateError{ID: t.ID, State: t.State}
		r.adminOK = true
	default:
		r.err = &tenant.StateError{ID: t.ID, State: t.State}
	}
	role := l.cfg.AppRole
	if t.Model != tenant.ModelRow {
		role = t.ID.RoleName()
	}
	for _, name := range []string{role, t.Schema} {
		if err := tenant.CheckIdent(name); err != nil {
			return nil, fmt.Errorf("route tenant %s: %w", t.ID, err)
		}
	}
	path := pgx.Identifier{t.Schema}.Sanitize() + ", pg_temp"
	r.enterArgs = [][]byte{[]byte(t.ID.String()), []byte(role), []byte(path)}
	switch t.Model {
	case tenant.ModelDatabase:
		// Keyed by id and epoch: a moved tenant never reaches its old
		// pool (THREATS I22).
		key := poolKey{id: t.ID, epoch: t.Epoch}
		r.pool = func(ctx context.Context) (*pgxpool.Pool, error) {
			return l.dbs.get(ctx, key, func(ctx context.Context) (*pgxpool.Pool, error) {
				cfg, err := l.prov.ConnConfig(ctx, t.Server, t.Database, role)
				if err != nil {
					return nil, err
				}
				return l.newPool(ctx, cfg, t.Schema, l.cfg.TenantPoolConns)
			})
		}
	default:
		app := l.app
		r.pool = func(context.Context) (*pgxpool.Pool, error) { return app, nil }
	}
	return r, nil
}

// route returns the route of the tenant in ctx, or the typed error that
// forbids its traffic. It sends no SQL when ctx carries no tenant.
func (l *Landlord) route(ctx context.Context, fixed tenant.ID, admin bool) (*route, error) {
	id := fixed
	if id.IsZero() {
		var ok bool
		if id, ok = TenantFrom(ctx); !ok {
			return nil, ErrNoTenant
		}
	}
	r, err := l.routes.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.err != nil && !(admin && r.adminOK) {
		return nil, r.err
	}
	return r, nil
}
