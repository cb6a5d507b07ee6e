package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

// MaxImpersonation bounds the session an operator gets as a store's user.
const MaxImpersonation = time.Hour

// StoreInfo is a store as the operators' list shows it.
type StoreInfo struct {
	StoreRecord
	// Tenant is the store's directory entry: model, server, state,
	// schema version.
	Tenant tenant.Tenant
	// Products, Orders and Users are counted in the store; SizeBytes is
	// what the store takes on disk (see Platform.Stores).
	Products, Orders, Users int64
	SizeBytes               int64
	// Err says why the counts are missing ("" when they are there): the
	// tenant is not serving, not in the directory, or could not be read.
	Err string
	// Traffic is the store's calls over the last TrafficWindow, from
	// every process of the platform (landlord.TenantStats); nil when it
	// made none.
	Traffic *landlord.TenantStat
}

// TrafficWindow is how far back StoreInfo.Traffic sums a store's calls.
const TrafficWindow = 5 * time.Minute

// Stores lists every store, by slug, with its tenant and what it holds,
// read from all stores at once with Admin.Fanout. SizeBytes depends on the
// model: a database store's is pg_database_size of its database, a schema
// store's the total size of the relations in its schema (tables with their
// indexes and TOAST), and a row store's, which shares its tables, an
// estimate from its own rows: the sum of pg_column_size over each of its
// rows in every shared table, which leaves out indexes and page overhead.
func (p *Platform) Stores(ctx context.Context, op Operator) ([]StoreInfo, error) {
	if err := checkOperator(op); err != nil {
		return nil, err
	}
	recs, err := p.storeRecords(ctx)
	if err != nil {
		return nil, err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: list stores", op.Email))
	if err != nil {
		return nil, err
	}
	ts, err := admin.Tenants(ctx, directory.Filter{})
	if err != nil {
		return nil, fmt.Errorf("list stores: %w", err)
	}
	byID := make(map[tenant.ID]tenant.Tenant, len(ts))
	for _, t := range ts {
		byID[t.ID] = t
	}
	infos := make([]StoreInfo, len(recs))
	index := make(map[tenant.ID]int, len(recs))
	for i, r := range recs {
		infos[i].StoreRecord = r
		index[r.TenantID] = i
		t, ok := byID[r.TenantID]
		switch {
		case !ok:
			infos[i].Err = "the store's tenant is not in the directory"
		case !serving(t.State):
			infos[i].Tenant = t
			infos[i].Err = fmt.Sprintf("the store is %s", t.State)
		default:
			infos[i].Tenant = t
			infos[i].Err = "not read" // until the fan-out reaches it
		}
	}
	err = admin.Fanout(ctx, directory.Filter{}, landlord.FanoutOptions{}, func(ctx context.Context, t tenant.Tenant, q landlord.Querier) error {
		i, ok := index[t.ID]
		if !ok {
			return nil // a tenant that is not a store
		}
		readHoldings(ctx, &infos[i], t, q) // each goroutine has its own element
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list stores: %w", err)
	}
	// Every store can be listed, plus the others' line.
	stats, err := p.ll.TenantStats(ctx, TrafficWindow, len(infos)+1)
	if err != nil {
		return nil, fmt.Errorf("list stores: %w", err)
	}
	for _, st := range stats {
		if i, ok := index[st.Tenant]; ok {
			infos[i].Traffic = &st
		}
	}
	return infos, nil
}

// Store is Stores for the one store of tenant id, read from that store
// alone; Traffic is left nil. A store that does not exist is
// store.ErrNotFound.
func (p *Platform) Store(ctx context.Context, op Operator, id tenant.ID) (StoreInfo, error) {
	if err := checkOperator(op); err != nil {
		return StoreInfo{}, err
	}
	rec, err := scanStore(p.db.QueryRow(ctx, `SELECT `+storeColumns+` FROM shop.stores WHERE tenant_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return StoreInfo{}, fmt.Errorf("store %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return StoreInfo{}, fmt.Errorf("store %s: %w", id, err)
	}
	info := StoreInfo{StoreRecord: rec}
	t, err := p.ll.Tenant(ctx, id)
	switch {
	case errors.Is(err, tenant.ErrNotFound):
		info.Err = "the store's tenant is not in the directory"
		return info, nil
	case err != nil:
		return StoreInfo{}, fmt.Errorf("store %s: %w", rec.Slug, err)
	case !serving(t.State):
		info.Tenant = t
		info.Err = fmt.Sprintf("the store is %s", t.State)
		return info, nil
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: look at store %s", op.Email, rec.Slug))
	if err != nil {
		return StoreInfo{}, err
	}
	readHoldings(ctx, &info, t, admin.Tenant(ctx, id))
	return info, nil
}

// readHoldings counts what the store of tenant t holds and its size, read
// through q, into info; what fails is said in info.Err.
func readHoldings(ctx context.Context, info *StoreInfo, t tenant.Tenant, q landlord.Querier) {
	info.Tenant = t
	info.Err = ""
	if err := q.QueryRow(ctx, `SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM orders), (SELECT count(*) FROM users)`).
		Scan(&info.Products, &info.Orders, &info.Users); err != nil {
		info.Err = "counts: " + err.Error()
		return
	}
	size, err := storeSize(ctx, t, q)
	if err != nil {
		info.Err = "size: " + err.Error()
		return
	}
	info.SizeBytes = size
}

// storeSize measures what tenant t takes on disk (see Platform.Stores).
func storeSize(ctx context.Context, t tenant.Tenant, q landlord.Querier) (int64, error) {
	var size int64
	switch t.Model {
	case tenant.ModelDatabase:
		err := q.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size)
		return size, err
	case tenant.ModelSchema:
		err := q.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
			FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')`, t.Schema).Scan(&size)
		return size, err
	}
	// Shared tables: only the tenant's rows are visible to its handle, so
	// summing the size of every visible row measures the tenant alone.
	rows, err := q.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname`, t.Schema)
	if err != nil {
		return 0, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	if len(tables) == 0 {
		return 0, nil
	}
	parts := make([]string, len(tables))
	for i, tb := range tables {
		parts[i] = `SELECT coalesce(sum(pg_column_size(r.*)), 0) AS s FROM ` + pgx.Identifier{t.Schema, tb}.Sanitize() + ` r`
	}
	err = q.QueryRow(ctx, `SELECT coalesce(sum(s), 0)::bigint FROM (`+strings.Join(parts, " UNION ALL ")+`) sizes`).Scan(&size)
	return size, err
}

// storeRecords returns every store row, by slug.
func (p *Platform) storeRecords(ctx context.Context) ([]StoreRecord, error) {
	rows, err := p.db.Query(ctx, `SELECT `+storeColumns+` FROM shop.stores ORDER BY slug`)
	if err != nil {
		return nil, fmt.Errorf("list stores: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoreRecord, error) { return scanStore(r) })
	if err != nil {
		return nil, fmt.Errorf("list stores: %w", err)
	}
	return recs, nil
}

// SetState moves a store between active, read_only and suspended through
// an admin scope (Admin.SetState, which records the state with the reason in
// the tenant's ledger), and records the change in shop.admin_access. The
// reason is required.
func (p *Platform) SetState(ctx context.Context, op Operator, id tenant.ID, s tenant.State, reason string) (tenant.Tenant, error) {
	reason, err := checkAction(op, reason)
	if err != nil {
		return tenant.Tenant{}, err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: %s", op.Email, reason))
	if err != nil {
		return tenant.Tenant{}, err
	}
	t, err := admin.SetState(ctx, id, s)
	if err != nil {
		return t, fmt.Errorf("set state of %s: %w", id, err)
	}
	if err := p.recordAccess(ctx, op, id, "set_state", string(s), reason); err != nil {
		return t, err
	}
	return t, nil
}

// Browse opens a read-only view of one store for an operator: it records
// the visit in shop.admin_access and returns a context carrying the store's
// tenant with a store service that runs through an admin scope
// (ll.Admin(ctx, reason).Tenant), so a suspended store can be looked at
// too. Every call of that service runs in a READ ONLY transaction: the
// database refuses whatever write it tries. The service has the store
// package's default options. The reason is required; an unknown tenant is
// store.ErrNotFound.
func (p *Platform) Browse(ctx context.Context, op Operator, id tenant.ID, reason string) (context.Context, *store.Service, error) {
	reason, err := checkAction(op, reason)
	if err != nil {
		return nil, nil, err
	}
	if _, err := p.tenant(ctx, id); err != nil {
		return nil, nil, err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: browse: %s", op.Email, reason))
	if err != nil {
		return nil, nil, err
	}
	if err := p.recordAccess(ctx, op, id, "browse", "", reason); err != nil {
		return nil, nil, err
	}
	svc := p.st.WithDB(readOnlyDB{db: admin.Tenant(ctx, id)})
	return landlord.WithTenant(ctx, id), svc, nil
}

// Impersonate signs an operator in as one of a store's users, for support:
// after checking the user exists and is active it records the impersonation
// in shop.impersonations, then starts a store session for the user
// (store.Service.NewSession with the operator's email as impersonatedBy and
// the reason) through an admin scope, and returns its token. ttl is at most
// MaxImpersonation; the reason is required. The audit row is written before
// the session, so no session exists without one; an attempt that fails
// after it stays recorded.
func (p *Platform) Impersonate(ctx context.Context, op Operator, id tenant.ID, userID, reason string, ttl time.Duration) (string, error) {
	reason, err := checkAction(op, reason)
	if err != nil {
		return "", err
	}
	if ttl <= 0 || ttl > MaxImpersonation {
		return "", fmt.Errorf("impersonate: ttl %s must be positive and at most %s", ttl, MaxImpersonation)
	}
	if _, err := uuid.Parse(userID); err != nil {
		return "", fmt.Errorf("impersonate: user %q: %w", clip(userID), store.ErrNotFound)
	}
	if _, err := p.tenant(ctx, id); err != nil {
		return "", err
	}
	admin, err := p.ll.Admin(ctx, fmt.Sprintf("operator %s: impersonate user %s: %s", op.Email, userID, reason))
	if err != nil {
		return "", err
	}
	svc := p.st.WithDB(admin.Tenant(ctx, id))
	tctx := landlord.WithTenant(ctx, id)
	u, err := svc.User(tctx, userID)
	if err != nil {
		return "", fmt.Errorf("impersonate user %s of %s: %w", userID, id, err)
	}
	if !u.Active {
		return "", fmt.Errorf("impersonate user %s of %s: the user has not accepted their invitation: %w", userID, id, store.ErrConflict)
	}
	_, err = p.db.Exec(ctx, `INSERT INTO shop.impersonations (operator_id, tenant_id, user_id, reason, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5::interval)`, op.ID, id, userID, reason, ttl)
	if err != nil {
		return "", fmt.Errorf("impersonate: record: %w", err)
	}
	token, err := svc.NewSession(tctx, userID, ttl, op.Email, reason)
	if err != nil {
		return "", fmt.Errorf("impersonate user %s of %s: %w", userID, id, err)
	}
	p.log.LogAttrs(ctx, slog.LevelInfo, "operator impersonates a store user", slog.String("operator", op.Email),
		slog.String("tenant", id.String()), slog.String("user", userID), slog.String("reason", reason))
	return token, nil
}

// Impersonation is one row of the impersonation audit.
type Impersonation struct {
	ID                   int64
	Operator             string // the operator's email
	TenantID             tenant.ID
	Slug, UserID, Reason string
	StartedAt, ExpiresAt time.Time
}

// Impersonations lists the newest impersonations, at most limit (default
// 50, at most 1000). Slug is the store's, "" for a tenant that has no store
// row.
func (p *Platform) Impersonations(ctx context.Context, limit int) ([]Impersonation, error) {
	switch {
	case limit < 0:
		return nil, fmt.Errorf("impersonations: limit %d must not be negative", limit)
	case limit == 0:
		limit = 50
	case limit > 1000:
		limit = 1000
	}
	rows, err := p.db.Query(ctx, `SELECT i.id, o.email, i.tenant_id, coalesce(s.slug, ''), i.user_id::text, i.reason, i.started_at, i.expires_at
		FROM shop.impersonations i
		JOIN shop.operators o ON o.id = i.operator_id
		LEFT JOIN shop.stores s ON s.tenant_id = i.tenant_id
		ORDER BY i.started_at DESC, i.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("impersonations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Impersonation, error) {
		var im Impersonation
		err := r.Scan(&im.ID, &im.Operator, &im.TenantID, &im.Slug, &im.UserID, &im.Reason, &im.StartedAt, &im.ExpiresAt)
		return im, err
	})
	if err != nil {
		return nil, fmt.Errorf("impersonations: %w", err)
	}
	return out, nil
}

// tenant returns the directory entry of id; store.ErrNotFound if none.
func (p *Platform) tenant(ctx context.Context, id tenant.ID) (tenant.Tenant, error) {
	t, err := p.ll.Tenant(ctx, id)
	if errors.Is(err, tenant.ErrNotFound) {
		return t, fmt.Errorf("store %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("store %s: %w", id, err)
	}
	return t, nil
}

// recordAccess writes one row of shop.admin_access.
func (p *Platform) recordAccess(ctx context.Context, op Operator, id tenant.ID, action, detail, reason string) error {
	_, err := p.db.Exec(ctx, `INSERT INTO shop.admin_access (operator_id, tenant_id, action, detail, reason) VALUES ($1, $2, $3, $4, $5)`,
		op.ID, id, action, detail, reason)
	if err != nil {
		return fmt.Errorf("record %s of %s: %w", action, id, err)
	}
	return nil
}

// checkOperator refuses an Operator that did not come from this package.
func checkOperator(op Operator) error {
	if _, err := uuid.Parse(op.ID); err != nil || op.Email == "" {
		return errors.New("no operator: sign in first")
	}
	return nil
}

// checkAction checks the operator and the reason of an operator action and
// returns the reason trimmed.
func checkAction(op Operator, reason string) (string, error) {
	if err := checkOperator(op); err != nil {
		return "", err
	}
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", landlord.ErrNoReason
	case utf8.RuneCountInString(reason) > 1000 || !utf8.ValidString(reason):
		return "", errors.New("the reason must be valid text of at most 1000 characters")
	}
	return reason, nil
}

// serving reports whether tenants in state s take traffic through an admin
// scope (as Admin.Fanout serves them).
func serving(s tenant.State) bool {
	switch s {
	case tenant.StateActive, tenant.StateReadOnly, tenant.StateSuspended:
		return true
	}
	return false
}
