package traffic

import (
	"errors"
	"testing"
)

func TestRefuse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sql    string
		refuse bool
	}{
		{`EXPLAIN SELECT * FROM items WHERE sku = 'x'`, true},
		{`explain analyze select 1`, true},
		{`ExPlAiN (FORMAT json) SELECT 1`, true},
		{"  \t\n\f\vEXPLAIN SELECT 1", true},
		{`(EXPLAIN SELECT 1)`, true},
		{`-- a comment` + "\n" + `EXPLAIN SELECT 1`, true},
		{`/* a comment */ EXPLAIN SELECT 1`, true},
		{`/* outer /* nested */ still a comment */ EXPLAIN SELECT 1`, true},
		{`/* outer /* nested */ explain */ SELECT 1`, false},
		{`SELECT 1; EXPLAIN SELECT 1`, true},
		{`SELECT 1;EXPLAIN SELECT 1;`, true},
		{`SELECT ';' ; explain SELECT 1`, true},
		{`SELECT $$ ; $$; EXPLAIN SELECT 1`, true},
		{`SELECT $tag$ $$ ; $tag$ ; EXPLAIN SELECT 1`, true},
		// A backslash read both ways: as standard_conforming_strings on
		// (the quote after it closes the literal) and off.
		{`SELECT 'x\' ; SELECT 1 --'; EXPLAIN SELECT 1`, true},
		{`SELECT 'x\'; EXPLAIN SELECT 1; --'`, true},
		{`SELECT E'x\'; EXPLAIN SELECT 1'`, false},

		{`SELECT 'EXPLAIN SELECT 1'`, false},
		{`SELECT '; EXPLAIN SELECT 1'`, false},
		{`SELECT 'it''s; EXPLAIN SELECT 1'`, false},
		{`SELECT "explain" FROM items`, false},
		{`SELECT "a;"" EXPLAIN" FROM items`, false},
		{`SELECT explain FROM items`, false},
		{`SELECT * FROM explain_plans`, false},
		{`INSERT INTO notes (body) VALUES ($1)`, false},
		{`SELECT $$; EXPLAIN SELECT 1$$`, false},
		{`SELECT $x$; EXPLAIN SELECT 1$x$`, false},
		{`SELECT $1; SELECT a$b FROM t`, false},
		{`SELECT 1 -- ; EXPLAIN SELECT 1`, false},
		{`SELECT 1 /* ; EXPLAIN SELECT 1 */`, false},
		{`explained`, false},
		{`explain_this()`, false},
		{`DO $$ BEGIN EXECUTE 'EXPLAIN SELECT 1'; END $$`, false}, // closed by the database: no PL/pgSQL for tenant roles
		{``, false},
		{`;;`, false},
		{`SELECT 'unterminated; EXPLAIN`, false},
	} {
		err := refuse(c.sql)
		if got := err != nil; got != c.refuse {
			t.Errorf("refuse(%q) = %v, want refused %v", c.sql, err, c.refuse)
		}
		if err != nil && !errors.Is(err, ErrStatementRefused) {
			t.Errorf("refuse(%q) = %v, not ErrStatementRefused", c.sql, err)
		}
	}
}
