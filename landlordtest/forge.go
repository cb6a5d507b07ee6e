package landlordtest

import (
	"slices"
	"testing"

	"github.com/landlordhq/landlord/tenant"
)

// unsignedPredicate is the tenant predicate of the policies before the
// context was signed: it trusts a setting any SQL can change. The
// defense-off runs put it back.
const unsignedPredicate = `tenant_id = (NULLIF(current_setting('landlord.tenant_id', true), ''))::uuid`

// injectedWhere is the statement of an application that concatenates one
// string of the attacker's into a WHERE clause, around the attacker's
// input.
func injectedWhere(table, input string) string {
	return `SELECT x::text FROM ` + table + ` x WHERE x::text = '` + input + `'`
}

// forgeInExpression is the attacker's input for injectedWhere: no statement
// keyword of its own, only an expression that switches the context to B's
// (before the LATERAL subquery reads table, which it must) and a second
// branch that reads table again.
func forgeInExpression(table, settings string) string {
	return `' UNION ALL SELECT z.y::text FROM (SELECT ` + settings + ` AS c OFFSET 0) s ` +
		`CROSS JOIN LATERAL (SELECT y FROM ` + table + ` y WHERE s.c IS NOT NULL) z WHERE '' = '`
}

// attackI31ForgedContext: SQL inside A's transaction sets B's context by
// every means PostgreSQL offers (SECURITY.md, I31): set_config of B's id,
// in the schema model also SET ROLE, set_config('role') and RESET ROLE to
// B's role or the app role, and from inside an expression of an
// application's injectable statement. The context is signed for A and its
// role, so none of it shows B's rows. defense-off puts the unsigned
// predicate back at B's placement, where the same forgeries leak.
func (f *fx) attackI31ForgedContext(t *testing.T) {
	T := f.main.q()
	sel := `SELECT x::text FROM ` + T + ` x`
	toB := `set_config('landlord.tenant_id', '{B}', true)`
	unsigned := replacePolicies(f.main, policy(f.main, "landlordtest_unsigned", `USING (`+unsignedPredicate+`)`))

	t.Run("defense-off", func(t *testing.T) {
		f.mustLeak(t, f.at(t, f.b, stage{ddl: unsigned, pre: []string{`SELECT ` + toB}}, "", sel))
		f.mustLeak(t, f.at(t, f.b, stage{ddl: unsigned}, "", injectedWhere(T, forgeInExpression(T, toB))))
	})
	t.Run("defense-on", func(t *testing.T) {
		f.noLeak(t, f.at(t, f.b, stage{pre: []string{`SELECT ` + toB}}, "", sel))
		f.noLeak(t, f.at(t, f.b, stage{}, "", injectedWhere(T, forgeInExpression(T, toB))))
	})

	// B's table as A's SQL names it: the shared table in the row model,
	// B's schema in the schema model; in the database model B's tables are
	// in another database, so A forges on its own.
	bT := T
	if f.m == tenant.ModelSchema {
		bT = ident(f.b.Schema) + "." + T
	}
	roleB := literal(handleRole(f.b))
	cases := []struct {
		name   string
		models []tenant.Model
		pre    []string
		sql    string
		// union: the statement's first branch reads A's own rows; only
		// the forged second branch must come back empty.
		union bool
	}{
		{"set-config", tenant.Models, []string{`SELECT ` + toB}, `SELECT x::text FROM ` + bT + ` x`, false},
		{"set-config-session", tenant.Models, []string{`SELECT set_config('landlord.tenant_id', '{B}', false)`}, `SELECT x::text FROM ` + bT + ` x`, false},
		{"empty-signature", tenant.Models, []string{`SELECT ` + toB + `, set_config('landlord.tenant_sig', '', true)`}, `SELECT x::text FROM ` + bT + ` x`, false},
		{"in-an-expression", tenant.Models, nil, injectedWhere(T, forgeInExpression(bT, toB)), true},
		{"set-role", []tenant.Model{tenant.ModelSchema}, []string{`SET LOCAL ROLE ` + ident(f.b.ID.RoleName()), `SELECT ` + toB},
			`SELECT x::text FROM ` + bT + ` x`, false},
		{"set-config-role", []tenant.Model{tenant.ModelSchema}, []string{`SELECT set_config('role', ` + roleB + `, true), ` + toB},
			`SELECT x::text FROM ` + bT + ` x`, false},
		{"role-in-an-expression", []tenant.Model{tenant.ModelSchema}, nil,
			injectedWhere(T, forgeInExpression(bT, `set_config('role', `+roleB+`, true), `+toB)), true},
		{"reset-role", []tenant.Model{tenant.ModelSchema}, []string{`RESET ROLE`, `SELECT ` + toB}, `SELECT x::text FROM ` + bT + ` x`, false},
	}
	for _, c := range cases {
		if !slices.Contains(c.models, f.m) {
			continue
		}
		t.Run("handle/"+c.name, func(t *testing.T) {
			o := f.viaHandle(t, f.ctxA, c.pre, false, c.sql)
			f.noLeak(t, o)
			// Where the forgery got past the privileges, row-level
			// security showed nothing: not even A's own rows, since the
			// context is no one's.
			if o.err == nil && len(o.rows) != 0 && !c.union {
				t.Fatalf("a forged context read %d rows: %v", len(o.rows), o)
			}
		})
	}
}
