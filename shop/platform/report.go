package platform

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/tenant"
)

// TopProducts is how many products a Report ranks.
const TopProducts = 10

// StoreSales is one store's sales in a Report.
type StoreSales struct {
	TenantID     tenant.ID
	Slug, Name   string
	Model        tenant.Model
	Orders       int64
	RevenueCents int64
	Currency     string // "" when the store sold nothing in the period
}

// ProductSales is one product's sales in a Report.
type ProductSales struct {
	TenantID            tenant.ID
	Slug, SKU, Title    string
	Units, RevenueCents int64
}

// Report is the platform's sales over a period.
type Report struct {
	From, To time.Time
	Stores   []StoreSales // every store that could be read, by slug
	// TopProducts are the TopProducts best-selling products across all
	// stores by revenue (in each store's own currency), best first.
	TopProducts []ProductSales
	// Failed names the stores that could not be read, with why.
	Failed []string
}

// reportOrders sums a store's orders; reportProducts ranks its products.
// The same SQL runs in every store, whatever its model, in one batch (one
// transaction, one snapshot).
const (
	reportOrders = `SELECT count(*), coalesce(sum(total_cents), 0)::bigint, coalesce(min(currency), '')
		FROM orders WHERE status <> 'cancelled' AND created_at >= $1 AND created_at < $2`
	reportProducts = `SELECT (array_agg(l.sku ORDER BY o.created_at DESC))[1], (array_agg(l.title ORDER BY o.created_at DESC))[1],
			sum(l.quantity)::bigint, sum(l.quantity::bigint * l.price_cents)::bigint AS revenue
		FROM order_lines l JOIN orders o ON o.tenant_id = l.tenant_id AND o.id = l.order_id
		WHERE o.status <> 'cancelled' AND o.created_at >= $1 AND o.created_at < $2
		GROUP BY l.product_id ORDER BY revenue DESC, l.product_id LIMIT $3`
)

// Report sums the sales of every store in [from, to): its non-cancelled
// orders placed in the period, and the best-selling products across all
// stores. It reads every store of all three models in one Admin.Fanout,
// calling progress (when set) as tenants finish: its total counts every
// serving tenant of the installation, stores or not. A store that cannot be read
// is listed in Failed and the report goes on; an error means the report
// itself could not be made (bad period, cancelled ctx).
func (p *Platform) Report(ctx context.Context, op Operator, from, to time.Time, progress func(done, total int)) (Report, error) {
	if err := checkOperator(op); err != nil {
		return Report{}, err
	}
	if from.IsZero() || to.IsZero() || !from.Before(to) {
		return Report{}, fmt.Errorf("report: the period [%s, %s) is empty; from must be before to", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	recs, err := p.storeRecords(ctx)
	if err != nil {
		return Report{}, err
	}
	stores := make(map[tenant.ID]StoreRecord, len(recs))
	for _, r := range recs {
		stores[r.TenantID] = r
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: sales report %s to %s", op.Email, from.Format(time.RFC3339), to.Format(time.RFC3339)))
	if err != nil {
		return Report{}, err
	}
	rep := Report{From: from, To: to}
	var mu sync.Mutex
	seen := map[tenant.ID]bool{}
	err = admin.Fanout(ctx, directory.Filter{}, landlord.FanoutOptions{Progress: progress}, func(ctx context.Context, t tenant.Tenant, q landlord.Querier) error {
		rec, ok := stores[t.ID]
		if !ok {
			return nil // a tenant that is not a store
		}
		sales, top, err := storeReport(ctx, t, rec, q, from, to)
		mu.Lock()
		defer mu.Unlock()
		seen[t.ID] = true
		if err != nil {
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s: %v", rec.Slug, err))
			return nil
		}
		rep.Stores = append(rep.Stores, sales)
		rep.TopProducts = append(rep.TopProducts, top...)
		return nil
	})
	if err != nil {
		return Report{}, fmt.Errorf("report: %w", err)
	}
	for _, r := range recs {
		if !seen[r.TenantID] {
			rep.Failed = append(rep.Failed, fmt.Sprintf("%s: the store's tenant is not serving or not in the directory", r.Slug))
		}
	}
	slices.SortFunc(rep.Stores, func(a, b StoreSales) int { return cmp.Compare(a.Slug, b.Slug) })
	slices.Sort(rep.Failed)
	slices.SortFunc(rep.TopProducts, func(a, b ProductSales) int {
		return cmp.Or(cmp.Compare(b.RevenueCents, a.RevenueCents), cmp.Compare(b.Units, a.Units),
			cmp.Compare(a.Slug, b.Slug), cmp.Compare(a.SKU, b.SKU))
	})
	if len(rep.TopProducts) > TopProducts {
		rep.TopProducts = rep.TopProducts[:TopProducts]
	}
	return rep, nil
}

// storeReport reads one store's sales and its TopProducts best products.
func storeReport(ctx context.Context, t tenant.Tenant, rec StoreRecord, q landlord.Querier, from, to time.Time) (StoreSales, []ProductSales, error) {
	s := StoreSales{TenantID: t.ID, Slug: rec.Slug, Name: rec.Name, Model: t.Model}
	b := &pgx.Batch{}
	b.Queue(reportOrders, from, to)
	b.Queue(reportProducts, from, to, TopProducts)
	br := q.SendBatch(ctx, b)
	defer br.Close()
	if err := br.QueryRow().Scan(&s.Orders, &s.RevenueCents, &s.Currency); err != nil {
		return s, nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return s, nil, err
	}
	top, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProductSales, error) {
		ps := ProductSales{TenantID: t.ID, Slug: rec.Slug}
		err := r.Scan(&ps.SKU, &ps.Title, &ps.Units, &ps.RevenueCents)
		return ps, err
	})
	if err != nil {
		return s, nil, err
	}
	return s, top, br.Close()
}
