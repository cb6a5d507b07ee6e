package traffic

import "testing"

// Functions that leave session state, called under a name that does not
// spell them out or that the scan did not know, cost the connection; an
// ampersand or a U elsewhere does not.
func TestLeavesSessionStateEscaped(t *testing.T) {
	for sql, want := range map[string]bool{
		`SELECT U&"set\005fconfig"('x.y', 'z', false)`:   true,
		`SELECT u&"pg_adviso\0072y_lock"(4242)`:          true,
		`SELECT U&"!0070g_advisory_lock" UESCAPE '!'(1)`: true,
		`SELECT setseed(0.5)`:                            true,
		`SELECT pg_catalog.SETSEED(0.5)`:                 true,
		`SELECT 1 & 3, 'U&' AS u`:                        false,
		`SELECT "u&x" FROM t`:                            false,
		`SELECT random()`:                                false,
	} {
		if got := leavesSessionState(sql); got != want {
			t.Errorf("leavesSessionState(%q) = %t, want %t", sql, got, want)
		}
	}
}

// SET of a custom setting whose prefix reads like LOCAL, TRANSACTION or
// CONSTRAINTS is session-level; the keywords themselves are not.
func TestLeavesSessionStateDottedSetting(t *testing.T) {
	for sql, want := range map[string]bool{
		`SET local.x = 'v'`:               true,
		`SET LOCAL . x = 'v'`:             true,
		`SET transaction.x TO 1`:          true,
		`SET constraints /* c */ .x = 1`:  true,
		"SET local -- c\n.x = 1":          true,
		`SET LOCAL local.x = 'v'`:         false,
		`SET LOCAL search_path = a`:       false,
		`SET TRANSACTION READ ONLY`:       false,
		`SET CONSTRAINTS ALL DEFERRED`:    false,
		`SET local`:                       false,
		`SET LOCAL /* unterminated`:       false,
		`SET transaction_isolation = 'x'`: true,
		`SET SESSION local.x = 'v'`:       true,
		`SET "local".x = 'v'`:             true,
	} {
		if got := leavesSessionState(sql); got != want {
			t.Errorf("leavesSessionState(%q) = %t, want %t", sql, got, want)
		}
	}
}
