package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/shop/app"
	"github.com/landlordhq/landlord/shop/platform"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// storefront: the shop's product page, through the whole HTTP handler
// (store resolved from the URL, the product read through the tenant handle,
// the page rendered), for stores of all three models with Zipf traffic,
// next to the same handler serving one store, in alternating rounds. Then
// the platform's cross-store report (revenue and orders per store, top
// products) over every store at once.

func storefrontCase() benchCase {
	return benchCase{
		name: "storefront",
		what: "shop product pages over 1,000 stores (800 row, 150 schema, 50 database), Zipf, vs one store (goal: ratio >= 0.8); cross-store report over them (goal: <= 2 s)",
		// The case builds a shop installation of its own.
		needs: func(sizes) needs { return needs{} },
		run:   runStorefront,
	}
}

const (
	storefrontGoal = 0.8
	reportGoal     = 2.0 // seconds
)

type benchStore struct {
	slug     string
	model    tenant.Model
	products []string
}

func runStorefront(ctx context.Context, e *env) ([]Result, error) {
	db := e.name("_storefront") // provision has "_shop"
	if err := e.createDatabase(ctx, db); err != nil {
		return nil, err
	}
	owner, appRole := "lb"+e.tag+"_sf_owner", "lb"+e.tag+"_sf_app"
	e.addRoles(appRole, owner)
	start := time.Now()
	a, err := app.Open(ctx, app.Config{
		DatabaseURL:  e.url(db, map[string]string{"application_name": "landlord-bench-shop"}),
		Logger:       e.cfg.Logger,
		PasswordCost: bcrypt.MinCost,
		Reserve:      map[tenant.Model]int{tenant.ModelRow: -1, tenant.ModelSchema: -1, tenant.ModelDatabase: -1},
		NoJobs:       true,
		OwnerRole:    owner,
		AppRole:      appRole,
	})
	if err != nil {
		return nil, err
	}
	defer a.Close(context.WithoutCancel(ctx))
	e.addInstall(a.LL.Provisioner().Installation().ID.String(), a.LL.Provisioner().TemplateDatabase())

	var plan []benchStore
	for _, m := range []struct {
		n     int
		model tenant.Model
	}{{e.sz.shopRow, tenant.ModelRow}, {e.sz.shopSchema, tenant.ModelSchema}, {e.sz.shopDB, tenant.ModelDatabase}} {
		for i := range m.n {
			plan = append(plan, benchStore{slug: fmt.Sprintf("%s-store-%04d", m.model, i), model: m.model})
		}
	}
	// Popularity must not follow the model: the hottest stores are of
	// every kind.
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	var done atomic.Int64
	stop := e.ticker(fmt.Sprintf("creating %d stores with %d products each", len(plan), e.sz.shopProducts), len(plan), &done)
	err = parallel(ctx, 4, len(plan), func(ctx context.Context, i int) error {
		defer done.Add(1)
		return buildBenchStore(ctx, a, &plan[i], e.sz.shopProducts)
	})
	stop()
	if err != nil {
		return nil, fmt.Errorf("build stores: %w", err)
	}
	buildS := time.Since(start).Seconds()

	hs := httptest.NewServer(a.Handler())
	defer hs.Close()
	tr := &http.Transport{MaxIdleConns: 4 * e.sz.goroutines, MaxIdleConnsPerHost: 4 * e.sz.goroutines}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(ctx context.Context, url string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return err
	}
	pageLoad := func(name string, stores []benchStore, pick picker) load {
		return load{name: name, workers: e.sz.goroutines, worker: func(r *rand.Rand) func(ctx context.Context) error {
			next := pick(r, len(stores))
			return func(ctx context.Context) error {
				s := stores[next()]
				return get(ctx, hs.URL+"/s/"+s.slug+"/products/"+s.products[r.IntN(len(s.products))])
			}
		}}
	}
	// The one store is a row store, as four in five are.
	one := plan[slices.IndexFunc(plan, func(s benchStore) bool { return s.model == tenant.ModelRow })]
	rs, err := e.alternate(ctx, "storefront", []load{
		pageLoad("one-store", []benchStore{one}, uniformPicker),
		pageLoad("all-stores", plan, zipfPicker),
	}, e.sz.rounds, e.sz.roundTime, nil)
	if err != nil {
		return nil, err
	}
	res := ratioResult("storefront", rs[1], rs[0], storefrontGoal)
	res.Unit = "pages/s"
	res.Detail["stores"] = map[string]int{"row": e.sz.shopRow, "schema": e.sz.shopSchema, "database": e.sz.shopDB}
	res.Detail["products_per_store"] = e.sz.shopProducts
	res.Detail["goroutines"] = e.sz.goroutines
	res.Detail["connection_budget"] = app.DefaultMaxConns
	res.Detail["store_choice"] = "zipf s=1.1 over the stores in a shuffled order (popularity independent of model)"
	res.Detail["baseline_is"] = "the same handler and server, every request for one row store"
	res.Detail["request"] = "GET /s/<slug>/products/<id> over HTTP/1.1 keep-alive on loopback, the whole page rendered"
	res.Detail["build_s"] = round3(buildS)

	// The report, a few times; the first also warms what the others reuse.
	op, err := a.Platform.CreateOperator(ctx, "bench@shop.localhost", "Bench", "bench-password")
	if err != nil {
		return nil, err
	}
	to := time.Now().Add(time.Hour)
	from := to.AddDate(0, 0, -30)
	var secs []float64
	var last platform.Report
	for range 4 {
		t0 := time.Now()
		last, err = a.Platform.Report(ctx, op, from, to, nil)
		if err != nil {
			return nil, fmt.Errorf("report: %w", err)
		}
		secs = append(secs, time.Since(t0).Seconds())
	}
	if len(last.Failed) > 0 {
		return nil, fmt.Errorf("report: %d stores could not be read, first: %s", len(last.Failed), last.Failed[0])
	}
	med := spreadOf(secs[1:]).Median
	rep := Result{
		Case: "storefront-report", Ours: round3(med), Unit: "s",
		Goal: fmt.Sprintf("<= %g s", reportGoal), Met: med <= reportGoal,
		Detail: e.withSetup(map[string]any{
			"stores":     len(plan),
			"runs_s":     secs,
			"first_s":    round3(secs[0]),
			"what":       "revenue and orders per store over 30 days and the top products platform-wide: one Admin.Fanout over every store in all three models",
			"stores_out": len(last.Stores),
		}),
	}
	return []Result{res, rep}, nil
}

// buildBenchStore signs a store up and gives it products with stock and two
// orders.
func buildBenchStore(ctx context.Context, a *app.App, s *benchStore, products int) error {
	p := map[tenant.Model]platform.Plan{tenant.ModelRow: platform.PlanFree, tenant.ModelSchema: platform.PlanPro, tenant.ModelDatabase: platform.PlanEnterprise}[s.model]
	rec, owner, err := a.Platform.SignUp(ctx, platform.SignUp{
		Email: "owner@" + s.slug + ".test", Password: "bench-password", StoreName: s.slug, Slug: s.slug, Plan: p,
	})
	if err != nil {
		return fmt.Errorf("sign up %s: %w", s.slug, err)
	}
	ctx = landlord.WithTenant(ctx, rec.TenantID)
	for i := range products {
		pr, err := a.Store.CreateProduct(ctx, owner, store.ProductInput{
			SKU: fmt.Sprintf("SKU-%03d", i), Title: fmt.Sprintf("Product %d of %s", i, s.slug),
			Description: "A product of the benchmark.", PriceCents: int64(100 + i*10), Active: true, LowStockThreshold: 1,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", s.slug, err)
		}
		if _, err := a.Store.MoveStock(ctx, owner, pr.ID, store.MoveReceipt, 1000, ""); err != nil {
			return fmt.Errorf("%s: %w", s.slug, err)
		}
		s.products = append(s.products, pr.ID)
	}
	for i := range 2 {
		_, _, err := a.Store.Checkout(ctx, store.CheckoutInput{
			Key: fmt.Sprintf("bench-order-%d", i), Name: "Bench Customer", Email: "customer@example.com", Address: "1 Bench Street",
			Lines: []store.Line{{ProductID: s.products[i%len(s.products)], Quantity: 1 + i}},
		})
		if err != nil {
			return fmt.Errorf("%s: order: %w", s.slug, err)
		}
	}
	return nil
}
