package audit

import "fmt"

// rlsBug is a PostgreSQL bug that lets a role see or change rows that
// row-level security should hide from it, and the first fixed minor release
// of each major version that got the fix.
type rlsBug struct {
	cve     string
	summary string
	fixed   map[int]int // major version -> first minor with the fix
}

// rlsBugs are the known row-level security bugs of the PostgreSQL versions
// Landlord may meet (SECURITY.md, I11). Sources: the PostgreSQL security pages
// https://www.postgresql.org/support/security/<CVE>/ and the release notes.
func rlsBugs() []rlsBug {
	return []rlsBug{{
		// Released 2023-05-11 with 15.3, 14.8, 13.11, 12.15 and 11.20: a query
		// planned under one role and executed under another applied the
		// first role's policies (role-specific policies after inlining).
		cve:     "CVE-2023-2455",
		summary: "row security policies disregard user ID changes after inlining",
		fixed:   map[int]int{15: 3, 14: 8, 13: 11, 12: 15, 11: 20},
	}, {
		// Released 2024-11-14 with 17.1, 16.5, 15.9, 14.14, 13.17 and 12.21:
		// the CVE-2023-2455 fix missed subqueries, WITH queries, security
		// invoker views and SQL functions, so a reused plan could apply
		// another role's policies.
		cve:     "CVE-2024-10976",
		summary: "row security below subqueries, WITH queries, security invoker views and SQL functions disregards user ID changes",
		fixed:   map[int]int{17: 1, 16: 5, 15: 9, 14: 14, 13: 17, 12: 21},
	}, {
		// Released with the same minors: rolling back SET SESSION
		// AUTHORIZATION, or a function's SET clause, could leave the session
		// at another user ID than before. Landlord's schema model switches
		// roles in every transaction.
		cve:     "CVE-2024-10978",
		summary: "SET ROLE and SET SESSION AUTHORIZATION can reset to the wrong user ID",
		fixed:   map[int]int{17: 1, 16: 5, 15: 9, 14: 14, 13: 17, 12: 21},
	}}
}

// affected reports whether major.minor has bug b, and the release to move
// to: the fixed minor of its major, or "" when the major never got the fix
// (it had reached its end of life). Majors newer than every fixed one were
// released with the fix.
func (b rlsBug) affected(major, minor int) (bool, string) {
	if fixed, ok := b.fixed[major]; ok {
		return minor < fixed, fmt.Sprintf("%d.%d", major, fixed)
	}
	oldest := -1
	for m := range b.fixed {
		if oldest < 0 || m < oldest {
			oldest = m
		}
	}
	return major < oldest, ""
}

// versionFindings returns one finding per known row-level security bug of
// the server, whose server_version_num is num and server_version is text.
func versionFindings(num int, text string) []Finding {
	major, minor := num/10000, num%100
	label := fmt.Sprint(major)
	if num < 100000 {
		// Before PostgreSQL 10 a major version had two parts (9.6.24 is
		// 90624); all of them are older than every fixed branch.
		label = fmt.Sprintf("%d.%d", major, num/100%100)
	}
	var out []Finding
	for _, b := range rlsBugs() {
		bad, fixedIn := b.affected(major, minor)
		if !bad {
			continue
		}
		fix := fmt.Sprintf("upgrade to PostgreSQL %s or a later %d minor release", fixedIn, major)
		if fixedIn == "" {
			fix = fmt.Sprintf("upgrade to a supported major version: PostgreSQL %s never got the fix", label)
		}
		out = append(out, Finding{
			Check:    "postgres_version",
			Severity: SeverityError,
			Object:   "server",
			Threat:   "I11",
			Message:  fmt.Sprintf("PostgreSQL %s has %s: %s", text, b.cve, b.summary),
			Fix:      fix,
		})
	}
	return out
}
