package landlord

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/embedded"
	"github.com/landlordhq/landlord/tenant"
)

// serverState is what a server connection behind the pooler carries at
// session level, as one client sees it outside any transaction: connState,
// every setting whose value comes from the session (SET, set_config with
// is_local false), and the backend that answered.
type serverState struct {
	connState
	sessionSettings string
	pid             uint32
}

const serverStateSQL = `SELECT coalesce(current_setting('landlord.tenant_id', true), ''),
	coalesce(current_setting('landlord.tenant_sig', true), ''), current_setting('role'),
	current_setting('search_path'), current_setting('application_name'), current_setting('transaction_read_only'),
	(SELECT coalesce(string_agg(name || '=' || setting, ', ' ORDER BY name), '') FROM pg_settings WHERE source = 'session'),
	pg_backend_pid()`

func readServerState(ctx context.Context, c *pgx.Conn) (serverState, error) {
	var s serverState
	err := c.QueryRow(ctx, serverStateSQL).Scan(&s.tenantID, &s.signature, &s.role, &s.searchPath, &s.appName, &s.readOnly,
		&s.sessionSettings, &s.pid)
	return s, err
}

// TestNothingOutlivesTheTransactionBehindPgBouncer is
// TestNothingOutlivesTheTransaction with tenant traffic through PgBouncer in
// transaction pooling (Config.Pooler). There the connection Landlord holds
// is a client of the pooler, not a server connection: state a call left at
// session level would sit on the pooler's server connection and reach
// whichever client gets it next. So PgBouncer runs with one server
// connection per database and role, and every transaction of a target,
// Landlord's or anyone else's, runs on that one backend. After each kind of
// call, in each model (database tenants reach their own databases through
// the pooler too), with and without session tags, that backend is read
// outside any transaction twice: through Landlord's own client, and through
// a separate plain client of the pooler, which is what another application
// would get (PgBouncer also carries application_name and a few other
// parameters with each client and sets them on the server connection it
// gets). Neither may see a tenant, signature, role, search path,
// application name, read-only mode or any other setting whose source is the
// session, and both must be answered by the backend that answered before
// the call: the pooler did not swap in a fresh server connection that would
// hide a leak. Each model ends by leaving a tenant at session level on
// purpose, through a raw client of the pooler, which the check must then
// see: it can fail (SECURITY.md, I06).
func TestNothingOutlivesTheTransactionBehindPgBouncer(t *testing.T) {
	t.Parallel()
	emb := server.Embedded()
	if emb == nil {
		t.Skip("tests through the pooler need the embedded server")
	}
	for _, tagged := range []bool{false, true} {
		t.Run(fmt.Sprintf("tagged=%t", tagged), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b, err := embedded.StartPgBouncer(ctx, embedded.PoolerConfig{Server: emb, PoolSize: 1})
			if err != nil {
				t.Fatalf("start pgbouncer: %v", err)
			}
			t.Cleanup(b.Stop)
			pooler := &Pooler{Host: b.Host(), Port: uint16(b.Port())}
			l, _ := setup(t, Config{MaxConns: 1, TagSessions: tagged, Pooler: pooler})
			admin, err := l.Admin(ctx, "read-only tenants for the session check")
			must(t, err)
			for _, m := range tenant.Models {
				tn := createTenant(t, l, "after-pooled-"+string(m), m)
				// A plain client of the pooler as the tenant's
				// target (database and role): it gets the same
				// server connection as Landlord's.
				database, role := l.controlDB, l.cfg.AppRole
				if m == tenant.ModelDatabase {
					database, role = tn.Database, tn.ID.RoleName()
				}
				plain := func() *pgx.Conn {
					t.Helper()
					cc, err := l.prov.ConnConfig(ctx, tn.Server, database, role)
					must(t, err)
					cc.Host, cc.Port, cc.Fallbacks = pooler.Host, pooler.Port, nil
					cc.DefaultQueryExecMode = pgx.QueryExecModeExec
					c, err := pgx.ConnectConfig(ctx, cc)
					must(t, err)
					t.Cleanup(func() { c.Close(context.Background()) })
					return c
				}
				other := plain()
				look := func() serverState {
					t.Helper()
					var own serverState
					must(t, l.traffic.Inspect(ctx, tn.ID, func(c *pgx.Conn) error {
						var err error
						own, err = readServerState(ctx, c)
						return err
					}))
					seen, err := readServerState(ctx, other)
					must(t, err)
					if own != seen {
						t.Fatalf("%s: Landlord's client sees %+v, a plain client of the pooler %+v", m, own, seen)
					}
					return own
				}
				clean := look()
				if clean.tenantID != "" || clean.signature != "" || clean.role != "none" || clean.readOnly != "off" {
					t.Fatalf("%s: a fresh server connection carries %+v", m, clean)
				}
				for _, c := range afterCalls(ctx, l, admin, tn) {
					must(t, c.call())
					got := look()
					if got.pid != clean.pid {
						t.Fatalf("%s, after %s: backend %d answered, not %d: the pooler replaced its server connection", m, c.name, got.pid, clean.pid)
					}
					if got != clean {
						t.Errorf("%s, after %s: the server connection carries %+v, want %+v", m, c.name, got, clean)
					}
				}

				// The check can fail: a raw client of the pooler leaves a
				// tenant at session level on the server connection.
				raw := plain()
				_, err := raw.Exec(ctx, `SELECT set_config('landlord.tenant_id', $1, false)`, tn.ID.String())
				must(t, err)
				if got := look(); got.tenantID != tn.ID.String() || got.pid != clean.pid {
					t.Fatalf("%s: after a raw client left the tenant at session level the check sees %+v", m, got)
				}
				_, err = raw.Exec(ctx, `DISCARD ALL`)
				must(t, err)
				if got := look(); got != clean {
					t.Fatalf("%s: after DISCARD ALL the server connection carries %+v, want %+v", m, got, clean)
				}
			}
		})
	}
}
