package platform

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/crypto/bcrypt"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/shop/store"
	"github.com/landlordhq/landlord/tenant"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	for s, m := range map[string]tenant.Model{"free": tenant.ModelRow, "pro": tenant.ModelSchema, "enterprise": tenant.ModelDatabase} {
		p, err := ParsePlan(s)
		if err != nil || p.Model() != m {
			t.Errorf("ParsePlan(%q) = %q, %v; model %q, want %q", s, p, err, p.Model(), m)
		}
	}
	for _, s := range []string{"", "Free", "gold", "free "} {
		if _, err := ParsePlan(s); err == nil {
			t.Errorf("ParsePlan(%q) accepted", s)
		}
	}
}

// TestMigrations: Open applies each migration once, also when processes
// open together, refuses an applied file that changed, and schema shop is
// closed to tenant traffic.
func TestMigrations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	db := e.ll.Provisioner().Admin()
	ledger := func() (n int, versions string) {
		t.Helper()
		must(t, db.QueryRow(ctx, `SELECT count(*), string_agg(version::text || '_' || name, ',' ORDER BY version) FROM shop.migrations`).Scan(&n, &versions))
		return n, versions
	}
	ms, err := loadMigrations(migrationFiles)
	must(t, err)
	if n, v := ledger(); n != len(ms) || !strings.HasPrefix(v, "1_platform") {
		t.Fatalf("ledger after Open: %d rows %q, want %d starting with 1_platform", n, v, len(ms))
	}

	t.Run("concurrent opens apply nothing twice", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { _, errs[i] = Open(ctx, e.ll, e.st, Config{PasswordCost: bcrypt.MinCost}) })
		}
		wg.Wait()
		must(t, errors.Join(errs...))
		if n, _ := ledger(); n != len(ms) {
			t.Fatalf("ledger has %d rows after reopening, want %d", n, len(ms))
		}
	})

	t.Run("a fresh database gets each migration once under concurrency", func(t *testing.T) {
		// A second installation where no Open ran yet: four at once.
		ll := kit().Open(t, landlord.Config{})
		t.Cleanup(ll.Close)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { _, errs[i] = Open(ctx, ll, e.st, Config{PasswordCost: bcrypt.MinCost}) })
		}
		wg.Wait()
		must(t, errors.Join(errs...))
		var n int
		must(t, ll.Provisioner().Admin().QueryRow(ctx, `SELECT count(*) FROM shop.migrations`).Scan(&n))
		if n != len(ms) {
			t.Fatalf("ledger has %d rows, want %d", n, len(ms))
		}
	})

	t.Run("an applied file that changed is refused", func(t *testing.T) {
		_, err := db.Exec(ctx, `UPDATE shop.migrations SET checksum = 'edited' WHERE version = 1`)
		must(t, err)
		defer db.Exec(ctx, `UPDATE shop.migrations SET checksum = $1 WHERE version = 1`, ms[0].checksum)
		_, err = Open(ctx, e.ll, e.st, Config{})
		if err == nil || !strings.Contains(err.Error(), "was changed after it was applied") {
			t.Fatalf("Open with an edited migration: %v", err)
		}
	})

	t.Run("bad config", func(t *testing.T) {
		if _, err := Open(ctx, e.ll, e.st, Config{PasswordCost: 99}); err == nil {
			t.Fatal("a bcrypt cost of 99 was accepted")
		}
		if _, err := Open(ctx, e.ll, nil, Config{}); err == nil {
			t.Fatal("Open without a store service was accepted")
		}
	})

	t.Run("tenant traffic cannot reach schema shop", func(t *testing.T) {
		denied := func(err error) bool {
			var pgErr *pgconn.PgError
			return errors.As(err, &pgErr) && pgErr.Code == "42501"
		}
		// Through the handle, as a row and a schema tenant's traffic.
		for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema} {
			tn, err := e.ll.CreateTenant(ctx, provision.Request{Slug: "probe-" + string(m), Model: m})
			must(t, err)
			tctx := landlord.WithTenant(ctx, tn.ID)
			for _, q := range []string{
				`SELECT count(*) FROM shop.stores`,
				`SELECT count(*) FROM shop.operators`,
				`INSERT INTO shop.stores (tenant_id, slug, name, plan, owner_email) VALUES (gen_random_uuid(), 'x-store', 'x', 'free', 'a@b.c')`,
			} {
				if _, err := e.ll.Handle().Exec(tctx, q); !denied(err) {
					t.Errorf("%s tenant: %s: %v, want permission denied", m, q, err)
				}
			}
		}
		// As the app role itself, on a superuser's connection.
		c := e.super(t, "")
		app := e.ll.Provisioner().Roles().App
		for _, q := range []string{
			`SELECT count(*) FROM shop.stores`,
			`SELECT count(*) FROM shop.operator_sessions`,
			`UPDATE shop.operators SET name = 'x'`,
			`DELETE FROM shop.impersonations`,
			`INSERT INTO shop.admin_access (operator_id, tenant_id, action, reason) VALUES (gen_random_uuid(), gen_random_uuid(), 'browse', 'x')`,
		} {
			err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, `SET LOCAL ROLE `+pgx.Identifier{app}.Sanitize()); err != nil {
					t.Fatal(err)
				}
				_, err := tx.Exec(ctx, q)
				return err
			})
			if !denied(err) {
				t.Errorf("as %s: %s: %v, want permission denied", app, q, err)
			}
		}
		var usage bool
		must(t, c.QueryRow(ctx, `SELECT has_schema_privilege($1, 'shop', 'USAGE')`, app).Scan(&usage))
		if usage {
			t.Errorf("%s has USAGE on schema shop", app)
		}
	})
}

// counts returns the tenants in the directory and the store rows.
func (e *env) counts(t testing.TB) (tenants, stores int) {
	t.Helper()
	ctx := context.Background()
	admin, err := e.ll.Admin(ctx, "test: count tenants")
	must(t, err)
	ts, err := admin.Tenants(ctx, directory.Filter{})
	must(t, err)
	must(t, e.ll.Provisioner().Admin().QueryRow(ctx, `SELECT count(*) FROM shop.stores`).Scan(&stores))
	return len(ts), stores
}

func TestSignUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	db := e.ll.Provisioner().Admin()

	t.Run("each plan", func(t *testing.T) {
		// A pre-provisioned schema tenant is claimed by the pro sign-up.
		n, err := e.ll.FillReserve(ctx, tenant.ModelSchema, 1)
		must(t, err)
		if n != 1 {
			t.Fatalf("reserve holds %d schema tenants, want 1", n)
		}
		var reserved tenant.ID
		must(t, db.QueryRow(ctx, `SELECT id FROM landlord.tenant_reserve WHERE model = 'schema'`).Scan(&reserved))
		for _, plan := range []Plan{PlanFree, PlanPro, PlanEnterprise} {
			in := SignUp{Email: "  Owner@" + string(plan) + ".example ", Password: "secret-" + string(plan), StoreName: " The " + string(plan) + " store ", Slug: "Shop-" + string(plan), Plan: plan}
			rec, owner, err := e.p.SignUp(ctx, in)
			must(t, err)
			wantEmail := "owner@" + string(plan) + ".example"
			if rec.Slug != "shop-"+string(plan) || rec.Name != "The "+string(plan)+" store" || rec.Plan != plan || rec.OwnerEmail != wantEmail || rec.CreatedAt.IsZero() {
				t.Errorf("%s: record %+v", plan, rec)
			}
			tn, err := e.ll.Tenant(ctx, rec.TenantID)
			must(t, err)
			if tn.Model != plan.Model() || tn.Slug != rec.Slug || tn.State != tenant.StateActive || tn.DisplayName != rec.Name {
				t.Errorf("%s: tenant %+v, want model %s", plan, tn, plan.Model())
			}
			if plan == PlanPro && tn.ID != reserved {
				t.Errorf("the pro sign-up built tenant %s instead of claiming the reserved %s", tn.ID, reserved)
			}
			if owner.Role != store.RoleOwner || owner.Email != wantEmail || !owner.Active {
				t.Errorf("%s: owner %+v", plan, owner)
			}
			u, err := e.st.Authenticate(landlord.WithTenant(ctx, rec.TenantID), wantEmail, in.Password)
			if err != nil || u.ID != owner.ID {
				t.Errorf("%s: the owner cannot sign in: %v", plan, err)
			}
			got, err := e.p.StoreBySlug(ctx, strings.ToUpper(rec.Slug))
			if err != nil || got != rec {
				t.Errorf("%s: StoreBySlug = %+v, %v; want %+v", plan, got, err, rec)
			}
		}
		for _, slug := range []string{"nope", "", "bad slug"} {
			if _, err := e.p.StoreBySlug(ctx, slug); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("StoreBySlug(%q): %v, want store.ErrNotFound", slug, err)
			}
		}
	})

	t.Run("bad input writes nothing", func(t *testing.T) {
		// A tenant that is not a store still holds its slug.
		_, err := e.ll.CreateTenant(ctx, provision.Request{Slug: "not-a-store", Model: tenant.ModelRow})
		must(t, err)
		good := SignUp{Email: "a@shop.example", Password: "long enough", StoreName: "A store", Slug: "a-store", Plan: PlanFree}
		cases := []struct {
			edit  func(*SignUp)
			field string
			msg   string // a part of the message
		}{
			{func(s *SignUp) { s.Email = "" }, "email", "is required"},
			{func(s *SignUp) { s.Email = "no-at-sign" }, "email", "not an email"},
			{func(s *SignUp) { s.Email = "Alice <a@shop.example>" }, "email", "not an email"},
			{func(s *SignUp) { s.Email = "a@localhost" }, "email", "not an email"},
			{func(s *SignUp) { s.Password = "short" }, "password", "at least 8"},
			{func(s *SignUp) { s.Password = strings.Repeat("x", 73) }, "password", "at most 72"},
			{func(s *SignUp) { s.StoreName = "  " }, "name", "is required"},
			{func(s *SignUp) { s.StoreName = strings.Repeat("n", 201) }, "name", "longer than 200"},
			{func(s *SignUp) { s.StoreName = "tab\there" }, "name", "control"},
			{func(s *SignUp) { s.Slug = "" }, "slug", "is required"},
			{func(s *SignUp) { s.Slug = "ab" }, "slug", "2 characters; use 3-40 characters"},
			{func(s *SignUp) { s.Slug = "bad slug!" }, "slug", "not allowed"},
			{func(s *SignUp) { s.Slug = "admin" }, "slug", "is taken"},
			{func(s *SignUp) { s.Slug = "pg-store" }, "slug", "is taken"},
			{func(s *SignUp) { s.Slug = "shop-free" }, "slug", "is taken"},
			{func(s *SignUp) { s.Slug = "Not-A-Store" }, "slug", "is taken"},
			{func(s *SignUp) { s.Plan = "" }, "plan", "choose free, pro or enterprise"},
			{func(s *SignUp) { s.Plan = "gold" }, "plan", "choose free, pro or enterprise"},
		}
		tenants, stores := e.counts(t)
		for _, c := range cases {
			in := good
			c.edit(&in)
			_, _, err := e.p.SignUp(ctx, in)
			var ve *store.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || !strings.Contains(ve.Fields[c.field], c.msg) {
				t.Errorf("%+v: %v, want only %s: %q", in, err, c.field, c.msg)
			}
		}
		_, _, err = e.p.SignUp(ctx, SignUp{Slug: "x", Plan: "x"})
		var ve *store.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields) != 5 {
			t.Errorf("everything wrong: %v, want five fields", err)
		}
		if tn, st := e.counts(t); tn != tenants || st != stores {
			t.Fatalf("bad sign-ups left %d tenants and %d stores, want %d and %d", tn, st, tenants, stores)
		}
		if _, err := e.ll.TenantBySlug(ctx, "a-store"); !errors.Is(err, tenant.ErrNotFound) {
			t.Fatalf("a bad sign-up left tenant a-store: %v", err)
		}
	})

	t.Run("a failure after the tenant exists leaves nothing", func(t *testing.T) {
		super := e.super(t, "")
		// The database refuses the owner of one sign-up in the shared
		// tables, and the store row of another, after validation passed.
		for _, q := range []string{
			`CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
			`CREATE TRIGGER refuse_owner BEFORE INSERT ON shared.users FOR EACH ROW WHEN (NEW.email = 'owner@refused.example') EXECUTE FUNCTION public.refuse()`,
			`CREATE TRIGGER refuse_store BEFORE INSERT ON shop.stores FOR EACH ROW WHEN (NEW.slug = 'no-store-row') EXECUTE FUNCTION public.refuse()`,
		} {
			_, err := super.Exec(ctx, q)
			must(t, err)
		}
		t.Cleanup(func() {
			_, _ = super.Exec(context.Background(), `DROP TRIGGER refuse_owner ON shared.users; DROP TRIGGER refuse_store ON shop.stores; DROP FUNCTION public.refuse()`)
		})
		// And in the database of a pre-provisioned enterprise tenant,
		// which the enterprise sign-up claims.
		n, err := e.ll.FillReserve(ctx, tenant.ModelDatabase, 1)
		must(t, err)
		if n != 1 {
			t.Fatalf("reserve holds %d database tenants, want 1", n)
		}
		var reservedDB, usersSchema string
		must(t, db.QueryRow(ctx, `SELECT database_name, schema_name FROM landlord.tenant_reserve WHERE model = 'database'`).Scan(&reservedDB, &usersSchema))
		rc := e.super(t, reservedDB)
		refuse := pgx.Identifier{usersSchema, "refuse"}.Sanitize()
		_, err = rc.Exec(ctx, `CREATE FUNCTION `+refuse+`() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
			CREATE TRIGGER refuse_owner BEFORE INSERT ON `+pgx.Identifier{usersSchema, "users"}.Sanitize()+` FOR EACH ROW EXECUTE FUNCTION `+refuse+`()`)
		must(t, err)
		rc.Close(ctx) // the tenant's database must be free to be dropped

		tenants, stores := e.counts(t)
		for _, in := range []SignUp{
			{Email: "owner@refused.example", Password: "long enough", StoreName: "Refused", Slug: "no-owner", Plan: PlanFree},
			{Email: "owner@fine.example", Password: "long enough", StoreName: "No row", Slug: "no-store-row", Plan: PlanFree},
			{Email: "owner@fine.example", Password: "long enough", StoreName: "Refused", Slug: "no-owner-db", Plan: PlanEnterprise},
		} {
			_, _, err := e.p.SignUp(ctx, in)
			if err == nil || !strings.Contains(err.Error(), "refused by the test") {
				t.Fatalf("%s: %v, want the database's refusal", in.Slug, err)
			}
			if _, err := e.ll.TenantBySlug(ctx, in.Slug); !errors.Is(err, tenant.ErrNotFound) {
				t.Errorf("%s: the failed sign-up left its tenant: %v", in.Slug, err)
			}
		}
		if tn, st := e.counts(t); tn != tenants || st != stores {
			t.Fatalf("after failed sign-ups: %d tenants, %d stores; want %d and %d", tn, st, tenants, stores)
		}
		var owners int
		must(t, super.QueryRow(ctx, `SELECT count(*) FROM shared.users WHERE email IN ('owner@refused.example', 'owner@fine.example')`).Scan(&owners))
		if owners != 0 {
			t.Fatalf("failed sign-ups left %d owners in the shared tables", owners)
		}
		var dbs int
		must(t, super.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname = $1`, reservedDB).Scan(&dbs))
		if dbs != 0 {
			t.Fatalf("the failed enterprise sign-up left its database %s", reservedDB)
		}
	})
}

func TestOperators(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	p := e.p

	op, err := p.CreateOperator(ctx, " Ops@Platform.example ", " Olga ", "operator password")
	must(t, err)
	if op.ID == "" || op.Email != "ops@platform.example" || op.Name != "Olga" {
		t.Fatalf("operator %+v", op)
	}
	if _, err := p.CreateOperator(ctx, "OPS@platform.example", "Other", "another password"); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second operator with the email: %v, want store.ErrConflict", err)
	}
	_, err = p.CreateOperator(ctx, "nope", "", "short")
	var ve *store.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 3 {
		t.Fatalf("bad operator: %v, want email, name and password", err)
	}

	got, err := p.AuthenticateOperator(ctx, "OPS@platform.example", "operator password")
	if err != nil || got != op {
		t.Fatalf("AuthenticateOperator = %+v, %v; want %+v", got, err, op)
	}
	for _, c := range [][2]string{{"ops@platform.example", "wrong password"}, {"who@platform.example", "operator password"}, {"", ""}} {
		if _, err := p.AuthenticateOperator(ctx, c[0], c[1]); !errors.Is(err, store.ErrBadCredentials) {
			t.Errorf("AuthenticateOperator(%q, %q): %v, want store.ErrBadCredentials", c[0], c[1], err)
		}
	}

	token, err := p.NewOperatorSession(ctx, op, time.Hour)
	must(t, err)
	if got, err := p.OperatorSession(ctx, token); err != nil || got != op {
		t.Fatalf("OperatorSession = %+v, %v", got, err)
	}
	var stored []byte
	must(t, e.ll.Provisioner().Admin().QueryRow(ctx, `SELECT token_hash FROM shop.operator_sessions`).Scan(&stored))
	if strings.Contains(string(stored), token) || len(stored) != 32 {
		t.Fatalf("the session token is not stored as its SHA-256 hash")
	}
	for _, bad := range []string{"", "not a token", token + "x", strings.Repeat("a", 1000)} {
		if _, err := p.OperatorSession(ctx, bad); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("OperatorSession(%q): %v, want store.ErrNotFound", bad, err)
		}
	}
	must(t, p.EndOperatorSession(ctx, token))
	if _, err := p.OperatorSession(ctx, token); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ended session: %v, want store.ErrNotFound", err)
	}
	must(t, p.EndOperatorSession(ctx, token)) // twice is fine

	// An expired session is not found, and goes with the next new one.
	old, err := p.NewOperatorSession(ctx, op, time.Minute)
	must(t, err)
	_, err = e.ll.Provisioner().Admin().Exec(ctx, `UPDATE shop.operator_sessions SET expires_at = now() - interval '1 second'`)
	must(t, err)
	if _, err := p.OperatorSession(ctx, old); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v, want store.ErrNotFound", err)
	}
	_, err = p.NewOperatorSession(ctx, op, time.Minute)
	must(t, err)
	var n int
	must(t, e.ll.Provisioner().Admin().QueryRow(ctx, `SELECT count(*) FROM shop.operator_sessions`).Scan(&n))
	if n != 1 {
		t.Fatalf("%d sessions, want 1: the expired one stays", n)
	}
	for _, ttl := range []time.Duration{0, -time.Second, MaxOperatorSession + time.Second} {
		if _, err := p.NewOperatorSession(ctx, op, ttl); err == nil {
			t.Errorf("session with ttl %s accepted", ttl)
		}
	}
	if _, err := p.NewOperatorSession(ctx, Operator{}, time.Hour); err == nil {
		t.Error("session without an operator accepted")
	}
	if _, err := p.CreateOperator(ctx, "x@y.example", "X", fmt.Sprint(strings.Repeat("é", 37))); err == nil {
		t.Error("a 74-byte password accepted")
	}
}
