package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/fleet"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Fleet sizes of the benchmarks; FLEET_BENCH_SCHEMAS and
// FLEET_BENCH_DATABASES override them for a quick look.
func benchSize(env string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
		return n
	}
	return def
}

// populate creates schemas schema tenants and databases database tenants,
// four at a time, with ten items each.
func populate(b *testing.B, e *env, schemas, databases int) []tenant.Tenant {
	b.Helper()
	start := time.Now()
	type job struct {
		slug  string
		model tenant.Model
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var out []tenant.Tenant
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for j := range jobs {
				tn, err := e.prov.Create(context.Background(), provision.Request{Slug: j.slug, Model: j.model})
				if err != nil {
					b.Errorf("create %s: %v", j.slug, err)
					continue
				}
				mu.Lock()
				out = append(out, tn)
				mu.Unlock()
			}
		})
	}
	for i := range schemas {
		jobs <- job{fmt.Sprintf("shop-%04d", i), tenant.ModelSchema}
	}
	for i := range databases {
		jobs <- job{fmt.Sprintf("db-shop-%04d", i), tenant.ModelDatabase}
	}
	close(jobs)
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	ctx := context.Background()
	// Ten items per tenant, written as the owner in each tenant's context.
	conns := map[string]*pgx.Conn{}
	for _, tn := range out {
		d, s := e.where(tn)
		conn := conns[d]
		if conn == nil {
			conn = e.connect(b, d)
			conns[d] = conn
		}
		if _, err := conn.Exec(ctx, fmt.Sprintf(`BEGIN; SET LOCAL ROLE landlord_owner;
			SELECT landlord_context.enter(%s);
			INSERT INTO %s (id, qty) SELECT g, g FROM generate_series(1, 10) g; COMMIT`,
			ident.Literal(tn.ID.String()), ident.Quote(s, "items"))); err != nil {
			b.Fatalf("items of %s: %v", tn.Slug, err)
		}
		if tn.Model == tenant.ModelDatabase {
			conn.Close(ctx)
			delete(conns, d)
		}
	}
	b.Logf("created %d schema and %d database tenants in %s", schemas, databases, time.Since(start).Round(time.Millisecond))
	return out
}

// BenchmarkStatus1000 times Status and a no-op Up over 1,000 schema tenants
// (plus the shared schema and the templates), all at the head:
//
//	go test -run '^$' -bench Status1000 -benchtime 20x ./fleet/
func BenchmarkStatus1000(b *testing.B) {
	e := setup(b)
	populate(b, e, benchSize("FLEET_BENCH_SCHEMAS", 1000), 0)
	f := e.fleet(b, files(2), fleet.Config{})
	if _, err := f.Up(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Run("status", func(b *testing.B) {
		for b.Loop() {
			st, err := f.Status(b.Context())
			if err != nil || st.Summary.AtHead != st.Summary.Targets {
				b.Fatalf("status: %+v, %v", st.Summary, err)
			}
		}
	})
	b.Run("up-noop", func(b *testing.B) {
		for b.Loop() {
			rep, err := f.Up(b.Context())
			if err != nil || rep.Run.ID != 0 {
				b.Fatalf("no-op up: %+v, %v", rep.Run, err)
			}
		}
	})
}

// BenchmarkStatusDatabases200 times Status over 200 database tenants, which
// needs one connection per tenant database, at several parallelisms:
//
//	go test -run '^$' -bench StatusDatabases200 -benchtime 10x ./fleet/
func BenchmarkStatusDatabases200(b *testing.B) {
	e := setup(b)
	populate(b, e, 0, benchSize("FLEET_BENCH_DATABASES", 200))
	if _, err := e.fleet(b, files(2), fleet.Config{}).Up(b.Context()); err != nil {
		b.Fatal(err)
	}
	for _, p := range []int{1, 2, 4, 8} {
		f := e.fleet(b, files(2), fleet.Config{Parallel: p})
		b.Run(fmt.Sprintf("parallel=%d", p), func(b *testing.B) {
			for b.Loop() {
				st, err := f.Status(b.Context())
				if err != nil || st.Summary.AtHead != st.Summary.Targets {
					b.Fatalf("status: %+v, %v", st.Summary, err)
				}
			}
		})
		b.Run(fmt.Sprintf("up-noop/parallel=%d", p), func(b *testing.B) {
			for b.Loop() {
				if rep, err := f.Up(b.Context()); err != nil || rep.Run.ID != 0 {
					b.Fatalf("no-op up: %+v, %v", rep.Run, err)
				}
			}
		})
	}
}

// BenchmarkFleetParallelism migrates 1,000 schema tenants and 200 database
// tenants with one migration of ADD COLUMN + CREATE INDEX at parallelism 1,
// 2, 4 and 8, in the order 1 2 4 8 8 4 2 1 (each round a new migration) so
// that drift of the shared machine hits every setting alike, and prints the
// time per round and model. It also times the shape check one step runs,
// which reads every tenant table's default in the database:
//
//	go test -run '^$' -bench FleetParallelism -benchtime 1x -timeout 60m ./fleet/
func BenchmarkFleetParallelism(b *testing.B) {
	e := setup(b)
	tenants := populate(b, e, benchSize("FLEET_BENCH_SCHEMAS", 1000), benchSize("FLEET_BENCH_DATABASES", 200))
	base := files(1)
	ctx := b.Context()
	// One step's shape check on one schema tenant, with every other tenant's
	// tables in the same database.
	var one tenant.Tenant
	for _, tn := range tenants {
		if tn.Model == tenant.ModelSchema {
			one = tn
			break
		}
	}
	if !one.ID.IsZero() {
		conn := e.connect(b, "")
		start := time.Now()
		const n = 20
		for range n {
			if err := migration.CheckShape(ctx, conn, one.Schema); err != nil {
				b.Fatal(err)
			}
		}
		b.Logf("one shape check in a database of %d schema tenants: %s", len(tenants), (time.Since(start) / n).Round(time.Microsecond))
	}
	order := []int{1, 2, 4, 8, 8, 4, 2, 1}
	type mode struct {
		name string
		cfg  func(p int) fleet.Config
	}
	modes := []mode{
		{"schema tenants", func(p int) fleet.Config {
			return fleet.Config{Parallel: p, Models: []tenant.Model{tenant.ModelSchema}}
		}},
		{"schema tenants, PerDatabase = parallel", func(p int) fleet.Config {
			return fleet.Config{Parallel: p, PerDatabase: p, ContinueOnError: true, Models: []tenant.Model{tenant.ModelSchema}}
		}},
		{"database tenants", func(p int) fleet.Config {
			return fleet.Config{Parallel: p, Models: []tenant.Model{tenant.ModelDatabase}}
		}},
	}
	type key struct {
		mode string
		p    int
	}
	took := map[key][]string{}
	for b.Loop() {
		set := fstest.MapFS{}
		for k, v := range base {
			set[k] = v
		}
		v := 1
		for round, p := range order {
			for _, m := range modes {
				v++
				set[fmt.Sprintf("%03d_c%d.up.sql", v, v)] = &fstest.MapFile{Data: []byte(fmt.Sprintf(
					"ALTER TABLE items ADD COLUMN c%d integer;\nCREATE INDEX items_c%d ON items (tenant_id, c%d);\n", v, v, v))}
				f := e.fleet(b, set, m.cfg(p))
				start := time.Now()
				rep, err := f.Up(ctx)
				d := time.Since(start)
				if err != nil && !errors.Is(err, fleet.ErrTargetsFailed) {
					b.Fatalf("round %d (%s, parallel %d): %v", round, m.name, p, err)
				}
				figure := d.Round(10 * time.Millisecond).String()
				if rep.Run.Failed > 0 {
					figure += fmt.Sprintf(" (%d failed)", rep.Run.Failed)
				}
				took[key{m.name, p}] = append(took[key{m.name, p}], figure)
				b.Logf("round %d: %s, parallel %d: %d targets in %s", round, m.name, p, rep.Run.Targets, figure)
				// Finish whatever failed, and the other model, untimed.
				if _, err := e.fleet(b, set, fleet.Config{Parallel: p}).Up(ctx); err != nil {
					b.Fatalf("round %d: catching up: %v", round, err)
				}
			}
		}
	}
	fmt.Printf("\nseconds to migrate one ADD COLUMN + CREATE INDEX (rounds in the order %v)\n", order)
	for _, m := range modes {
		for _, p := range []int{1, 2, 4, 8} {
			fmt.Printf("%-40s parallel %d: %v\n", m.name, p, took[key{m.name, p}])
		}
	}
}
