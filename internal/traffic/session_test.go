package traffic

import "testing"

func TestLeavesSessionState(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]bool{
		`SELECT * FROM items`:        false,
		`UPDATE items SET sku = 'x'`: false,
		`SET search_path = t_x`:      true,
		`  set role r_x`:             true,
		`/* c */ -- line` + "\n" + `Set statement_timeout = 0`: true,
		`SET LOCAL statement_timeout = 0`:                      false,
		`set transaction isolation level serializable`:         false,
		`SET CONSTRAINTS ALL DEFERRED`:                         false,
		`RESET ALL`:                                            true,
		`DISCARD ALL`:                                          true,
		`DECLARE c CURSOR WITH HOLD FOR SELECT 1`:              true,
		`LISTEN orders`:                                        true,
		`PREPARE p AS SELECT 1`:                                true,
		`DEALLOCATE ALL`:                                       true,
		`deallocate prepare landlord_enter`:                    true,
		`CREATE TEMP TABLE x (a int)`:                          true,
		`create temporary table x (a int)`:                     true,
		`CREATE LOCAL TEMPORARY TABLE x (a int)`:               true,
		`CREATE GLOBAL TEMP TABLE x (a int)`:                   true,
		`CREATE TABLE temp (a int)`:                            false,
		`LOAD 'auto_explain'`:                                  true,
		`SELECT SET_CONFIG('search_path', 'x', false)`:         true,
		`SELECT pg_advisory_lock(1)`:                           true,
		`SELECT pg_try_advisory_lock(1)`:                       true,
		`SELECT PG_ADVISORY_LOCK(1)`:                           true,
		`SET localz.x = 'a'`:                                   true,
		`SET LOCALZ.x = 'a'`:                                   true,
		`SELECT pg_advisory_xact_lock(1)`:                      false,
		`(SELECT 1)`:                                           false,
		``:                                                     false,
		`-- only a comment`:                                    false,
	} {
		if got := leavesSessionState(sql); got != want {
			t.Errorf("leavesSessionState(%q) = %v, want %v", sql, got, want)
		}
	}
}

func TestFirstWord(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ sql, word, rest string }{
		{"SET x", "SET", " x"},
		{" /* c */ (set_config(", "set_config", "("},
		{"-- c\nreset", "reset", ""},
		{`"set" x`, "", `"set" x`},
		{"-- c", "", ""},
		{"/* c", "", ""},
	} {
		if word, rest := firstWord(c.sql); word != c.word || rest != c.rest {
			t.Errorf("firstWord(%q) = %q, %q, want %q, %q", c.sql, word, rest, c.word, c.rest)
		}
	}
}

func TestContainsAnyFold(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s, sub string
		want   bool
	}{
		{"set_config", "set_config", true},
		{"SELECT SET_CONFIG", "set_config", true},
		{"SELECT set_confi", "set_config", false},
		{"ZA", "za", true},
		{"", "a", false},
	} {
		if got := containsAnyFold(c.s, []string{c.sub}); got != c.want {
			t.Errorf("containsAnyFold(%q, %q) = %v, want %v", c.s, c.sub, got, c.want)
		}
	}
}
