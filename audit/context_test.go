package audit_test

import (
	"testing"

	"github.com/landlordhq/landlord/audit"
)

// TestContextCheckFindings: a database whose verifier is unsigned while the
// installation records signed (a change cut short, or the verifier
// replaced, whatever its comment says) is an error; an installation that
// chose unsigned gets a warning that says what it leaves open; a database
// stricter than the record is not a finding.
func TestContextCheckFindings(t *testing.T) {
	t.Parallel()
	in := setup(t)
	super := superConn(t, in.db.Server.AdminURL(in.db.Name))
	const unsignedBody = `CREATE OR REPLACE VIEW landlord_context.verified WITH (security_barrier) AS
		SELECT NULLIF(current_setting('landlord.tenant_id', true), '')::uuid AS tenant_id;`
	unsignedErr := key{"context_unsigned", "view landlord_context.verified", "I31", sev}
	chosen := key{"context_check_unsigned", "view landlord_context.verified", "I31", wrn}
	for _, c := range []struct {
		name, seed, check string
		want              []key
	}{
		{"signed as recorded", "SELECT 1", "", nil},
		{"signed, recorded unsigned", "SELECT 1", "unsigned", nil},
		{"marked unsigned", `COMMENT ON VIEW landlord_context.verified IS 'unsigned'`, "", []key{unsignedErr}},
		{"unmarked", `COMMENT ON VIEW landlord_context.verified IS NULL`, "signed", []key{unsignedErr}},
		{"replaced, still marked signed", unsignedBody, "", []key{unsignedErr}},
		{"unsigned as recorded", unsignedBody + `COMMENT ON VIEW landlord_context.verified IS 'unsigned'`, "unsigned", []key{chosen}},
		{"unsigned, recorded signed", unsignedBody + `COMMENT ON VIEW landlord_context.verified IS 'unsigned'`, "signed", []key{unsignedErr}},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantFindings(t, seeded(t, super, c.seed, audit.Config{ContextCheck: c.check}), c.want...)
		})
	}
	if _, err := audit.Run(t.Context(), in.admin, audit.Config{ContextCheck: "lax"}); err == nil {
		t.Error(`ContextCheck "lax" was accepted`)
	}
}
