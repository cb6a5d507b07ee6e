// Package demo is the short tour the landlord command runs by default: one
// tenant per isolation model, rows written and read as each, and the
// database refusing every attempt to cross between them.
package demo

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

//go:embed migrations/*.sql
var files embed.FS

// Migrations returns the demo's tenant tables.
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// Run opens the installation at databaseURL, replaces the demo tenants, and
// writes what each tenant sees to out.
func Run(ctx context.Context, databaseURL string, out io.Writer) error {
	l, err := landlord.Open(ctx, databaseURL, Migrations(), landlord.Config{})
	if err != nil {
		return err
	}
	defer l.Close()

	shops := []struct {
		slug  string
		model tenant.Model
		goods []string
	}{
		{"demo-corner-shop", tenant.ModelRow, []string{"apples", "bread"}},
		{"demo-book-store", tenant.ModelSchema, []string{"atlas", "novel", "poems"}},
		{"demo-big-market", tenant.ModelDatabase, []string{"bikes", "tents", "boots", "maps"}},
	}
	var tenants []tenant.Tenant
	for _, s := range shops {
		// A previous run's tenant goes first, so every run starts clean.
		if old, err := l.TenantBySlug(ctx, s.slug); err == nil {
			if err := l.DeleteTenant(ctx, old.ID); err != nil {
				return err
			}
		} else if !errors.Is(err, tenant.ErrNotFound) {
			return err
		}
		t, err := l.CreateTenant(ctx, provision.Request{Slug: s.slug, Model: s.model, DisplayName: s.slug})
		if err != nil {
			return err
		}
		tenants = append(tenants, t)
		h, tctx := l.Handle(), landlord.WithTenant(ctx, t.ID)
		for i, g := range s.goods {
			if _, err := h.Exec(tctx, `INSERT INTO products (id, name, price_cents) VALUES ($1, $2, $3)`, i+1, g, 100*(i+1)); err != nil {
				return fmt.Errorf("%s: insert: %w", s.slug, err)
			}
		}
	}

	fmt.Fprintln(out, "Each tenant reads its own products table, through the same SQL:")
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tMODEL\tWHERE\tSEES")
	for _, t := range tenants {
		rows, err := l.Handle().Query(landlord.WithTenant(ctx, t.ID), `SELECT name FROM products ORDER BY id`)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		where := t.Schema
		if t.Model == tenant.ModelDatabase {
			where = t.Database + " (database)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Slug, t.Model, where, strings.Join(names, ", "))
	}
	tw.Flush()

	fmt.Fprintln(out, "\nAnd the database refuses every way across:")
	for _, a := range tenants {
		for _, b := range tenants {
			if a.ID == b.ID {
				continue
			}
			sql := fmt.Sprintf(`SELECT count(*) FROM %s WHERE tenant_id = $1`, ident.Quote(b.Schema, "products"))
			var n int
			err := l.Handle().QueryRow(landlord.WithTenant(ctx, a.ID), sql, b.ID).Scan(&n)
			verdict := fmt.Sprintf("sees %d of its rows", n)
			if err != nil {
				verdict = "refused: " + err.Error()
			}
			fmt.Fprintf(out, "  %s reading %s's products: %s\n", a.Slug, b.Slug, verdict)
			if err == nil && n != 0 {
				return fmt.Errorf("isolation broken: %s saw %d rows of %s", a.Slug, n, b.Slug)
			}
		}
	}
	_, err = l.Handle().Exec(ctx, `SELECT count(*) FROM products`)
	fmt.Fprintf(out, "  a query with no tenant in its context: %v\n", err)
	if !errors.Is(err, landlord.ErrNoTenant) {
		return fmt.Errorf("a query without a tenant was not refused: %v", err)
	}
	return nil
}
