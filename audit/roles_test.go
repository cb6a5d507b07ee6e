package audit_test

import (
	"strings"
	"testing"

	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/provision"
)

// TestRoleSabotage seeds, as the superuser and rolled back, what tenant SQL
// can do to the roles Landlord relies on (SECURITY.md, I33), and what a
// hand can add to it, and expects exactly the finding of each: a changed
// or removed password, settings of the app, owner or a tenant role (also
// per database), attributes other than those the roles were created with,
// and memberships Landlord never grants. Each case has its own check, so
// removing a check fails its cases here.
func TestRoleSabotage(t *testing.T) {
	t.Parallel()
	in := setup(t)
	ctx := t.Context()
	var secret []byte
	if err := in.admin.QueryRow(ctx, `SELECT secret FROM landlord.installation`).Scan(&secret); err != nil {
		t.Fatal(err)
	}
	derived := provision.NewRoles("", "", secret).Password
	// landlord_app is shared by the installations of this server, each of
	// which sets its own password: every password case sets this one's
	// first, inside its transaction.
	own := "ALTER ROLE landlord_app PASSWORD " + ident.Literal(derived("landlord_app")) + ";"
	super := superConn(t, in.db.Server.AdminURL(in.db.Name))
	role := in.schema.ID.RoleName()
	for _, c := range []struct {
		name, seed string
		passwords  bool
		want       []key
	}{
		{"password as derived", own, true, nil},
		{"password changed", own + "ALTER ROLE landlord_app PASSWORD 'stolen'", true,
			[]key{{"role_password", "landlord_app", "I33", sev}}},
		{"password removed", own + "ALTER ROLE landlord_app PASSWORD NULL", true,
			[]key{{"role_password", "landlord_app", "I33", sev}}},
		{"app setting", "ALTER ROLE landlord_app SET default_transaction_read_only = on", false,
			[]key{{"role_setting", "landlord_app", "I33", sev}}},
		{"app setting in the database", "ALTER ROLE landlord_app IN DATABASE {d} SET statement_timeout = '1ms'", false,
			[]key{{"role_setting", "landlord_app", "I33", sev}}},
		{"owner setting", "ALTER ROLE landlord_owner SET work_mem = '64kB'", false,
			[]key{{"role_setting", "landlord_owner", "I33", sev}}},
		{"tenant role setting", "ALTER ROLE {r} IN DATABASE {d} SET search_path = public", false,
			[]key{{"role_setting", "{r}", "I33", sev}}},
		{"app attributes", "ALTER ROLE landlord_app INHERIT CREATEDB", false,
			[]key{{"role_attributes", "landlord_app", "I33", sev}}},
		{"owner may log in", "ALTER ROLE landlord_owner LOGIN", false,
			[]key{{"role_attributes", "landlord_owner", "I33", sev}}},
		{"tenant role may log in", "ALTER ROLE {r} LOGIN", false,
			[]key{{"role_attributes", "{r}", "I33", sev}}},
		{"app in another role", "CREATE ROLE i33_extra; GRANT i33_extra TO landlord_app", false,
			[]key{{"role_membership", "landlord_app", "I33", sev}}},
		{"a login in the owner", "CREATE ROLE i33_intruder LOGIN; GRANT landlord_owner TO i33_intruder", false,
			[]key{{"role_membership", "i33_intruder", "I33", sev}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			expand := strings.NewReplacer("{d}", ident.Quote(in.db.Name), "{r}", role).Replace
			cfg := audit.Config{}
			if c.passwords {
				cfg.Passwords = derived
			}
			want := make([]key, len(c.want))
			for i, k := range c.want {
				k.Object = expand(k.Object)
				want[i] = k
			}
			wantFindings(t, seeded(t, super, expand(c.seed), cfg), want...)
		})
	}
	// The administrator (pgtest_owner) cannot read pg_authid: the audit says
	// it could not check, as a warning.
	got, err := audit.Run(ctx, in.admin, audit.Config{Passwords: derived})
	if err != nil {
		t.Fatal(err)
	}
	wantFindings(t, got, key{"role_password_unchecked", "landlord_app", "I33", wrn})
}
