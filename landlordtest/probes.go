package landlordtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// probe is one attack on the row-level layer: a statement A runs, how the
// defense is switched off (the leak must appear), how it runs with the
// defense on at B's placement (no leak), and through the handle (no leak).
type probe struct {
	id, name string
	// subject is the table or object the probe attacks.
	subject string
	sql     string
	args    []any
	off     stage
	on      stage
	// pre runs before the probe on the handle, in a transaction; with
	// write, the probe itself runs in one, rolled back.
	pre   []string
	write bool
	// leaked judges an outcome when a canary in the text is not the whole
	// story (existence oracles, damage seen by the superuser); nil means
	// "a canary in what A got".
	leaked func(o outcome) bool
	// live checks the handle's outcome shows the probe really ran, so a
	// clean result is not an accident (the leaky function did print A's
	// own rows, the cast did fail on A's own row).
	live func(o outcome) error
	// handleSetup runs as the superuser at A's placement, committed, before
	// the handle run, and handleUndo after it.
	handleSetup, handleUndo []string
	// models restricts the probe; nil means all three.
	models []tenant.Model
	// sql2 replaces sql on the handle.
	sql2 string
	// skip says why the probe cannot run on this subject.
	skip string
	// optional marks a probe of the application's own object: when even
	// the defense-off run shows nothing of B's, the object does not expose
	// B's rows and the probe is skipped instead of failed.
	optional bool
}

func noticesShow(s string) func(o outcome) error {
	return func(o outcome) error {
		if !strings.Contains(noticeText(o.notices), s) {
			return fmt.Errorf("no notice shows %q: the probe did not run on A's own rows", s)
		}
		return nil
	}
}

func errorShows(code, s string) func(o outcome) error {
	return func(o outcome) error {
		if !isPgCode(o.err, code) || !strings.Contains(errText(o.err), s) {
			return fmt.Errorf("want error %s showing %q, got %v", code, s, o.err)
		}
		return nil
	}
}

func returns(n int) func(o outcome) error {
	return func(o outcome) error {
		if o.err != nil || len(o.rows) != n {
			return fmt.Errorf("want %d rows, got %v", n, o)
		}
		return nil
	}
}

// changed judges by B's rows of the watched table: the attack wrote them.
func changed(o outcome) bool { return o.changed }

// crossed judges a write with B's tenant_id: it changed B's rows, or got
// past row-level security and stopped only at a constraint (a key B holds,
// a foreign key to a row B lacks), which PostgreSQL checks after the
// policies.
func crossed(o outcome) bool {
	return o.changed || isPgCode(o.err, "23505", "23503", "23514", "23502", "23P01")
}

// failsWith judges a leak by an error only B's rows can cause.
func failsWith(code string) func(outcome) bool {
	return func(o outcome) bool { return isPgCode(o.err, code) }
}

var (
	// noPruning makes the planner read every row of every partition, so
	// that a leaky function meets B's rows if it runs before the policies.
	noPruning = []string{`SET LOCAL enable_indexscan = off`, `SET LOCAL enable_bitmapscan = off`,
		`SET LOCAL enable_indexonlyscan = off`, `SET LOCAL enable_partition_pruning = off`}
	rlsError = errorShows("42501", "row-level security")
)

// noForce lets the owner skip row-level security on every tenant table.
func (f *fx) noForce() []string {
	var out []string
	for _, tb := range f.tables {
		out = append(out, `ALTER TABLE {s}.`+tb.q()+` NO FORCE ROW LEVEL SECURITY`)
	}
	return out
}

// policy returns a CREATE POLICY on tb.
func policy(tb *table, name, body string) string {
	return `CREATE POLICY ` + name + ` ON {s}.` + tb.q() + ` ` + body
}

// replacePolicies drops Landlord's policies from tb and creates the given
// ones instead.
func replacePolicies(tb *table, policies ...string) []string {
	return append([]string{
		`DROP POLICY ` + ident(migration.PolicyRestrictive) + ` ON {s}.` + tb.q(),
		`DROP POLICY ` + ident(migration.PolicyPermissive) + ` ON {s}.` + tb.q(),
	}, policies...)
}

// dedicatedRole creates the case's own role with attrs and the privileges
// A's traffic has.
func dedicatedRole(attrs string) []string {
	return []string{
		`CREATE ROLE {role} ` + attrs,
		`GRANT USAGE ON SCHEMA {s} TO {role}`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {role}`,
	}
}

// ownerDo runs statements as the owner role, for objects that must be owned
// like the application's.
func ownerDo(sqls ...string) []string {
	return append(append([]string{`SET LOCAL ROLE {owner}`}, sqls...), `RESET ROLE`)
}

// ownerDoSession is ownerDo for the committed statements of a handle run.
func ownerDoSession(sqls ...string) []string {
	return append(append([]string{`SET ROLE {owner}`}, sqls...), `RESET ROLE`)
}

// tableProbes returns the probes of one tenant table.
func (f *fx) tableProbes(t *testing.T, tb *table) []probe {
	T := tb.q()
	ST := `{s}.` + T
	sel := `SELECT x::text FROM ` + T + ` x`
	rowsA := returns(tb.nA)
	owner := stage{as: "owner"}
	ownerOff := stage{as: "owner", ddl: f.noForce()}
	aID := f.a.ID.String()

	// A's copies: a row of A's with fresh keys, as A's (aRow) and with B's
	// tenant_id (aToB).
	var aRow, aToB, victim row
	if tb.copyProblem == "" {
		aRow = f.row(t, tb, f.a, 2)
		victim = f.victim(t, tb)
		aToB = aRow.merge(victim)
	}
	needCopy := func(p probe) probe {
		if tb.copyProblem != "" && p.skip == "" {
			p.skip = "the kit cannot make rows of this table: " + tb.copyProblem
		}
		return p
	}
	insertArgs := func(r row) []any {
		if r == nil {
			return nil
		}
		return []any{r.String()}
	}
	// Writes across tenants open every table: triggers write on.
	var openPolicies, checkOnlyUsing []string
	for _, x := range f.tables {
		openPolicies = append(openPolicies, replacePolicies(x, policy(x, "landlordtest_open", `USING (true) WITH CHECK (true)`))...)
		checkOnlyUsing = append(checkOnlyUsing, replacePolicies(x, policy(x, "landlordtest_read", `USING (`+migration.TenantPredicate+`) WITH CHECK (true)`))...)
	}
	lax := func(using string) []string {
		return replacePolicies(tb, policy(tb, "landlordtest_lax", `USING (`+using+`)`))
	}
	permissiveTrue := policy(tb, "landlordtest_open", `USING (true) WITH CHECK (true)`)
	watch := func(s stage) stage { s.watch = tb; return s }
	// A's rows written at B's placement of the schema and database models
	// find none of A's rows they refer to there: the foreign keys of the
	// table go for the transaction.
	var noFKs []string
	for _, k := range tb.fks {
		noFKs = append(noFKs, `ALTER TABLE `+ST+` DROP CONSTRAINT `+ident(k.name))
	}

	// The leaky function takes the columns themselves: a whole-row value
	// of a partitioned table reaches it through a conversion PostgreSQL
	// does not count as leakproof, which would keep it after the policies
	// whatever the function is.
	var params, args []string
	for i, c := range tb.cols {
		params = append(params, fmt.Sprintf("a%d %s", i, c.typ))
		args = append(args, fmt.Sprintf("a%d", i))
	}
	leakSig := `{s}.landlordtest_leak(` + strings.Join(params, ", ") + `)`
	leakCall := `landlordtest_leak(` + tb.colList("x.") + `)`
	leakFn := `CREATE FUNCTION ` + leakSig + ` RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	RAISE NOTICE 'landlordtest_leak => %', concat_ws(',', ` + strings.Join(args, ", ") + `);
	RETURN true;
END $$`
	leakFnDrop := `DROP FUNCTION IF EXISTS ` + leakSig
	leakProof := `ALTER FUNCTION ` + leakSig + ` LEAKPROOF`
	leakOp := []string{`CREATE FUNCTION {s}.landlordtest_leak_op(uuid, text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	RAISE NOTICE 'landlordtest_leak_op => % %', $1, $2;
	RETURN true;
END $$`, `CREATE OPERATOR {s}.<<<~ (PROCEDURE = {s}.landlordtest_leak_op, LEFTARG = uuid, RIGHTARG = text)`}
	leakOpDrop := `DROP FUNCTION IF EXISTS {s}.landlordtest_leak_op(uuid, text) CASCADE`
	view := func(options string) []string {
		return append(ownerDo(`CREATE VIEW {s}.landlordtest_view `+options+` AS SELECT * FROM `+ST),
			`GRANT SELECT ON {s}.landlordtest_view TO {roleA}`)
	}
	viewSession := func(options string) []string {
		return append(ownerDoSession(`CREATE VIEW {s}.landlordtest_view `+options+` AS SELECT * FROM `+ST),
			`GRANT SELECT ON {s}.landlordtest_view TO {roleA}`)
	}
	viewDrop := `DROP VIEW IF EXISTS {s}.landlordtest_view CASCADE`
	leakViewFn := `CREATE FUNCTION {s}.landlordtest_leak_view(` + strings.Join(params, ", ") + `) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS $$
BEGIN
	RAISE NOTICE 'landlordtest_leak_view => %', concat_ws(',', ` + strings.Join(args, ", ") + `);
	RETURN true;
END $$`
	leakViewSig := `{s}.landlordtest_leak_view(` + strings.Join(params, ", ") + `)`
	definer := func(pinned bool) []string {
		body := `LANGUAGE sql STABLE SECURITY DEFINER SET search_path = {s}, pg_temp AS $$ ` + sel + ` $$`
		if !pinned {
			body = `LANGUAGE plpgsql STABLE SECURITY DEFINER AS $$ BEGIN RETURN QUERY EXECUTE ` + literal(sel) + `; END $$`
		}
		return []string{`CREATE FUNCTION {s}.landlordtest_definer() RETURNS SETOF text ` + body,
			`ALTER FUNCTION {s}.landlordtest_definer() OWNER TO {owner}`}
	}
	definerDrop := `DROP FUNCTION IF EXISTS {s}.landlordtest_definer()`
	check := `ALTER TABLE ` + ST + ` ADD CONSTRAINT landlordtest_check CHECK (false) NOT VALID`
	checkDrop := `ALTER TABLE ` + ST + ` DROP CONSTRAINT IF EXISTS landlordtest_check`
	matview := append(ownerDo(`CREATE MATERIALIZED VIEW {s}.landlordtest_mv AS SELECT * FROM `+ST+` WITH NO DATA`),
		`GRANT SELECT ON {s}.landlordtest_mv TO {roleA}`)
	planAsB := []string{
		`SET LOCAL plan_cache_mode = force_generic_plan`,
		`SELECT set_config('landlord.tenant_id', '{B}', true)`,
		`PREPARE landlordtest_q AS ` + sel,
		`EXECUTE landlordtest_q`, `EXECUTE landlordtest_q`,
		`SELECT set_config('landlord.tenant_id', '{A}', true)`,
	}
	deallocate := []string{`DEALLOCATE landlordtest_q`}
	forge := func(definer bool) []string {
		sec := ""
		if definer {
			sec = "SECURITY DEFINER"
		}
		return []string{
			`CREATE FUNCTION {s}.landlordtest_forge() RETURNS trigger LANGUAGE plpgsql ` + sec + ` AS $$
BEGIN
	IF pg_trigger_depth() = 1 THEN
		` + tb.insertFrom(T, `jsonb_populate_record(NEW, `+tb.freshExprs("NEW", 4)+` || current_setting('landlordtest.victim')::jsonb)`) + `;
	END IF;
	RETURN NEW;
END $$`,
			`ALTER FUNCTION {s}.landlordtest_forge() OWNER TO {owner}`,
			`CREATE TRIGGER landlordtest_forge AFTER INSERT ON ` + ST + ` FOR EACH ROW EXECUTE FUNCTION {s}.landlordtest_forge()`,
		}
	}
	// The victim (B's tenant_id and references) travels in a setting, so
	// that no error's text of the trigger's statement carries B's values.
	setVictim := []string{`SELECT set_config('landlordtest.victim', ` + literal(victim.String()) + `, true)`}
	forgeDrop := []string{`DROP TRIGGER IF EXISTS landlordtest_forge ON ` + ST, `DROP FUNCTION IF EXISTS {s}.landlordtest_forge()`}

	ps := []probe{
		// I01: the table owner skips row-level security unless it is forced.
		{id: "I01", name: "owner-reads", sql: sel, off: ownerOff, on: owner, live: rowsA},
		{id: "I01", name: "owner-updates", write: true, sql: `UPDATE ` + T + ` x SET tenant_id = x.tenant_id RETURNING x::text`,
			off: ownerOff, on: owner, live: rowsA},

		// I02: BYPASSRLS, superuser, row_security = off.
		{id: "I02", name: "bypassrls-role", sql: sel,
			off: stage{as: "dedicated", ddl: dedicatedRole("BYPASSRLS")},
			on:  stage{as: "dedicated", ddl: dedicatedRole("NOBYPASSRLS")}, live: rowsA},
		{id: "I02", name: "superuser", sql: sel, off: stage{as: "super"}, on: stage{}, live: rowsA},
		{id: "I02", name: "row-security-off", sql: sel,
			off: stage{as: "dedicated", ddl: dedicatedRole("BYPASSRLS"), pre: []string{`SET LOCAL row_security = off`}},
			on:  stage{pre: []string{`SET LOCAL row_security = off`}},
			pre: []string{`SET LOCAL row_security = off`},
			// PostgreSQL refuses rather than filters.
			live: rlsError},

		// I04: a later permissive policy must not widen access.
		{id: "I04", name: "permissive-true", sql: sel,
			off: stage{ddl: openPolicies}, on: stage{ddl: []string{permissiveTrue}},
			handleSetup: []string{permissiveTrue}, handleUndo: []string{`DROP POLICY landlordtest_open ON ` + ST},
			live: rowsA},
		needCopy(probe{id: "I04", name: "permissive-true-write", write: true, sql: tb.insert(T), args: insertArgs(aToB),
			off: watch(stage{ddl: openPolicies}), on: watch(stage{ddl: []string{permissiveTrue}}),
			handleSetup: []string{permissiveTrue}, handleUndo: []string{`DROP POLICY landlordtest_open ON ` + ST},
			leaked: crossed, live: rlsError}),

		// I05: an unset or empty context sees nothing and writes nothing.
		{id: "I05", name: "unset-context-reads", sql: sel, live: rowsA,
			off: stage{setting: "unset", ddl: lax(`tenant_id = coalesce(nullif(current_setting('landlord.tenant_id', true), '')::uuid, tenant_id)`)},
			on:  stage{setting: "unset"}},
		{id: "I05", name: "empty-context-reads", sql: sel, live: rowsA,
			off: stage{setting: "empty", ddl: lax(`tenant_id = coalesce(nullif(current_setting('landlord.tenant_id', true), '')::uuid, tenant_id)`)},
			on:  stage{setting: "empty"}},
		needCopy(probe{id: "I05", name: "unset-context-writes", write: true, sql: tb.insert(T), args: insertArgs(aToB),
			off:    watch(stage{setting: "unset", ddl: checkOnlyUsing}),
			on:     watch(stage{setting: "unset"}),
			leaked: crossed, live: rlsError}),
		{id: "I05", name: "garbage-context", sql: sel, live: rowsA,
			off: stage{setting: "garbage", ddl: lax(`tenant_id::text = current_setting('landlord.tenant_id', true) OR current_setting('landlord.tenant_id', true) !~ '^[0-9a-f-]{36}$'`)},
			on:  stage{setting: "not-a-uuid"}},

		// I08: a view runs as its owner, who is subject to FORCE.
		{id: "I08", name: "owner-view", sql: `SELECT x::text FROM landlordtest_view x`,
			off:         stage{ddl: append(view(""), f.noForce()...)},
			on:          stage{ddl: view("")},
			handleSetup: viewSession(""), handleUndo: []string{viewDrop}, live: rowsA},
		{id: "I08", name: "invoker-view", sql: `SELECT x::text FROM landlordtest_view x`,
			off: stage{ddl: append(append(view("WITH (security_invoker = true)"),
				`ALTER VIEW {s}.landlordtest_view SET (security_invoker = false)`), f.noForce()...)},
			on:          stage{ddl: append(view("WITH (security_invoker = true)"), f.noForce()...)},
			handleSetup: viewSession("WITH (security_invoker = true)"), handleUndo: []string{viewDrop}, live: rowsA},

		// I09: SECURITY DEFINER functions run as the owner, who is forced.
		{id: "I09", name: "definer-pinned", sql: `SELECT x FROM landlordtest_definer() x`,
			off: stage{ddl: append(definer(true), f.noForce()...)}, on: stage{ddl: definer(true)},
			handleSetup: definer(true), handleUndo: []string{definerDrop}, live: rowsA},
		{id: "I09", name: "definer-unpinned", sql: `SELECT x FROM landlordtest_definer() x`,
			off: stage{ddl: append(definer(false), f.noForce()...)}, on: stage{ddl: definer(false)},
			handleSetup: definer(false), handleUndo: []string{definerDrop}, live: rowsA},

		// I10: leaky functions and operators run after the policies.
		{id: "I10", name: "leaky-function", sql: `SELECT 1 FROM ` + T + ` x WHERE ` + leakCall,
			off: stage{ddl: []string{leakFn, leakProof}, pre: noPruning}, on: stage{ddl: []string{leakFn}, pre: noPruning},
			pre: noPruning, handleSetup: []string{leakFn}, handleUndo: []string{leakFnDrop}, live: noticesShow(aID)},
		{id: "I10", name: "leaky-operator", sql: `SELECT 1 FROM ` + T + ` x WHERE x.tenant_id <<<~ 'x'`,
			off: stage{ddl: append(slices.Clone(leakOp), `ALTER FUNCTION {s}.landlordtest_leak_op(uuid, text) LEAKPROOF`), pre: noPruning},
			on:  stage{ddl: leakOp, pre: noPruning},
			pre: noPruning, handleSetup: leakOp, handleUndo: []string{leakOpDrop}, live: noticesShow(aID)},
		{id: "I10", name: "leaky-function-in-join", sql: `SELECT g FROM generate_series(1, 3) g JOIN ` + T + ` x ON ` + leakCall + ` AND g > 0`,
			off: stage{ddl: []string{leakFn, leakProof}, pre: noPruning}, on: stage{ddl: []string{leakFn}, pre: noPruning},
			pre: noPruning, handleSetup: []string{leakFn}, handleUndo: []string{leakFnDrop}, live: noticesShow(aID)},
		{id: "I10", name: "leaky-function-in-subquery", sql: `SELECT (SELECT count(*) FROM ` + T + ` x WHERE ` + leakCall + ` OR x.tenant_id IS NULL)`,
			off: stage{ddl: []string{leakFn, leakProof}, pre: noPruning}, on: stage{ddl: []string{leakFn}, pre: noPruning},
			pre: noPruning, handleSetup: []string{leakFn}, handleUndo: []string{leakFnDrop}, live: noticesShow(aID)},
		{id: "I10", name: "leaky-function-through-view", sql: `SELECT 1 FROM landlordtest_view x WHERE landlordtest_leak_view(` + tb.colList("x.") + `)`,
			off: stage{ddl: append(view(""), leakViewFn, `ALTER FUNCTION `+leakViewSig+` LEAKPROOF`), pre: noPruning},
			on:  stage{ddl: append(view(""), leakViewFn), pre: noPruning},
			pre: noPruning, handleSetup: append(viewSession(""), leakViewFn), handleUndo: []string{viewDrop, `DROP FUNCTION IF EXISTS ` + leakViewSig}, live: noticesShow(aID)},
		{id: "I10", name: "leaky-function-owner", sql: `SELECT 1 FROM ` + T + ` x WHERE ` + leakCall,
			off: stage{as: "owner", ddl: append([]string{leakFn}, f.noForce()...), pre: noPruning},
			on:  stage{as: "owner", ddl: []string{leakFn}, pre: noPruning},
			pre: noPruning, handleSetup: []string{leakFn}, handleUndo: []string{leakFnDrop}, live: noticesShow(aID)},
		{id: "I10", name: "division-oracle", sql: `SELECT 1 FROM ` + T + ` x WHERE 1 / (CASE WHEN x.tenant_id = '{B}' THEN 0 ELSE 1 END) = 1`,
			off: stage{as: "owner", ddl: f.noForce(), pre: noPruning}, on: stage{pre: noPruning}, pre: noPruning,
			leaked: failsWith("22012"), live: rowsA},
		// pg_stats hides the statistics of a table with row-level
		// security; any row it shows describes B's values (a table of one
		// row has no common values or histogram to show them in).
		{id: "I10", name: "statistics",
			sql: `SELECT attname, coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '') FROM pg_stats WHERE tablename = ` + literal(tb.name),
			off: stage{ddl: []string{`ANALYZE ` + ST, `ALTER TABLE ` + ST + ` DISABLE ROW LEVEL SECURITY`}},
			on:  stage{ddl: []string{`ANALYZE ` + ST}}, handleSetup: []string{`ANALYZE ` + ST},
			leaked: func(o outcome) bool { return len(o.rows) > 0 }, live: returns(0)},

		// I19: a cached generic plan must not carry the context it was
		// planned in. B plans, A executes.
		{id: "I19", name: "generic-plan-context", sql: `EXECUTE landlordtest_q`,
			off: stage{ddl: append([]string{
				`CREATE FUNCTION {s}.landlordtest_tenant() RETURNS uuid LANGUAGE sql IMMUTABLE AS $$ SELECT nullif(current_setting('landlord.tenant_id', true), '')::uuid $$`},
				replacePolicies(tb, policy(tb, "landlordtest_folded", `USING (tenant_id = {s}.landlordtest_tenant())`))...),
				pre: planAsB, cleanup: deallocate},
			on:   stage{pre: planAsB, cleanup: deallocate},
			sql2: sel, pre: []string{`SET LOCAL plan_cache_mode = force_generic_plan`}, live: rowsA},

		// I12 and I29: errors caused by, and texts carrying, B's values.
		{id: "I12", name: "cast-error-where", sql: `SELECT 1 FROM ` + T + ` x WHERE x.tenant_id = '{B}' AND x::text::int = 0`,
			off: ownerOff, on: stage{}, live: returns(0)},
		{id: "I12", name: "cast-error-select", sql: `SELECT x::text::int FROM ` + T + ` x WHERE x.tenant_id <> '{A}'`,
			off: ownerOff, on: stage{}, live: returns(0)},
		{id: "I12", name: "cast-error-own-rows", sql: `SELECT x::text::int FROM ` + T + ` x`,
			off: stage{as: "owner", ddl: f.noForce(), sql: `SELECT x::text::int FROM ` + T + ` x WHERE x.tenant_id = '{B}'`}, on: stage{},
			live: errorShows("22P02", aID)},
		{id: "I12", name: "check-violation", write: true, sql: `UPDATE ` + T + ` x SET tenant_id = x.tenant_id WHERE x.tenant_id = '{B}' RETURNING 1`,
			off: stage{as: "owner", ddl: append([]string{check}, f.noForce()...)}, on: stage{ddl: []string{check}},
			handleSetup: []string{check}, handleUndo: []string{checkDrop}, live: returns(0)},
		{id: "I12", name: "check-violation-detail", write: true, sql: `UPDATE ` + T + ` x SET tenant_id = x.tenant_id RETURNING 1`,
			off: stage{as: "owner", ddl: append([]string{check}, f.noForce()...),
				sql: `UPDATE ` + T + ` x SET tenant_id = x.tenant_id WHERE x.tenant_id = '{B}' RETURNING 1`},
			on:          stage{ddl: []string{check}},
			handleSetup: []string{check}, handleUndo: []string{checkDrop},
			// PostgreSQL itself leaves the failing row out of the detail
			// when row-level security applies.
			live: errorShows("23514", "landlordtest_check")},

		// I13: TRUNCATE and REFERENCES ignore row-level security; they are
		// never granted.
		{id: "I13", name: "truncate", write: true, sql: `TRUNCATE ` + T + ` CASCADE`,
			off:    watch(stage{ddl: []string{`GRANT TRUNCATE ON ALL TABLES IN SCHEMA {s} TO {roleA}`}}),
			on:     watch(stage{}),
			leaked: changed, live: errorShows("42501", tb.name)},
		{id: "I13", name: "references-truncate-trigger-privileges",
			sql: fmt.Sprintf(`SELECT has_table_privilege(%[1]s, 'REFERENCES') OR has_table_privilege(%[1]s, 'TRUNCATE') OR has_table_privilege(%[1]s, 'TRIGGER')`,
				literal(`{s}.`+T)),
			off:    stage{ddl: []string{`GRANT REFERENCES ON ` + ST + ` TO {roleA}`}},
			on:     stage{},
			leaked: func(o outcome) bool { return fmt.Sprint(o.rows) == "[[true]]" }, live: returns(1)},

		// I14: writing B's tenant_id, moving rows to B, writing B's rows.
		needCopy(probe{id: "I14", name: "insert-b-tenant-id", write: true, sql: tb.insert(T), args: insertArgs(aToB),
			off: watch(stage{ddl: checkOnlyUsing}), on: watch(stage{}),
			leaked: crossed, live: rlsError}),
		needCopy(probe{id: "I14", name: "move-row-to-b", write: true,
			sql: fmt.Sprintf(`UPDATE %[1]s x SET tenant_id = '{B}', %[2]s WHERE x.tenant_id = '{A}' AND x::text = (SELECT y::text FROM %[1]s y WHERE y.tenant_id = '{A}' ORDER BY %[3]s LIMIT 1) RETURNING x::text`,
				T, tb.setFresh("x", 5), tb.orderBy("y")),
			off: watch(stage{ddl: openPolicies}), on: watch(stage{}),
			leaked: crossed, live: rlsError,
			// In the other models A's rows are not at B's placement at all.
			models: []tenant.Model{tenant.ModelRow}}),
		{id: "I14", name: "update-everything", write: true, sql: `UPDATE ` + T + ` x SET tenant_id = x.tenant_id RETURNING 1`,
			off: watch(ownerOff), on: watch(stage{}), leaked: changed, live: rowsA},
		{id: "I14", name: "delete-everything", write: true, sql: `DELETE FROM ` + T + ` x RETURNING 1`,
			off:    watch(stage{as: "owner", ddl: f.noForce(), sql: `DELETE FROM ` + T + ` x WHERE x.tenant_id = '{B}' RETURNING 1`}),
			on:     watch(stage{}),
			leaked: changed, live: func(o outcome) error {
				// A table other tables refer to keeps A's own rows.
				if isPgCode(o.err, "23503") && strings.Contains(errText(o.err), tb.name) {
					return nil
				}
				return rowsA(o)
			}},
		needCopy(probe{id: "I14", name: "copy-rows-across", write: true,
			sql: tb.insertFrom(T, `(SELECT (jsonb_populate_record(x, `+tb.freshExprs("x", 6)+`)).* FROM `+T+` x)`, "tenant_id") + ` RETURNING n::text`,
			off: stage{as: "owner", ddl: append(f.noForce(), noFKs...),
				sql: tb.insertFrom(T, `(SELECT (jsonb_populate_record(x, `+tb.freshExprs("x", 6)+`)).* FROM `+T+` x WHERE x.tenant_id = '{B}')`, "tenant_id") + ` RETURNING n::text`},
			on: stage{}, live: rowsA, skip: unrecognisable(tb)}),
		{id: "I14", name: "update-from-join", write: true,
			sql: `UPDATE ` + T + ` i SET tenant_id = i.tenant_id FROM ` + T + ` p WHERE p.tenant_id = '{B}' RETURNING p::text`,
			off: ownerOff, on: stage{}, live: returns(0)},
		{id: "I14", name: "delete-using-join", write: true,
			sql: `DELETE FROM ` + T + ` i USING ` + T + ` p WHERE p.tenant_id = '{B}' AND i.tableoid = p.tableoid AND i.ctid = p.ctid RETURNING p::text`,
			off: ownerOff, on: stage{}, live: returns(0)},

		// I16: a materialized view holds what its refresher saw.
		{id: "I16", name: "matview-refreshed", sql: `SELECT x::text FROM landlordtest_mv x`,
			// REFRESH runs the query as the view's owner, even for a
			// superuser, so FORCE and the missing context keep it empty.
			off: stage{ddl: append(append(slices.Clone(matview), f.noForce()...), `REFRESH MATERIALIZED VIEW {s}.landlordtest_mv`)},
			on:  stage{ddl: append(slices.Clone(matview), `REFRESH MATERIALIZED VIEW {s}.landlordtest_mv`)},
			handleSetup: append(ownerDoSession(`CREATE MATERIALIZED VIEW {s}.landlordtest_mv AS SELECT * FROM `+ST+` WITH NO DATA`,
				`REFRESH MATERIALIZED VIEW {s}.landlordtest_mv`), `GRANT SELECT ON {s}.landlordtest_mv TO {roleA}`),
			handleUndo: []string{`DROP MATERIALIZED VIEW IF EXISTS {s}.landlordtest_mv`},
			live:       returns(0)},

		// I24: a trigger cannot write B's tenant_id, unless it runs as an
		// owner that skips row-level security.
		needCopy(probe{id: "I24", name: "trigger-forges-tenant", write: true, sql: tb.insert(T), args: insertArgs(aRow),
			off:         watch(stage{ddl: append(append(forge(true), f.noForce()...), noFKs...), pre: setVictim}),
			on:          watch(stage{ddl: append(forge(false), noFKs...), pre: setVictim}),
			pre:         setVictim,
			handleSetup: forge(false), handleUndo: forgeDrop,
			leaked: changed, live: rlsError,
			skip: tb.crossProblem}),
	}

	// I14: a row of A's that takes B's key values, in the upsert that would
	// overwrite B's row.
	if pk := tb.primary(); pk != nil && pk.plain && len(pk.cols) > 0 {
		p := probe{id: "I14", name: "upsert-b-key", write: true, leaked: changed, live: rlsError}
		p.skip = f.needKey(tb, *pk)
		if p.skip == "" {
			onConflict := fmt.Sprintf(` ON CONFLICT (tenant_id, %s) DO UPDATE SET tenant_id = EXCLUDED.tenant_id RETURNING 1`, identList(pk.cols))
			p.sql, p.args = tb.insert(T)+onConflict, insertArgs(f.withKey(t, tb, *pk).with("tenant_id", f.b.ID.String()))
			p.off, p.on = watch(stage{ddl: openPolicies}), watch(stage{})
		}
		ps = append(ps, needCopy(p))
		m := probe{id: "I14", name: "merge", write: true, leaked: changed, skip: f.needKey(tb, *pk)}
		if m.skip == "" {
			m.sql = fmt.Sprintf(`MERGE INTO %s t USING (SELECT 1) s ON %s WHEN MATCHED THEN UPDATE SET tenant_id = t.tenant_id`, T, tb.keyMatch("t", tb.bOnly))
			m.off, m.on = watch(ownerOff), watch(stage{})
		}
		ps = append(ps, m)
	}

	// I12: unique keys and foreign keys ignore row-level security; keys led
	// by tenant_id never meet B's rows, so they reveal nothing of them.
	for _, u := range tb.uniques {
		if !u.plain || len(u.cols) == 0 {
			continue
		}
		name := "unique-oracle"
		if u.primary {
			name = "primary-key-oracle"
		}
		p := probe{id: "I12", name: name, subject: tb.name + "/" + u.name, write: true,
			leaked: failsWith("23505"), live: returns(1), skip: f.needKey(tb, u)}
		if tb.partitioned && p.skip == "" {
			// The off run's index without tenant_id cannot exist there.
			p.skip = "a unique index of a partitioned table must hold its partition key"
		}
		// With the defense off the conflict finds B's row, whose update
		// the policies refuse: A learns that it exists.
		c := probe{id: "I12", name: "on-conflict-oracle", subject: tb.name + "/" + u.name, write: true,
			leaked: failsWith("42501"), live: returns(1), skip: p.skip}
		if p.skip == "" {
			r := f.withKey(t, tb, u)
			var vals []string
			for _, col := range u.cols {
				vals = append(vals, valueLiteral(r[col], tb.column(col).typ))
			}
			pred := fmt.Sprintf(`tenant_id = '{B}' OR (%s) = (%s)`, identList(u.cols), strings.Join(vals, ", "))
			global := fmt.Sprintf(`CREATE UNIQUE INDEX landlordtest_global ON %s (%s) WHERE %s`, ST, identList(u.cols), pred)
			p.sql, p.args = tb.insert(T)+` RETURNING 1`, insertArgs(r)
			p.off, p.on = stage{ddl: append([]string{global}, noFKs...)}, stage{ddl: noFKs}
			c.sql, c.args = tb.insert(T)+fmt.Sprintf(` ON CONFLICT (tenant_id, %s) DO UPDATE SET tenant_id = EXCLUDED.tenant_id RETURNING 1`, identList(u.cols)), insertArgs(r)
			c.on = stage{ddl: noFKs}
			c.off = stage{ddl: append([]string{global}, noFKs...), args: insertArgs(r),
				sql: tb.insert(T) + fmt.Sprintf(` ON CONFLICT (%s) WHERE %s DO UPDATE SET tenant_id = EXCLUDED.tenant_id RETURNING 1`, identList(u.cols), pred)}
		}
		ps = append(ps, needCopy(p), needCopy(c))
	}
	for _, k := range tb.fks {
		p := probe{id: "I12", name: "foreign-key-oracle", subject: tb.name + "/" + k.name, write: true,
			leaked: func(o outcome) bool { return o.err == nil }, live: errorShows("23503", tb.name)}
		ref := f.table(k.ref)
		switch {
		case ref == nil || ref.bOnly == nil:
			p.skip = "the kit could not give B a row of " + k.ref + " that A lacks"
		case tb.copyProblem == "":
			r := aRow
			for i, c := range k.cols {
				r = r.with(c, ref.bOnly[k.refCols[i]])
			}
			p.sql, p.args = tb.insert(T)+` RETURNING 1`, insertArgs(r)
			// The reference to B's parent succeeds where the key leaves
			// tenant_id out: the check ignores row-level security, so A
			// learns that it exists.
			p.off = stage{ddl: []string{
				`CREATE TABLE {s}.landlordtest_parent (tenant_id uuid NOT NULL DEFAULT nullif(current_setting('landlord.tenant_id', true), '')::uuid, id bigint PRIMARY KEY)`,
				`INSERT INTO {s}.landlordtest_parent VALUES ('{B}', 50)`,
				`CREATE TABLE {s}.landlordtest_child (tenant_id uuid NOT NULL DEFAULT nullif(current_setting('landlord.tenant_id', true), '')::uuid, id bigint, parent_id bigint REFERENCES {s}.landlordtest_parent (id))`,
				`ALTER TABLE {s}.landlordtest_parent ENABLE ROW LEVEL SECURITY`, `ALTER TABLE {s}.landlordtest_parent FORCE ROW LEVEL SECURITY`,
				`ALTER TABLE {s}.landlordtest_child ENABLE ROW LEVEL SECURITY`, `ALTER TABLE {s}.landlordtest_child FORCE ROW LEVEL SECURITY`,
				`CREATE POLICY p ON {s}.landlordtest_parent USING (` + migration.TenantPredicate + `)`,
				`CREATE POLICY p ON {s}.landlordtest_child USING (` + migration.TenantPredicate + `)`,
				`GRANT SELECT, INSERT ON {s}.landlordtest_parent, {s}.landlordtest_child TO {roleA}`},
				sql: `INSERT INTO landlordtest_child (id, parent_id) VALUES (1, 50) RETURNING id`}
			p.on = stage{}
		}
		ps = append(ps, needCopy(p))
	}

	// I15: the partitions of a partitioned tenant table, read and written
	// directly.
	if tb.partitioned && len(tb.leaves) > 0 {
		var reads, updates, disable []string
		for i, l := range tb.leaves {
			reads = append(reads, `SELECT x::text FROM `+ident(l)+` x`)
			updates = append(updates, fmt.Sprintf(`u%d AS (UPDATE %s x SET tenant_id = x.tenant_id RETURNING x::text AS r)`, i, ident(l)))
			disable = append(disable, `ALTER TABLE {s}.`+ident(l)+` DISABLE ROW LEVEL SECURITY`)
		}
		var all []string
		for i := range tb.leaves {
			all = append(all, fmt.Sprintf(`SELECT r FROM u%d`, i))
		}
		pB := ident(tb.partB)
		ps = append(ps,
			probe{id: "I15", name: "read-partitions", sql: strings.Join(reads, " UNION ALL "),
				off: stage{ddl: disable}, on: stage{}, live: rowsA},
			needCopy(probe{id: "I15", name: "write-b-partition", write: true, sql: tb.insert(pB), args: insertArgs(aToB),
				off: watch(stage{ddl: []string{`ALTER TABLE {s}.` + pB + ` DISABLE ROW LEVEL SECURITY`}}), on: watch(stage{}),
				leaked: crossed, live: rlsError}),
			probe{id: "I15", name: "update-b-partition", write: true, sql: `UPDATE ` + pB + ` x SET tenant_id = x.tenant_id RETURNING 1`,
				off: watch(stage{ddl: []string{`ALTER TABLE {s}.` + pB + ` DISABLE ROW LEVEL SECURITY`}}), on: watch(stage{}),
				leaked: changed},
			probe{id: "I15", name: "update-partitions", write: true, sql: `WITH ` + strings.Join(updates, ", ") + ` ` + strings.Join(all, " UNION ALL "),
				off: stage{ddl: disable}, on: stage{}, live: rowsA},
		)
	}
	for i := range ps {
		if ps[i].subject == "" {
			ps[i].subject = tb.name
		}
	}
	return ps
}

// unrecognisable says why copies of B's rows without B's id are not
// recognisable, or "".
func unrecognisable(tb *table) string {
	if tb.recognisable {
		return ""
	}
	return "B's rows of this table hold no value the kit recognises without B's id"
}

// insertFrom returns an INSERT into target, aliased n, of the insertable
// columns but skip, taken from the rows of source, aliased r.
func (tb *table) insertFrom(target, source string, skip ...string) string {
	return fmt.Sprintf(`INSERT INTO %s AS n (%s) SELECT %s FROM %s r`, target, tb.colList("", skip...), tb.colList("r.", skip...), source)
}

func identList(cols []string) string {
	var q []string
	for _, c := range cols {
		q = append(q, ident(c))
	}
	return strings.Join(q, ", ")
}

// needKey says why A cannot take the values of u that B's extra row has, or
// "".
func (f *fx) needKey(tb *table, u unique) string {
	switch {
	case tb.copyProblem != "":
		return "the kit cannot make rows of this table: " + tb.copyProblem
	case tb.bOnly == nil:
		return "the kit could not give B a row of keys A lacks"
	}
	for _, c := range u.cols {
		if _, fresh := tb.fresh[c]; !fresh {
			return fmt.Sprintf("key %s includes %s, a foreign key, whose value A cannot share with B's row", u.name, c)
		}
	}
	return ""
}

// withKey returns a row of A's with fresh keys whose columns of u hold the
// values of B's extra row.
func (f *fx) withKey(t *testing.T, tb *table, u unique) row {
	r := f.row(t, tb, f.a, 1)
	for _, c := range u.cols {
		r = r.with(c, tb.bOnly[c])
	}
	return r
}

// objectProbes returns the probes of the application's own views and
// SECURITY DEFINER functions at A's placement.
func (f *fx) objectProbes(t *testing.T) []probe {
	ctx := context.Background()
	rows, err := f.super(t, f.a).conn.Query(ctx, `
		SELECT 'view', c.relname, EXISTS (SELECT FROM unnest(c.reloptions) o WHERE o ~ '^security_invoker=(true|on|yes|1)$')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'v' AND c.relname NOT LIKE 'landlordtest\_%'
		UNION ALL
		SELECT 'function', p.proname, false FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname = $1 AND p.prosecdef AND p.pronargs = 0 AND p.provolatile <> 'v' AND p.prokind = 'f'
		  AND p.prorettype <> 'trigger'::regtype AND p.proname NOT LIKE 'landlordtest\_%'
		ORDER BY 1, 2`, f.a.Schema)
	must(t, err)
	type object struct {
		kind, name string
		invoker    bool
	}
	objs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (object, error) {
		var o object
		err := r.Scan(&o.kind, &o.name, &o.invoker)
		return o, err
	})
	must(t, err)
	var ps []probe
	for _, o := range objs {
		switch o.kind {
		case "view":
			// The owner of a view is subject to FORCE; a view that runs
			// as the caller obeys the caller even when the owner is not.
			off := f.noForce()
			on := stage{}
			if o.invoker {
				off = append(off, `ALTER VIEW {s}.`+ident(o.name)+` SET (security_invoker = false)`)
				on.ddl = f.noForce()
			}
			ps = append(ps, probe{id: "I08", name: "view", subject: o.name, optional: true,
				sql: `SELECT x::text FROM ` + ident(o.name) + ` x`, off: stage{ddl: off}, on: on})
		case "function":
			ps = append(ps, probe{id: "I09", name: "definer-function", subject: o.name, optional: true, write: true,
				sql: `SELECT x::text FROM ` + ident(o.name) + `() x`, off: stage{ddl: f.noForce()}, on: stage{}})
		}
	}
	return ps
}

func (f *fx) runProbe(t *testing.T, p probe) {
	if p.skip != "" {
		t.Skip(p.skip)
	}
	role := randomName("landlordtest")
	leaked := func(o outcome) bool {
		if p.leaked != nil && p.leaked(o) {
			return true
		}
		return len(f.leaks(o.text())) > 0
	}
	// An error that never reached the server is the kit's own mistake,
	// never a result.
	sent := func(t *testing.T, o outcome) {
		t.Helper()
		var pgErr *pgconn.PgError
		if o.err != nil && !errors.As(o.err, &pgErr) {
			t.Fatalf("the probe was not run: %v", o.err)
		}
	}
	// The defense-off run decides whether an object of the application's
	// exposes B's rows at all.
	off := f.at(t, f.b, p.off, role, p.sql, p.args...)
	sent(t, off)
	applicable := leaked(off)
	skipInapplicable := func(t *testing.T) {
		t.Helper()
		if p.optional && !applicable && !slices.Contains(f.k.Exposing, p.subject) {
			t.Skipf("even with the defense switched off %s shows none of B's rows: %v", p.subject, off)
		}
	}
	t.Run("defense-off", func(t *testing.T) {
		skipInapplicable(t)
		if !applicable {
			t.Fatalf("with the defense switched off the probe shows no leak: %v (after: %v)", off, off.after)
		}
	})
	t.Run("defense-on", func(t *testing.T) {
		skipInapplicable(t)
		o := f.at(t, f.b, p.on, role, p.sql, p.args...)
		sent(t, o)
		if leaked(o) {
			t.Fatalf("tenant A learned about tenant B: %v (after: %v)", o, o.after)
		}
	})
	t.Run("handle", func(t *testing.T) {
		skipInapplicable(t)
		if len(p.handleSetup) > 0 {
			f.exec(t, f.a, p.handleSetup...)
			defer f.exec(t, f.a, p.handleUndo...)
		}
		sql := p.sql
		if p.sql2 != "" {
			sql = p.sql2
		}
		o := f.viaHandle(t, f.ctxA, p.pre, p.write, sql, p.args...)
		sent(t, o)
		if leaked(o) {
			t.Fatalf("tenant A learned about tenant B through the handle: %v", o)
		}
		if p.live != nil {
			if err := p.live(o); err != nil {
				t.Fatalf("the probe did not run as intended: %v", err)
			}
		}
	})
}
