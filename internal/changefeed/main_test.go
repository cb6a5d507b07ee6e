package changefeed_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/internal/changefeed"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

// schema is the source tables (schema src, owned by pgtest_owner) and
// their targets (schema dst, same definitions).
const schema = `
CREATE SCHEMA src;
CREATE SCHEMA dst;
CREATE TYPE src.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE src.items (
	tenant_id uuid NOT NULL,
	id bigint GENERATED ALWAYS AS IDENTITY,
	name text,
	name_len int GENERATED ALWAYS AS (length(name)) STORED,
	mood src.mood,
	doc jsonb,
	blob bytea,
	tags text[],
	price numeric,
	at timestamptz,
	span interval,
	ratio float8,
	big text,
	PRIMARY KEY (tenant_id, id)
);
-- Out of line and uncompressed from about 2 kB on: an update that leaves
-- it is sent without it.
ALTER TABLE src.items ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE TABLE src.notes (
	tenant_id uuid NOT NULL,
	code text NOT NULL,
	body text,
	PRIMARY KEY (tenant_id, code)
);
CREATE TABLE src.counters (
	tenant_id uuid NOT NULL,
	k int NOT NULL,
	serial bigint GENERATED ALWAYS AS IDENTITY,
	hits int NOT NULL DEFAULT 0,
	PRIMARY KEY (tenant_id, k)
);
CREATE TABLE dst.items (LIKE src.items INCLUDING ALL);
CREATE TABLE dst.notes (LIKE src.notes INCLUDING ALL);
CREATE TABLE dst.counters (LIKE src.counters INCLUDING ALL);
`

var tables = []changefeed.Table{
	{Schema: "src", Name: "items"},
	{Schema: "src", Name: "notes", Key: []string{"tenant_id", "code"}},
	{Schema: "src", Name: "counters"},
}

// copyColumns lists each table's columns that are not generated
// expressions, for the copy.
var copyColumns = map[string]string{
	"items":    "tenant_id, id, name, mood, doc, blob, tags, price, at, span, ratio, big",
	"notes":    "tenant_id, code, body",
	"counters": "tenant_id, k, serial, hits",
}

var orderBy = map[string]string{"items": "tenant_id, id", "notes": "tenant_id, code", "counters": "tenant_id, k"}

func applier() *changefeed.Applier {
	a := &changefeed.Applier{Target: map[changefeed.TableName]changefeed.TableName{}}
	for _, t := range tables {
		a.Target[t.TableName()] = changefeed.TableName{Schema: "dst", Name: t.Name}
	}
	return a
}

// env is a test's database with the schema.
type env struct {
	db    *pgtest.DB
	admin *pgx.ConnConfig // superuser
	pool  *pgxpool.Pool   // as the tables' owner
}

// feeds limits the tests that run feeds at once.
var feeds = make(chan struct{}, 4)

// setup makes a database with the schema. Every feed name a test uses must
// be passed as names: the slots are dropped when the test ends, before the
// database is (a database with a slot cannot be dropped).
func setup(t testing.TB, names ...string) *env {
	t.Helper()
	// The server has 10 replication slots and walsenders.
	feeds <- struct{}{}
	t.Cleanup(func() { <-feeds })
	db := srv.NewDB(t, nil)
	ctx := t.Context()
	admin, err := pgx.ParseConfig(db.AdminURL)
	must(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range names {
			if err := changefeed.Drop(ctx, admin, pgtest.OwnerRole, n); err != nil {
				t.Errorf("drop %s: %v", n, err)
			}
		}
	})
	pool, err := pgxpool.New(ctx, db.URL)
	must(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, schema)
	must(t, err)
	return &env{db: db, admin: admin, pool: pool}
}

func (e *env) config(name string, tenant *uuid.UUID) changefeed.Config {
	return changefeed.Config{Conn: e.admin, Owner: pgtest.OwnerRole, Name: name, Tables: tables, Tenant: tenant}
}

// copySnapshot copies the source tables (the rows of tenant, when given)
// into the targets as of the feed's exported snapshot.
func (e *env) copySnapshot(t *testing.T, f *changefeed.Feed, tenant *uuid.UUID) {
	t.Helper()
	ctx := t.Context()
	err := pgx.BeginTxFunc(ctx, e.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET TRANSACTION SNAPSHOT "+ident.Literal(f.Snapshot())); err != nil {
			return err
		}
		for _, tb := range tables {
			q := fmt.Sprintf("INSERT INTO dst.%s (%s) OVERRIDING SYSTEM VALUE SELECT %[2]s FROM src.%[1]s", tb.Name, copyColumns[tb.Name])
			if tenant != nil {
				q += " WHERE tenant_id = " + ident.Literal(tenant.String())
			}
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	must(t, err)
	must(t, f.ReleaseSnapshot(ctx))
}

// counts tallies what a test's apply function saw.
type counts struct {
	txns, changes, unchanged, keyChanges, deletes int
}

// applyFunc applies each Txn in a transaction of its own on the target.
func (e *env) applyFunc(a *changefeed.Applier, n *counts) func(context.Context, changefeed.Txn) error {
	return func(ctx context.Context, txn changefeed.Txn) error {
		if n != nil {
			n.txns++
			for _, c := range txn.Changes {
				n.changes++
				if c.Unchanged != nil {
					n.unchanged++
				}
				if c.Kind == changefeed.Update && c.OldKey != nil {
					n.keyChanges++
				}
				if c.Kind == changefeed.Delete {
					n.deletes++
				}
			}
		}
		return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error { return a.Apply(ctx, tx, txn) })
	}
}

// digest returns a digest and count of a table's rows (of tenant, when
// given).
func (e *env) digest(t *testing.T, schema, table string, tenant *uuid.UUID) string {
	t.Helper()
	where := ""
	if tenant != nil {
		where = " WHERE tenant_id = " + ident.Literal(tenant.String())
	}
	var sum string
	var n int
	err := e.pool.QueryRow(t.Context(), fmt.Sprintf("SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY %s), '')), count(*) FROM %s.%s t%s",
		orderBy[table], schema, table, where)).Scan(&sum, &n)
	must(t, err)
	return fmt.Sprintf("%s (%d rows)", sum, n)
}

// same fails the test unless every target table holds exactly the source
// table's rows (of tenant).
func (e *env) same(t *testing.T, tenant *uuid.UUID) {
	t.Helper()
	for _, tb := range tables {
		if s, d := e.digest(t, "src", tb.Name, tenant), e.digest(t, "dst", tb.Name, nil); s != d {
			t.Errorf("%s: source %s, target %s", tb.Name, s, d)
		}
	}
}

// churn runs n source transactions of random inserts, updates (of plain
// columns, of the TOASTed one, of keys) and deletes for the tenants.
func (e *env) churn(t *testing.T, rnd *rand.Rand, tenants []uuid.UUID, n int) {
	t.Helper()
	ctx := t.Context()
	for i := 0; i < n; i++ {
		err := pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
			for range 1 + rnd.IntN(3) {
				if err := change(ctx, tx, rnd, tenants[rnd.IntN(len(tenants))]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Errorf("churn: %v", err)
			return
		}
	}
}

var texts = []string{"plain", "tab\there", "new\nline", `back\slash`, `quote"d`, "it's", "", "ümlaut ✓", `\N`, "NULL", "{a,b}"}

func randText(rnd *rand.Rand) *string {
	if rnd.IntN(6) == 0 {
		return nil
	}
	s := texts[rnd.IntN(len(texts))] + fmt.Sprint(rnd.IntN(100))
	return &s
}

func bigText(rnd *rand.Rand) string {
	var b strings.Builder
	for b.Len() < 4000 {
		fmt.Fprintf(&b, "%016x\t", rnd.Uint64())
	}
	return b.String()
}

// change makes one random change to the tenant's rows.
func change(ctx context.Context, tx pgx.Tx, rnd *rand.Rand, tenant uuid.UUID) error {
	// A random existing row of the tenant, if any.
	pick := func(table, col string) (any, bool, error) {
		var v any
		err := tx.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM src.%s WHERE tenant_id = $1 ORDER BY random() LIMIT 1", col, table), tenant).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, false, nil
		}
		return v, err == nil, err
	}
	var err error
	switch op := rnd.IntN(12); op {
	case 0, 1, 2:
		var big any
		if rnd.IntN(3) > 0 {
			big = bigText(rnd)
		}
		moods := []any{nil, "sad", "ok", "happy"}
		docs := []any{nil, `{"a": 1, "b": [true, null, "x\ty"]}`, `{"nested": {"k": "v\n"}}`, `[]`, `"just a string"`}
		_, err = tx.Exec(ctx, `INSERT INTO src.items (tenant_id, name, mood, doc, blob, tags, price, at, span, ratio, big)
			VALUES ($1, $2, $3::text::src.mood, $4::text::jsonb, $5, $6, $7::text::numeric, $8, $9::text::interval, $10, $11)`,
			tenant, randText(rnd), moods[rnd.IntN(len(moods))], docs[rnd.IntN(len(docs))],
			[]byte{0, 1, 2, '\\', 0xff, byte(rnd.IntN(256))}, []*string{randText(rnd), randText(rnd)},
			fmt.Sprintf("%d.%03d", rnd.IntN(100000)-50000, rnd.IntN(1000)),
			time.Date(2020+rnd.IntN(5), time.Month(1+rnd.IntN(12)), 1+rnd.IntN(28), rnd.IntN(24), rnd.IntN(60), 0, rnd.IntN(1000000)*1000, time.UTC),
			fmt.Sprintf("%d days %d seconds", rnd.IntN(100), rnd.IntN(100000)), rnd.Float64()*1e6/3, big)
	case 3, 4:
		// Leaves big as it is: sent as unchanged TOAST.
		if id, ok, perr := pick("items", "id"); ok {
			_, err = tx.Exec(ctx, `UPDATE src.items SET name = $3, tags = tags || $4::text, doc = jsonb_build_object('n', $5::int)
				WHERE tenant_id = $1 AND id = $2`, tenant, id, randText(rnd), randText(rnd), rnd.IntN(1000))
		} else {
			err = perr
		}
	case 5:
		if id, ok, perr := pick("items", "id"); ok {
			_, err = tx.Exec(ctx, "UPDATE src.items SET big = $3, mood = NULL WHERE tenant_id = $1 AND id = $2", tenant, id, bigText(rnd))
		} else {
			err = perr
		}
	case 6:
		// A new key, big left as it is.
		if id, ok, perr := pick("items", "id"); ok {
			_, err = tx.Exec(ctx, "UPDATE src.items SET id = DEFAULT, price = price + 1 WHERE tenant_id = $1 AND id = $2", tenant, id)
		} else {
			err = perr
		}
	case 7:
		if id, ok, perr := pick("items", "id"); ok {
			_, err = tx.Exec(ctx, "DELETE FROM src.items WHERE tenant_id = $1 AND id = $2", tenant, id)
		} else {
			err = perr
		}
	case 8:
		_, err = tx.Exec(ctx, `INSERT INTO src.notes (tenant_id, code, body) VALUES ($1, $2, $3)
			ON CONFLICT (tenant_id, code) DO UPDATE SET body = EXCLUDED.body`, tenant, fmt.Sprintf("n%d", rnd.IntN(50)), randText(rnd))
	case 9:
		// A new key of a plain row.
		if code, ok, perr := pick("notes", "code"); ok {
			_, err = tx.Exec(ctx, `UPDATE src.notes SET code = $3 WHERE tenant_id = $1 AND code = $2
				AND NOT EXISTS (SELECT FROM src.notes WHERE tenant_id = $1 AND code = $3)`,
				tenant, code, fmt.Sprintf("n%d", rnd.IntN(50)))
		} else {
			err = perr
		}
	case 10:
		if code, ok, perr := pick("notes", "code"); ok {
			_, err = tx.Exec(ctx, "DELETE FROM src.notes WHERE tenant_id = $1 AND code = $2", tenant, code)
		} else {
			err = perr
		}
	case 11:
		_, err = tx.Exec(ctx, `INSERT INTO src.counters (tenant_id, k) VALUES ($1, $2)
			ON CONFLICT (tenant_id, k) DO UPDATE SET hits = src.counters.hits + 1`, tenant, rnd.IntN(20))
	}
	return err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
