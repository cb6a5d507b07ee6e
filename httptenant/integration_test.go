package httptenant

import (
	"context"
	"embed"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/pgtest"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

//go:embed testdata/migrations/*.sql
var migrationFiles embed.FS

func migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "testdata/migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// template is a control database with Landlord installed, set up once.
var template = func() *pgtest.Template {
	set, err := migration.Load(migrations())
	if err != nil {
		panic(err)
	}
	return &pgtest.Template{
		Name: "httptenant-" + set.Hash()[:12] + "-" + directory.Migrations().Hash()[:12],
		Setup: func(ctx context.Context, db *pgtest.DB) error {
			l, err := landlord.Open(ctx, db.URL, migrations(), landlord.Config{})
			if err != nil {
				return err
			}
			l.Close()
			return nil
		},
	}
}()

// TestThroughLandlord resolves hosts with Landlord.TenantBySlug on a real
// installation and runs a query through the handle for the resolved tenant:
// each host sees its own tenant's rows and nothing else.
func TestThroughLandlord(t *testing.T) {
	t.Parallel()
	if srv == nil {
		t.Skip("no test server while fuzzing")
	}
	ctx := context.Background()
	db := srv.NewDB(t, template)
	ll, err := landlord.Open(ctx, db.URL, migrations(), landlord.Config{})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(ll.Close)
	notes := map[string]string{"acme": "acme's note", "other": "other's note"}
	models := map[string]tenant.Model{"acme": tenant.ModelRow, "other": tenant.ModelSchema}
	for slug, body := range notes {
		tn, err := ll.CreateTenant(ctx, provision.Request{Slug: slug, Model: models[slug]})
		if err != nil {
			t.Fatalf("create %s: %v", slug, err)
		}
		if _, err := ll.Handle().Exec(landlord.WithTenant(ctx, tn.ID), `INSERT INTO notes (id, body) VALUES (1, $1)`, body); err != nil {
			t.Fatalf("insert for %s: %v", slug, err)
		}
	}

	res, err := New(Config{BaseDomain: "shop.example", LookupSlug: ll.TenantBySlug})
	if err != nil {
		t.Fatal(err)
	}
	app := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rows, err := ll.Handle().Query(r.Context(), `SELECT body FROM notes ORDER BY id`)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer rows.Close()
		var bodies []string
		for rows.Next() {
			var b string
			if err := rows.Scan(&b); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			bodies = append(bodies, b)
		}
		if err := rows.Err(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(strings.Join(bodies, "|")))
	}))

	cases := []struct {
		host string
		code int
		body string
	}{
		{"acme.shop.example", http.StatusOK, "acme's note"},
		{"ACME.Shop.Example.:8443", http.StatusOK, "acme's note"},
		{"other.shop.example", http.StatusOK, "other's note"},
		{"nope.shop.example", http.StatusNotFound, "Not Found\n"},
		{"www.shop.example", http.StatusNotFound, "Not Found\n"},
		{"shop.example", http.StatusNotFound, "Not Found\n"},
		{"127.0.0.1", http.StatusNotFound, "Not Found\n"},
		{"acme'--.shop.example", http.StatusBadRequest, "Bad Request\n"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/notes", nil)
		r.Host = c.host
		w := httptest.NewRecorder()
		app.ServeHTTP(w, r)
		if w.Code != c.code || w.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.host, w.Code, w.Body.String(), c.code, c.body)
		}
	}
}
