package traffic

import (
	"errors"
	"strings"
	"testing"
)

// LOCK is refused wherever EXPLAIN would be, with its own reason; lock as
// a name, a literal or a longer word is not.
func TestRefuseLock(t *testing.T) {
	for sql, want := range map[string]string{
		`LOCK TABLE shared.items IN ACCESS EXCLUSIVE MODE`: "I38",
		`lock shared.items`:              "I38",
		`/* x */ (LOCK items)`:           "I38",
		`SELECT 1; LOCK items`:           "I38",
		`SELECT 'a\'; LOCK items; --'`:   "I38",
		`EXPLAIN SELECT 1; LOCK items`:   "I32",
		`SELECT * FROM items FOR UPDATE`: "",
		`SELECT 'LOCK TABLE items'`:      "",
		`SELECT "lock" FROM locks`:       "",
		`SELECT lockstep FROM t`:         "",
		`UPDATE t SET lock = true`:       "",
	} {
		err := refuse(sql)
		switch {
		case want == "" && err != nil:
			t.Errorf("refuse(%q) = %v, want nil", sql, err)
		case want != "" && (!errors.Is(err, ErrStatementRefused) || !strings.Contains(err.Error(), want)):
			t.Errorf("refuse(%q) = %v, want a refusal naming %s", sql, err, want)
		}
	}
}
