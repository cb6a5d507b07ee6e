package audit

import (
	"errors"
	"strings"
	"testing"
)

func TestVersionFindings(t *testing.T) {
	t.Parallel()
	const (
		c23 = "CVE-2023-2455"
		c76 = "CVE-2024-10976"
		c78 = "CVE-2024-10978"
	)
	// want maps each CVE the version has to a piece of its fix.
	for _, c := range []struct {
		num  int
		text string
		want map[string]string
	}{
		{150002, "15.2", map[string]string{c23: "15.3", c76: "15.9", c78: "15.9"}},
		{150003, "15.3", map[string]string{c76: "15.9", c78: "15.9"}},
		{150008, "15.8", map[string]string{c76: "15.9", c78: "15.9"}},
		{150009, "15.9", nil},
		{150018, "15.18", nil},
		{140007, "14.7", map[string]string{c23: "14.8", c76: "14.14", c78: "14.14"}},
		{140013, "14.13", map[string]string{c76: "14.14", c78: "14.14"}},
		{140014, "14.14", nil},
		{130016, "13.16", map[string]string{c76: "13.17", c78: "13.17"}},
		{130017, "13.17", nil},
		{120014, "12.14", map[string]string{c23: "12.15", c76: "12.21", c78: "12.21"}},
		{120020, "12.20", map[string]string{c76: "12.21", c78: "12.21"}},
		{120021, "12.21", nil},
		{110019, "11.19", map[string]string{c23: "11.20", c76: "PostgreSQL 11 never", c78: "PostgreSQL 11 never"}},
		{110020, "11.20", map[string]string{c76: "PostgreSQL 11 never", c78: "PostgreSQL 11 never"}},
		{160000, "16.0", map[string]string{c76: "16.5", c78: "16.5"}},
		{160004, "16.4", map[string]string{c76: "16.5", c78: "16.5"}},
		{160005, "16.5", nil},
		{170000, "17.0", map[string]string{c76: "17.1", c78: "17.1"}},
		{170001, "17.1", nil},
		{180000, "18.0", nil},
		{90624, "9.6.24", map[string]string{c23: "PostgreSQL 9.6 never", c76: "PostgreSQL 9.6 never", c78: "PostgreSQL 9.6 never"}},
	} {
		got := versionFindings(c.num, c.text)
		if len(got) != len(c.want) {
			t.Errorf("%s: %d finding(s), want %d: %+v", c.text, len(got), len(c.want), got)
		}
		for _, f := range got {
			if f.Check != "postgres_version" || f.Threat != "I11" || f.Severity != SeverityError || f.Object != "server" {
				t.Errorf("%s: finding %+v", c.text, f)
			}
			cve, _, _ := strings.Cut(strings.TrimPrefix(f.Message, "PostgreSQL "+c.text+" has "), ":")
			fix, ok := c.want[cve]
			if !ok || !strings.Contains(f.Fix, fix) {
				t.Errorf("%s: unexpected %q, fix %q (want %q in it)", c.text, f.Message, f.Fix, fix)
			}
		}
	}
}

func TestAsError(t *testing.T) {
	t.Parallel()
	warn := Finding{Check: "sequence_id", Severity: SeverityWarning, Object: "shared.t.id", Threat: "I17"}
	bad := func(o string) Finding {
		return Finding{Check: "rls_disabled", Severity: SeverityError, Object: o, Threat: "I03"}
	}
	if err := AsError(nil); err != nil {
		t.Errorf("no findings: %v", err)
	}
	if err := AsError([]Finding{warn, warn}); err != nil {
		t.Errorf("warnings only: %v", err)
	}
	err := AsError([]Finding{warn, bad("a"), bad("b"), bad("c"), bad("d"), bad("e")})
	if !errors.Is(err, ErrFindings) || !strings.Contains(err.Error(), "5 error finding(s)") ||
		!strings.Contains(err.Error(), "I03 a: rls_disabled") || !strings.Contains(err.Error(), "and 2 more") {
		t.Errorf("errors: %v", err)
	}
}

// TestCatalog keeps the catalog consistent: unique ids, a SECURITY.md id and
// a severity on each check, and every check in the one query.
func TestCatalog(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	sql := checksSQL()
	for _, c := range catalog() {
		if seen[c.id] {
			t.Errorf("duplicate check %q", c.id)
		}
		seen[c.id] = true
		if len(c.threat) != 3 || c.threat[0] != 'I' {
			t.Errorf("%s: threat %q", c.id, c.threat)
		}
		if c.severity != SeverityError && c.severity != SeverityWarning {
			t.Errorf("%s: severity %q", c.id, c.severity)
		}
		if !strings.Contains(sql, "SELECT '"+c.id+"'::text") {
			t.Errorf("%s: not in the query", c.id)
		}
	}
}
