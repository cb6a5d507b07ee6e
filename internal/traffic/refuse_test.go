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

		// Literals and quotes at the edges of the text: first, empty,
		// closed at once, left open at the end.
		{`'x'; EXPLAIN SELECT 1`, true},
		{`SELECT ''; EXPLAIN SELECT 1; --'`, true},
		{`SELECT $a$$a$; EXPLAIN SELECT 1`, true},
		{`SELECT $x`, false},
		{`SELECT 1 /* unterminated`, false},
		{`SELECT 1 /* unterminated *`, false},
		// E'...' only when the E stands alone, in either case, first too.
		{`E'x\'; EXPLAIN SELECT 1'`, false},
		{`SELECT e'x\'; EXPLAIN SELECT 1'`, false},
		{`SELECT typE'x\'; EXPLAIN SELECT 1; --'`, true},
		// A backslash anywhere, the first byte too, means two readings.
		{`\ SELECT 'x\' ; SELECT 1 --'; EXPLAIN SELECT 1`, true},
		// A dollar tag may not start with a digit ($1 is a parameter) but
		// may hold one.
		{`SELECT $0$; EXPLAIN SELECT 1; $0$`, true},
		{`SELECT $1$; EXPLAIN SELECT 1; $1$`, true},
		{`SELECT $9$; EXPLAIN SELECT 1; $9$`, true},
		{`SELECT $a1$ ' $a1$; EXPLAIN SELECT 1; --'`, true},
		// A dollar sign after a byte that may not continue an identifier
		// opens a dollar quote.
		{`SELECT ARRAY[$b$; EXPLAIN SELECT 1; $b$]`, false},
		{`SELECT 'a'=$b$; EXPLAIN SELECT 1; $b$`, false},
		{`SELECT 1,$b$; EXPLAIN SELECT 1; $b$`, false},
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

// TestDollarInIdentifier: after a byte that may continue an identifier, a
// dollar sign is part of the identifier (x1$b$ is one name), so it opens no
// dollar quote that could hide the next statement.
func TestDollarInIdentifier(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"a", "z", "A", "Z", "0", "9", "_", "$", "\u00e9", "\u0100" /* UTF-8 c4 80 */} {
		sql := "SELECT x" + c + "$b$; EXPLAIN SELECT 1; $b$"
		if err := refuse(sql); err == nil {
			t.Errorf("refuse(%q) = nil, want refused", sql)
		}
	}
}
