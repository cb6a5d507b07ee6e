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
