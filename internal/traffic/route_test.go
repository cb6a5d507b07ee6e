package traffic

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/tenant"
)

// TestEnterNames: every enter statement prepared on a connection has a name
// of its own, while behind a pooler, where nothing is prepared, the name is
// the SQL itself.
func TestEnterNames(t *testing.T) {
	t.Parallel()
	for _, tagged := range []bool{false, true} {
		seen := map[string]bool{}
		for _, e := range preparedEnters(tagged) {
			if !strings.HasPrefix(e.name, "landlord_enter") || e.name == e.sql || seen[e.name] {
				t.Errorf("prepared enter named %q (sql %q)", e.name, e.sql)
			}
			seen[e.name] = true
		}
		for _, ro := range []bool{false, true} {
			if e := enterFor(kindPooled, ro, tagged); e.name != e.sql || !strings.HasPrefix(e.sql, "SELECT ") {
				t.Errorf("pooled enter named %q, sql %q", e.name, e.sql)
			}
			// Only the schema model and pooled connections switch role in
			// each transaction; the shared models keep the login role.
			for kind, setsRole := range map[enterKind]bool{kindShared: false, kindSchema: true, kindPooled: true} {
				if e := enterFor(kind, ro, tagged); strings.Contains(e.sql, "set_config('role'") != setsRole {
					t.Errorf("enter of kind %d: %s", kind, e.sql)
				}
			}
		}
	}
}

// TestEnterNamesFitTheServer: every enter statement a tenant's settings
// can call for has a name of its own within the 63 bytes the server keeps
// of a prepared statement's name, and sets each setting once, with the
// parameters numbered in order.
func TestEnterNamesFitTheServer(t *testing.T) {
	names := []string{tenant.SettingStatementTimeout, tenant.SettingLockTimeout, tenant.SettingIdleInTransactionTimeout, tenant.SettingWorkMem}
	seen := map[string]string{}
	for mask := range 1 << len(names) {
		var settings []string
		for i, n := range names {
			if mask&(1<<i) != 0 {
				settings = append(settings, n)
			}
		}
		for _, kind := range []enterKind{kindShared, kindSchema} {
			for _, ro := range []bool{false, true} {
				for _, tagged := range []bool{false, true} {
					e := enterFor(kind, ro, tagged, settings...)
					if len(e.name) > 63 {
						t.Errorf("enter %q is %d bytes long", e.name, len(e.name))
					}
					if other, ok := seen[e.name]; ok && other != e.sql {
						t.Errorf("two enter statements named %q:\n%s\n%s", e.name, other, e.sql)
					}
					seen[e.name] = e.sql
					for _, n := range settings {
						if strings.Count(e.sql, "set_config('"+n+"'") != 1 {
							t.Errorf("%s sets %s other than once: %s", e.name, n, e.sql)
						}
					}
					params := map[string]bool{}
					for _, m := range paramRE.FindAllString(e.sql, -1) {
						params[m] = true
					}
					for i := 1; i <= len(params); i++ {
						if !params[fmt.Sprintf("$%d", i)] {
							t.Errorf("%s: parameters not numbered 1 to %d: %s", e.name, len(params), e.sql)
						}
					}
				}
			}
		}
	}
}

var paramRE = regexp.MustCompile(`\$[0-9]+`)

// TestRouteRenewsBeforeExpiry: a route's signed context is renewed while
// the signature it holds is still valid, so that no call sends an expired
// one.
func TestRouteRenewsBeforeExpiry(t *testing.T) {
	t.Parallel()
	tr := &Traffic{cfg: Config{ContextKey: make([]byte, migration.ContextKeySize)}}
	id := tenant.NewID()
	before := time.Now()
	r, err := tr.buildRoute(tenant.Tenant{ID: id, Model: tenant.ModelSchema, Schema: "t_" + id.Hex(), State: tenant.StateActive})
	if err != nil {
		t.Fatal(err)
	}
	p := r.params.Load()
	exp, _, ok := strings.Cut(p.any[1].(string), ".")
	sec, err := strconv.ParseInt(exp, 10, 64)
	if !ok || err != nil {
		t.Fatalf("signature %q", p.any[1])
	}
	if expires := time.Unix(sec, 0); !p.renewAt.After(before) || !p.renewAt.Before(expires) {
		t.Errorf("renewed at %v, signature expires at %v", p.renewAt, expires)
	}
	if r.enterParams() != p {
		t.Error("params renewed before their time")
	}
}

// TestRouteTarget: a database tenant's traffic goes to its own database as
// its own role; row and schema tenants' to the control database as the app
// role (SECURITY.md, I22).
func TestRouteTarget(t *testing.T) {
	t.Parallel()
	tr := &Traffic{cfg: Config{ContextKey: make([]byte, migration.ContextKeySize), AppRole: "app", ControlDB: "control"}}
	id := tenant.NewID()
	for _, c := range []struct {
		t    tenant.Tenant
		want pool.Target
	}{
		{tenant.Tenant{ID: id, Model: tenant.ModelDatabase, Server: "s2", Schema: "d_" + id.Hex(), Database: "d_" + id.Hex()},
			pool.Target{Server: "s2", Database: "d_" + id.Hex(), Role: id.RoleName()}},
		{tenant.Tenant{ID: id, Model: tenant.ModelSchema, Server: "s2", Schema: "t_" + id.Hex(), Database: "control"},
			pool.Target{Server: "s2", Database: "control", Role: "app"}},
		{tenant.Tenant{ID: id, Model: tenant.ModelRow, Server: "s2", Schema: "shared", Database: "control"},
			pool.Target{Server: "s2", Database: "control", Role: "app"}},
	} {
		r, err := tr.buildRoute(c.t)
		if err != nil {
			t.Fatal(err)
		}
		if r.target != c.want {
			t.Errorf("%s tenant: target %+v, want %+v", c.t.Model, r.target, c.want)
		}
	}
}

// TestRouteRefusals: a tenant outside the schema versions this traffic
// serves gets no route to its tables, and behind a pooler every route is
// pooled, with an enter statement that is not prepared.
func TestRouteRefusals(t *testing.T) {
	t.Parallel()
	id := tenant.NewID()
	tn := tenant.Tenant{ID: id, Model: tenant.ModelSchema, Schema: "t_" + id.Hex(), State: tenant.StateActive, SchemaVersion: 1}
	cfg := Config{ContextKey: make([]byte, migration.ContextKeySize), MinSchemaVersion: 2, MaxSchemaVersion: 3}
	for v, ok := range map[int]bool{1: false, 2: true, 3: true, 4: false} {
		tn.SchemaVersion = v
		r, err := (&Traffic{cfg: cfg}).buildRoute(tn)
		if err != nil {
			t.Fatal(err)
		}
		var verr *tenant.VersionError
		if ok && r.err != nil || !ok && !errors.As(r.err, &verr) {
			t.Errorf("schema version %d: route error %v", v, r.err)
		}
	}
	tn.SchemaVersion = 2
	for _, pooler := range []*Pooler{nil, {Host: "pgbouncer", Port: 6432}} {
		cfg.Pooler = pooler
		r, err := (&Traffic{cfg: cfg}).buildRoute(tn)
		if err != nil {
			t.Fatal(err)
		}
		if r.pooled != (pooler != nil) || (r.enter.name == r.enter.sql) != (pooler != nil) {
			t.Errorf("pooler %v: pooled %v, enter %q", pooler, r.pooled, r.enter.name)
		}
	}
}
