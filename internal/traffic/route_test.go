package traffic

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/landlordhq/landlord/migration"
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
		}
	}
}

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
