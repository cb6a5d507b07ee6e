package ident_test

import (
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }

func TestQuote(t *testing.T) {
	t.Parallel()
	cases := []struct {
		parts []string
		want  string
	}{
		{[]string{"t_0123"}, `"t_0123"`},
		{[]string{"t_0123", "items"}, `"t_0123"."items"`},
		{[]string{"Items"}, `"Items"`},
		{[]string{`a"b`}, `"a""b"`},
		{[]string{"a.b"}, `"a.b"`},
		{[]string{"a\x00b"}, `"ab"`},
		{[]string{""}, `""`},
	}
	for _, c := range cases {
		if got := ident.Quote(c.parts...); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.parts, got, c.want)
		}
	}
}

func TestLiteral(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"landlord tenant 1", `'landlord tenant 1'`},
		{"it's", `'it''s'`},
		{"''", `''''''`},
		{`back\slash`, `'back\slash'`},
		{"", `''`},
	}
	for _, c := range cases {
		if got := ident.Literal(c.in); got != c.want {
			t.Errorf("Literal(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestLiteralRefusesNUL(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("Literal with a NUL byte did not panic")
		}
	}()
	ident.Literal("a\x00b")
}

// TestRoundTrip: names and text that would break a statement if spliced
// unquoted come back from PostgreSQL as they went in.
func TestRoundTrip(t *testing.T) {
	t.Parallel()
	db := srv.NewDB(t, nil)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	for _, s := range []string{
		"plain", "Upper", `dou"ble`, "sin'gle", "semi; DROP SCHEMA public", "dot.ted", "spa ce",
		`back\slash`, "$$dollar$$", "-- comment", "/* comment */", "ümlaut ✓", "''", `""`,
	} {
		var text string
		if err := conn.QueryRow(ctx, "SELECT "+ident.Literal(s)).Scan(&text); err != nil || text != s {
			t.Errorf("SELECT %s = %q, %v; want %q", ident.Literal(s), text, err, s)
		}
		_, err := conn.Exec(ctx, "CREATE SCHEMA "+ident.Quote(s)+"; CREATE TABLE "+ident.Quote(s, s)+" (x int);"+
			"COMMENT ON SCHEMA "+ident.Quote(s)+" IS "+ident.Literal(s))
		if err != nil {
			t.Errorf("create schema and table %q: %v", s, err)
			continue
		}
		var schema, table, comment string
		err = conn.QueryRow(ctx, `SELECT n.nspname, c.relname, obj_description(n.oid, 'pg_namespace')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::regclass`,
			ident.Quote(s, s)).Scan(&schema, &table, &comment)
		if err != nil || schema != s || table != s || comment != s {
			t.Errorf("%s: schema %q, table %q, comment %q, %v; want %q for all", ident.Quote(s, s), schema, table, comment, err, s)
		}
	}
}
