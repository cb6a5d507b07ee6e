package landlord

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/tenant"
)

// probe is one attack on the row-level layer: a statement A runs, how the
// defense is switched off (the leak must appear), how it runs with the
// defense on at B's placement (no leak), and through the handle (no leak).
type probe struct {
	id, name string
	sql      string
	args     []any
	off      stage
	on       stage
	// pre runs before the probe on the handle, in a transaction; with
	// write, the probe itself runs in one, rolled back.
	pre   []string
	write bool
	// leaked judges an outcome when a canary in the text is not the whole
	// story (existence oracles, damage seen by the superuser); nil means
	// "a canary in what A got".
	leaked func(f *fx, o outcome) bool
	// live checks the handle's outcome shows the probe really ran, so a
	// clean result is not an accident (the leaky function did print A's
	// own values, the cast did fail on A's own row).
	live func(o outcome) error
	// handleSetup runs as the superuser at A's placement, committed, before
	// the handle run, and handleUndo after it.
	handleSetup, handleUndo []string
	// models restricts the probe; nil means all three.
	models []tenant.Model
	// sql2 replaces sql on the handle.
	sql2 string
	// known names a known defect that an outcome shows; the run is then
	// skipped with that reason instead of failing (see SECURITY.md).
	known func(f *fx, o outcome) string
}

var (
	// planAsB prepares and runs a statement with B's context under a
	// generic plan, then switches the transaction to A's context.
	planAsB = []string{
		`SET LOCAL plan_cache_mode = force_generic_plan`,
		`SELECT set_config('landlord.tenant_id', '{B}', true)`,
		`PREPARE atk_q AS SELECT secret FROM items`,
		`EXECUTE atk_q`, `EXECUTE atk_q`,
		`SELECT set_config('landlord.tenant_id', '{A}', true)`,
	}
	deallocate    = []string{`DEALLOCATE atk_q`}
	forgedTrigger = []string{`CREATE OR REPLACE FUNCTION {s}.audit_unpinned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO audit_log (tenant_id, note_id, how) VALUES (current_setting('atk.victim')::uuid, NEW.id, 'forged');
	RETURN NEW;
END $$`, `SELECT set_config('atk.victim', '{B}', true)`}
	seqscan   = []string{`SET LOCAL enable_indexscan = off`, `SET LOCAL enable_bitmapscan = off`, `SET LOCAL enable_indexonlyscan = off`}
	noPruning = append(slices.Clone(seqscan), `SET LOCAL enable_partition_pruning = off`)
)

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

// afterNonZero judges by the superuser's count after the probe: the attack
// changed or copied B's rows.
func afterNonZero(_ *fx, o outcome) bool {
	return len(o.after) == 1 && fmt.Sprint(o.after[0][0]) != "0"
}

// failsWith judges a leak by an error only B's rows can cause.
func failsWith(code string) func(*fx, outcome) bool {
	return func(_ *fx, o outcome) bool { return isPgCode(o.err, code) }
}

var (
	noForce = []string{
		`ALTER TABLE {s}.items NO FORCE ROW LEVEL SECURITY`,
		`ALTER TABLE {s}.parents NO FORCE ROW LEVEL SECURITY`,
		`ALTER TABLE {s}.events NO FORCE ROW LEVEL SECURITY`,
	}
	// openPolicies replaces Landlord's policies on items with ones that
	// let every row through.
	openPolicies = []string{
		`DROP POLICY landlord_tenant ON {s}.items`,
		`DROP POLICY landlord_tenant_access ON {s}.items`,
		`CREATE POLICY atk_open ON {s}.items USING (true) WITH CHECK (true)`,
	}
	// checkOnlyUsing keeps the read filter and drops the write check.
	checkOnlyUsing = []string{
		`DROP POLICY landlord_tenant ON {s}.items`,
		`DROP POLICY landlord_tenant_access ON {s}.items`,
		`CREATE POLICY atk_read ON {s}.items USING (tenant_id = nullif(current_setting('landlord.tenant_id', true), '')::uuid) WITH CHECK (true)`,
	}
	dedicatedRole = func(attrs string) []string {
		return []string{
			`CREATE ROLE {role} ` + attrs,
			`GRANT USAGE ON SCHEMA {s} TO {role}`,
			`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {role}`,
		}
	}
	bCount = func(where string) string {
		return `SELECT count(*) FROM {s}.items WHERE tenant_id = '{B}' AND ` + where
	}
)

func probes() []probe {
	owner := stage{as: "owner"}
	return []probe{
		// I01: the table owner skips row-level security unless it is forced.
		{id: "I01", name: "owner-reads-items", sql: `SELECT secret FROM items`,
			off: stage{as: "owner", ddl: noForce}, on: owner},
		{id: "I01", name: "owner-reads-parents", sql: `SELECT name FROM parents`,
			off: stage{as: "owner", ddl: noForce}, on: owner},
		{id: "I01", name: "owner-reads-partitions", sql: `SELECT body FROM events`,
			off: stage{as: "owner", ddl: noForce}, on: owner},
		{id: "I01", name: "owner-updates", sql: `UPDATE items SET sku = sku RETURNING secret`, write: true,
			off: stage{as: "owner", ddl: noForce}, on: owner},

		// I02: BYPASSRLS, superuser, row_security = off.
		{id: "I02", name: "bypassrls-role", sql: `SELECT secret FROM items`,
			off: stage{as: "dedicated", ddl: dedicatedRole("BYPASSRLS")},
			on:  stage{as: "dedicated", ddl: dedicatedRole("NOBYPASSRLS")}},
		{id: "I02", name: "superuser", sql: `SELECT secret FROM items`,
			off: stage{as: "super"}, on: stage{}},
		{id: "I02", name: "row-security-off", sql: `SELECT secret FROM items`,
			off: stage{as: "dedicated", ddl: dedicatedRole("BYPASSRLS"), pre: []string{`SET LOCAL row_security = off`}},
			on:  stage{pre: []string{`SET LOCAL row_security = off`}},
			pre: []string{`SET LOCAL row_security = off`},
			live: func(o outcome) error {
				// PostgreSQL refuses rather than filters.
				return errorShows("42501", "row-level security")(o)
			}},

		// I04: a later permissive policy must not widen access.
		{id: "I04", name: "permissive-true", sql: `SELECT secret FROM items`,
			off:         stage{ddl: openPolicies},
			on:          stage{ddl: []string{`CREATE POLICY atk_open ON {s}.items USING (true) WITH CHECK (true)`}},
			handleSetup: []string{`CREATE POLICY atk_open ON {s}.items USING (true) WITH CHECK (true)`},
			handleUndo:  []string{`DROP POLICY atk_open ON {s}.items`},
			live:        returns(2)},
		{id: "I04", name: "permissive-true-write", write: true,
			sql: `INSERT INTO items (tenant_id, id, sku, secret) VALUES ('{B}', 904, 'sku-904', 'x')`,
			off: stage{ddl: openPolicies, after: bCount(`id = 904`)},
			on: stage{ddl: []string{`CREATE POLICY atk_open ON {s}.items USING (true) WITH CHECK (true)`},
				after: bCount(`id = 904`)},
			handleSetup: []string{`CREATE POLICY atk_open ON {s}.items USING (true) WITH CHECK (true)`},
			handleUndo:  []string{`DROP POLICY atk_open ON {s}.items`},
			leaked:      afterNonZero, live: errorShows("42501", "row-level security")},

		// I05: an unset or empty context sees nothing and writes nothing.
		{id: "I05", name: "unset-context-reads", sql: `SELECT secret FROM items`,
			off: stage{setting: "unset", ddl: []string{
				`DROP POLICY landlord_tenant ON {s}.items`, `DROP POLICY landlord_tenant_access ON {s}.items`,
				`CREATE POLICY atk_lax ON {s}.items USING (tenant_id = coalesce(nullif(current_setting('landlord.tenant_id', true), '')::uuid, tenant_id))`}},
			on: stage{setting: "unset"}},
		{id: "I05", name: "empty-context-reads", sql: `SELECT secret FROM items`,
			off: stage{setting: "empty", ddl: []string{
				`DROP POLICY landlord_tenant ON {s}.items`, `DROP POLICY landlord_tenant_access ON {s}.items`,
				`CREATE POLICY atk_lax ON {s}.items USING (tenant_id = coalesce(nullif(current_setting('landlord.tenant_id', true), '')::uuid, tenant_id))`}},
			on: stage{setting: "empty"}},
		{id: "I05", name: "unset-context-writes", write: true,
			sql:    `INSERT INTO items (tenant_id, id, sku, secret) VALUES ('{B}', 905, 'sku-905', 'x')`,
			off:    stage{setting: "unset", ddl: checkOnlyUsing, after: bCount(`id = 905`)},
			on:     stage{setting: "unset", after: bCount(`id = 905`)},
			leaked: afterNonZero, live: errorShows("42501", "row-level security")},
		{id: "I05", name: "garbage-context", sql: `SELECT secret FROM items`,
			off: stage{setting: "garbage", ddl: []string{
				`DROP POLICY landlord_tenant ON {s}.items`, `DROP POLICY landlord_tenant_access ON {s}.items`,
				`CREATE POLICY atk_lax ON {s}.items USING (tenant_id::text = current_setting('landlord.tenant_id', true) OR current_setting('landlord.tenant_id', true) !~ '^[0-9a-f-]{36}$')`}},
			on: stage{setting: "not-a-uuid"}},

		// I08: a view runs as its owner, who is subject to FORCE.
		{id: "I08", name: "owner-view", sql: `SELECT secret FROM items_owner_view`,
			off: stage{ddl: noForce}, on: stage{}, live: returns(2)},
		{id: "I08", name: "invoker-view", sql: `SELECT secret FROM items_invoker_view`,
			off: stage{ddl: append([]string{`ALTER VIEW {s}.items_invoker_view SET (security_invoker = false)`}, noForce...)},
			on:  stage{ddl: noForce}, live: returns(2)},

		// I09: SECURITY DEFINER functions run as the owner, who is forced.
		{id: "I09", name: "definer-pinned", sql: `SELECT * FROM definer_secrets()`,
			off: stage{ddl: noForce}, on: stage{}, live: returns(2),
			known: func(f *fx, o outcome) string {
				if f.m == tenant.ModelDatabase && isPgCode(o.err, "42P01") {
					return "a function whose search_path was pinned with SET search_path FROM CURRENT keeps the template schema's name in database tenants copied from the template database"
				}
				return ""
			}},
		{id: "I09", name: "definer-unpinned", sql: `SELECT * FROM definer_unpinned()`,
			off: stage{ddl: noForce}, on: stage{}, live: returns(2)},

		// I10: leaky functions and operators run after the policies.
		{id: "I10", name: "leaky-function", sql: `SELECT id FROM items WHERE f_leak(secret)`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak(text) LEAKPROOF`}, pre: seqscan},
			on:  stage{pre: seqscan}, pre: seqscan, live: noticesShow("A-secret-1")},
		{id: "I10", name: "leaky-operator", sql: `SELECT id FROM items WHERE secret <<< 'x'`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak_op(text, text) LEAKPROOF`}, pre: seqscan},
			on:  stage{pre: seqscan}, pre: seqscan, live: noticesShow("A-secret-1")},
		{id: "I10", name: "leaky-function-parents", sql: `SELECT id FROM parents WHERE f_leak(name)`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak(text) LEAKPROOF`}, pre: seqscan},
			on:  stage{pre: seqscan}, pre: seqscan, live: noticesShow("A-parent")},
		{id: "I10", name: "leaky-function-partitions", sql: `SELECT id FROM events WHERE f_leak(body)`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak(text) LEAKPROOF`}, pre: noPruning},
			on:  stage{pre: noPruning}, pre: noPruning, live: noticesShow("A-event-1")},
		{id: "I10", name: "leaky-function-in-join", sql: `SELECT g FROM generate_series(1, 3) g JOIN items i ON f_leak(i.secret) AND i.id >= g`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak(text) LEAKPROOF`}, pre: seqscan},
			on:  stage{pre: seqscan}, pre: seqscan, live: noticesShow("A-secret-2")},
		{id: "I10", name: "leaky-function-in-subquery", sql: `SELECT (SELECT count(*) FROM items WHERE f_leak(secret) OR id < 0)`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak(text) LEAKPROOF`}, pre: seqscan},
			on:  stage{pre: seqscan}, pre: seqscan, live: noticesShow("A-secret-2")},
		{id: "I10", name: "leaky-function-through-view", sql: `SELECT id FROM items_owner_view WHERE f_leak(secret)`,
			off: stage{ddl: []string{`ALTER FUNCTION {s}.f_leak(text) LEAKPROOF`}, pre: seqscan},
			on:  stage{pre: seqscan}, pre: seqscan, live: noticesShow("A-secret-1")},
		{id: "I10", name: "leaky-function-owner", sql: `SELECT id FROM items WHERE f_leak(secret)`,
			off: stage{as: "owner", ddl: noForce, pre: seqscan},
			on:  stage{as: "owner", pre: seqscan}, pre: seqscan, live: noticesShow("A-secret-1")},
		{id: "I10", name: "division-oracle", sql: `SELECT id FROM items WHERE 1 / (CASE WHEN secret = 'CANARY-B-secret-1' THEN 0 ELSE 1 END) = 1`,
			off: stage{as: "owner", ddl: noForce, pre: seqscan}, on: stage{pre: seqscan}, pre: seqscan,
			leaked: failsWith("22012"), live: returns(2)},
		{id: "I10", name: "statistics", sql: `SELECT coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, '') FROM pg_stats WHERE tablename = 'items' AND attname = 'secret'`,
			off:         stage{ddl: []string{`ANALYZE {s}.items`, `ALTER TABLE {s}.items DISABLE ROW LEVEL SECURITY`}},
			on:          stage{ddl: []string{`ANALYZE {s}.items`}},
			handleSetup: []string{`ANALYZE {s}.items`}, live: returns(0)},

		// I19: a cached generic plan must not carry the context it was
		// planned in. B plans, A executes.
		{id: "I19", name: "generic-plan-context", sql: `EXECUTE atk_q`,
			off: stage{ddl: []string{
				`CREATE FUNCTION {s}.atk_tenant() RETURNS uuid LANGUAGE sql IMMUTABLE AS $$ SELECT nullif(current_setting('landlord.tenant_id', true), '')::uuid $$`,
				`DROP POLICY landlord_tenant ON {s}.items`, `DROP POLICY landlord_tenant_access ON {s}.items`,
				`CREATE POLICY atk_folded ON {s}.items USING (tenant_id = {s}.atk_tenant())`}, pre: planAsB, cleanup: deallocate},
			on:   stage{pre: planAsB, cleanup: deallocate},
			sql2: `SELECT secret FROM items`, pre: []string{`SET LOCAL plan_cache_mode = force_generic_plan`}, live: returns(2)},

		// I12 and I29: errors caused by, and texts carrying, B's values.
		{id: "I12", name: "cast-error-where", sql: `SELECT id FROM items WHERE id = 100 AND secret::int = 0`,
			off: stage{as: "owner", ddl: noForce}, on: stage{}, live: returns(0)},
		{id: "I12", name: "cast-error-select", sql: `SELECT secret::int FROM items WHERE secret NOT LIKE 'A-%'`,
			off: stage{as: "owner", ddl: noForce}, on: stage{}, live: returns(0)},
		{id: "I12", name: "cast-error-own-rows", sql: `SELECT secret::int FROM items ORDER BY id`,
			off: stage{as: "owner", ddl: noForce, sql: `SELECT secret::int FROM items WHERE tenant_id = '{B}'`}, on: stage{},
			live: errorShows("22P02", "A-secret-1")},
		{id: "I12", name: "check-violation", write: true, sql: `UPDATE items SET sku = '' WHERE id = 100 RETURNING id`,
			off: stage{as: "owner", ddl: noForce}, on: stage{}, live: returns(0)},
		{id: "I12", name: "check-violation-detail", write: true, sql: `UPDATE items SET sku = '' RETURNING id`,
			off: stage{as: "owner", ddl: noForce, sql: `UPDATE items SET sku = '' WHERE tenant_id = '{B}' RETURNING id`}, on: stage{},
			// PostgreSQL itself leaves the failing row out of the detail
			// when row-level security applies.
			live: errorShows("23514", "items_sku_check")},
		{id: "I12", name: "unique-oracle", write: true,
			sql: `INSERT INTO items (id, sku, secret) VALUES (906, 'sku-b-only', 'x') RETURNING id`,
			off: stage{ddl: []string{`CREATE UNIQUE INDEX atk_sku ON {s}.items (sku) WHERE sku NOT IN ('sku-1', 'sku-2')`}},
			on:  stage{}, leaked: failsWith("23505"), live: returns(1)},
		{id: "I12", name: "primary-key-oracle", write: true,
			sql: `INSERT INTO items (id, sku, secret) VALUES (100, 'sku-907', 'x') RETURNING id`,
			off: stage{ddl: []string{`CREATE UNIQUE INDEX atk_id ON {s}.items (id) WHERE id >= 100`}},
			on:  stage{}, leaked: failsWith("23505"), live: returns(1)},
		{id: "I12", name: "on-conflict-oracle", write: true,
			sql: `INSERT INTO items (id, sku, secret) VALUES (908, 'sku-b-only', 'x') ON CONFLICT (tenant_id, sku) DO UPDATE SET secret = 'y' RETURNING id`,
			off: stage{ddl: []string{`CREATE UNIQUE INDEX atk_sku ON {s}.items (sku) WHERE sku NOT IN ('sku-1', 'sku-2')`},
				sql: `INSERT INTO items (id, sku, secret) VALUES (908, 'sku-b-only', 'x') ON CONFLICT (sku) WHERE sku NOT IN ('sku-1', 'sku-2') DO UPDATE SET secret = 'y' RETURNING id`},
			on: stage{}, leaked: func(_ *fx, o outcome) bool { return o.err != nil }, live: returns(1)},
		{id: "I12", name: "foreign-key-oracle", write: true,
			sql: `INSERT INTO items (id, parent_id, sku, secret) VALUES (909, 50, 'sku-909', 'x') RETURNING id`,
			off: stage{ddl: []string{
				`CREATE TABLE {s}.atk_parent (tenant_id uuid NOT NULL DEFAULT nullif(current_setting('landlord.tenant_id', true), '')::uuid, id bigint PRIMARY KEY)`,
				`INSERT INTO {s}.atk_parent VALUES ('{B}', 50)`,
				`CREATE TABLE {s}.atk_child (tenant_id uuid NOT NULL DEFAULT nullif(current_setting('landlord.tenant_id', true), '')::uuid, id bigint, parent_id bigint REFERENCES {s}.atk_parent (id))`,
				`ALTER TABLE {s}.atk_parent ENABLE ROW LEVEL SECURITY`, `ALTER TABLE {s}.atk_parent FORCE ROW LEVEL SECURITY`,
				`ALTER TABLE {s}.atk_child ENABLE ROW LEVEL SECURITY`, `ALTER TABLE {s}.atk_child FORCE ROW LEVEL SECURITY`,
				`CREATE POLICY p ON {s}.atk_parent USING (tenant_id = nullif(current_setting('landlord.tenant_id', true), '')::uuid)`,
				`CREATE POLICY p ON {s}.atk_child USING (tenant_id = nullif(current_setting('landlord.tenant_id', true), '')::uuid)`,
				`GRANT SELECT, INSERT ON {s}.atk_parent, {s}.atk_child TO {roleA}`},
				// The reference to B's parent succeeds: the check ignores
				// row-level security, so A learns that it exists.
				sql: `INSERT INTO atk_child (id, parent_id) VALUES (1, 50) RETURNING id`},
			on:     stage{},
			leaked: func(_ *fx, o outcome) bool { return o.err == nil }, live: errorShows("23503", "items")},

		// I13: TRUNCATE and REFERENCES ignore row-level security; they are
		// never granted.
		{id: "I13", name: "truncate", write: true, sql: `TRUNCATE items`,
			off:    stage{ddl: []string{`GRANT TRUNCATE ON {s}.items TO {roleA}`}, after: `SELECT 3 - count(*) FROM {s}.items WHERE tenant_id = '{B}'`},
			on:     stage{after: `SELECT 3 - count(*) FROM {s}.items WHERE tenant_id = '{B}'`},
			leaked: afterNonZero, live: errorShows("42501", "items")},
		{id: "I13", name: "references-truncate-trigger-privileges",
			sql:    `SELECT has_table_privilege('items', 'REFERENCES') OR has_table_privilege('items', 'TRUNCATE') OR has_table_privilege('items', 'TRIGGER')`,
			off:    stage{ddl: []string{`GRANT REFERENCES ON {s}.items TO {roleA}`}},
			on:     stage{},
			leaked: func(_ *fx, o outcome) bool { return fmt.Sprint(o.rows) == "[[true]]" }, live: returns(1)},

		// I24: a trigger cannot write B's tenant_id, unless it runs as an
		// owner that skips row-level security.
		{id: "I24", name: "trigger-forges-tenant", write: true, sql: `INSERT INTO notes (id, body) VALUES (990, 'x')`,
			off: stage{ddl: append(slices.Clone(forgedTrigger),
				`ALTER FUNCTION {s}.audit_unpinned() SECURITY DEFINER`, `ALTER TABLE {s}.audit_log NO FORCE ROW LEVEL SECURITY`),
				after: `SELECT count(*) FROM {s}.audit_log WHERE tenant_id = '{B}' AND how = 'forged'`},
			on: stage{ddl: forgedTrigger,
				after: `SELECT count(*) FROM {s}.audit_log WHERE tenant_id = '{B}' AND how = 'forged'`},
			leaked: afterNonZero},

		// I14: writing B's tenant_id, moving rows to B, writing B's rows.
		{id: "I14", name: "insert-b-tenant-id", write: true,
			sql: `INSERT INTO items (tenant_id, id, sku, secret) VALUES ('{B}', 910, 'sku-910', 'x')`,
			off: stage{ddl: checkOnlyUsing, after: bCount(`id = 910`)}, on: stage{after: bCount(`id = 910`)},
			leaked: afterNonZero, live: errorShows("42501", "row-level security")},
		{id: "I14", name: "move-row-to-b", write: true,
			sql:    `UPDATE items SET tenant_id = '{B}', id = id + 2000, sku = sku || '-moved' WHERE id = 2 RETURNING secret`,
			off:    stage{ddl: openPolicies, sql: `UPDATE items SET tenant_id = '{B}', id = id + 2000, sku = sku || '-moved' WHERE id = 2 AND tenant_id = '{A}'`, after: bCount(`secret LIKE 'A-%'`)},
			on:     stage{after: bCount(`secret LIKE 'A-%'`)},
			leaked: afterNonZero, live: errorShows("42501", "row-level security"),
			// In the other models A's rows are not at B's placement at all.
			models: []tenant.Model{tenant.ModelRow}},
		{id: "I14", name: "update-everything", write: true, sql: `UPDATE items SET secret = 'pwned' RETURNING id`,
			off: stage{as: "owner", ddl: noForce, after: bCount(`secret = 'pwned'`)}, on: stage{after: bCount(`secret = 'pwned'`)},
			leaked: afterNonZero, live: returns(2)},
		{id: "I14", name: "delete-everything", write: true, sql: `DELETE FROM items RETURNING id`,
			off:    stage{as: "owner", ddl: noForce, after: `SELECT 3 - count(*) FROM {s}.items WHERE tenant_id = '{B}'`},
			on:     stage{after: `SELECT 3 - count(*) FROM {s}.items WHERE tenant_id = '{B}'`},
			leaked: afterNonZero, live: returns(2)},
		{id: "I14", name: "copy-rows-across", write: true,
			sql: `INSERT INTO items (id, sku, secret) SELECT id + 1000, sku || '-c', secret FROM items RETURNING secret`,
			off: stage{as: "owner", ddl: noForce, sql: `INSERT INTO items (tenant_id, id, sku, secret) SELECT '{A}', id + 1000, sku || '-c' || id, secret FROM items WHERE tenant_id = '{B}' RETURNING secret`},
			on:  stage{}, live: returns(2)},
		{id: "I14", name: "merge", write: true,
			sql: `MERGE INTO items t USING (SELECT 100 AS id) s ON t.id = s.id WHEN MATCHED THEN UPDATE SET secret = 'merged' WHEN NOT MATCHED THEN INSERT (id, sku, secret) VALUES (s.id, 'sku-m', 'm')`,
			off: stage{as: "owner", ddl: noForce, after: bCount(`secret = 'merged'`)}, on: stage{after: bCount(`secret = 'merged'`)},
			leaked: afterNonZero},
		{id: "I14", name: "update-from-join", write: true,
			sql: `UPDATE items i SET secret = i.secret FROM parents p WHERE p.id = 50 RETURNING p.name`,
			off: stage{as: "owner", ddl: noForce}, on: stage{}, live: returns(0)},
		{id: "I14", name: "delete-using-join", write: true,
			sql: `DELETE FROM items i USING parents p WHERE p.name LIKE 'CANARY%' RETURNING p.name, i.secret`,
			off: stage{as: "owner", ddl: noForce}, on: stage{}, live: returns(0)},
		{id: "I14", name: "upsert-b-key", write: true,
			sql: `INSERT INTO items (tenant_id, id, sku, secret) VALUES ('{B}', 100, 'sku-u', 'x') ON CONFLICT (tenant_id, id) DO UPDATE SET secret = 'upserted' RETURNING secret`,
			off: stage{ddl: openPolicies, after: bCount(`secret = 'upserted'`)}, on: stage{after: bCount(`secret = 'upserted'`)},
			leaked: afterNonZero, live: errorShows("42501", "row-level security")},

		// I15: the partitions of a partitioned tenant table, read and
		// written directly.
		{id: "I15", name: "read-partitions", sql: `SELECT body FROM events_p0 UNION ALL SELECT body FROM events_p1`,
			off: stage{ddl: []string{`ALTER TABLE {s}.events_p0 DISABLE ROW LEVEL SECURITY`, `ALTER TABLE {s}.events_p1 DISABLE ROW LEVEL SECURITY`}},
			on:  stage{}, live: returns(2)},
		{id: "I15", name: "write-b-partition", write: true,
			sql: `INSERT INTO {pB} (tenant_id, id, body) VALUES ('{B}', 911, 'x')`,
			off: stage{ddl: []string{`ALTER TABLE {s}.{pB} DISABLE ROW LEVEL SECURITY`},
				after: `SELECT count(*) FROM {s}.events WHERE tenant_id = '{B}' AND id = 911`},
			on:     stage{after: `SELECT count(*) FROM {s}.events WHERE tenant_id = '{B}' AND id = 911`},
			leaked: afterNonZero, live: errorShows("42501", "row-level security")},
		{id: "I15", name: "update-b-partition", write: true,
			sql: `UPDATE {pB} SET body = 'pwned' RETURNING id`,
			off: stage{ddl: []string{`ALTER TABLE {s}.{pB} DISABLE ROW LEVEL SECURITY`},
				after: `SELECT count(*) FROM {s}.events WHERE tenant_id = '{B}' AND body = 'pwned'`},
			on:     stage{after: `SELECT count(*) FROM {s}.events WHERE tenant_id = '{B}' AND body = 'pwned'`},
			leaked: afterNonZero},
		{id: "I15", name: "update-partitions", write: true,
			sql: `WITH a AS (UPDATE events_p0 SET body = body RETURNING body), b AS (UPDATE events_p1 SET body = body RETURNING body) SELECT * FROM a UNION ALL SELECT * FROM b`,
			off: stage{ddl: []string{`ALTER TABLE {s}.events_p0 DISABLE ROW LEVEL SECURITY`, `ALTER TABLE {s}.events_p1 DISABLE ROW LEVEL SECURITY`}},
			on:  stage{}, live: returns(2)},

		// I16: a materialized view holds what its refresher saw.
		{id: "I16", name: "matview-refreshed", sql: `SELECT secret FROM items_mv`,
			// REFRESH runs the query as the view's owner, even for a
			// superuser, so FORCE and the missing context keep it empty.
			off:         stage{ddl: append(slices.Clone(noForce), `REFRESH MATERIALIZED VIEW {s}.items_mv`)},
			on:          stage{ddl: []string{`REFRESH MATERIALIZED VIEW {s}.items_mv`}},
			handleSetup: []string{`SET ROLE {owner}`, `REFRESH MATERIALIZED VIEW {s}.items_mv`, `RESET ROLE`},
			handleUndo:  []string{`SET ROLE {owner}`, `REFRESH MATERIALIZED VIEW {s}.items_mv WITH NO DATA`, `RESET ROLE`},
			live:        returns(0)},
	}
}

// TestAttack runs the suite against one installation per model: every
// probe of probes() (with its defense off, on at B's placement, and through
// the handle), then the attacks on pooled connections, names and routing,
// in an order where no step disturbs the next. The pools have one
// connection, so A and B always share it (in the database model, each its
// own).
func TestAttack(t *testing.T) {
	t.Parallel()
	all := tenant.Models
	rs := []tenant.Model{tenant.ModelRow, tenant.ModelSchema}
	steps := []struct {
		name   string
		models []tenant.Model
		run    func(*fx, *testing.T)
	}{
		{"I07-raw-set-config", all, (*fx).attackI07RawSetConfig},
		{"I16-materialized-views", rs, (*fx).attackI16MaterializedViews},
		{"I17-sequences", all, (*fx).attackI17Sequences},
		{"I19-alternating-tenants", all, (*fx).attackI19AlternatingTenants},
		{"I20-names", all, (*fx).attackI20Names},
		{"I23-export", all, (*fx).attackI23Export},
		{"I24-trigger-paths", all, (*fx).attackI24TriggerPaths},
		{"I06-session-leftovers", all, (*fx).attackI06SessionLeftovers},
		{"I25-listen-notify", all, (*fx).attackI25ListenNotify},
		{"I26-advisory-locks", all, (*fx).attackI26AdvisoryLocks},
		{"I28-job-without-tenant", rs, (*fx).attackI28JobWithoutTenant},
		{"I30-late-cancel", rs, (*fx).attackI30LateCancel},
		{"I30-cancel-storm", all, (*fx).attackI30CancelStorm},
		// Last: it grants TEMP and leaves a temporary table on the pool.
		{"I18-search-path", all, (*fx).attackI18SearchPath},
	}
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			f := newFx(t, m, Config{MaxConns: 1})
			for _, p := range probes() {
				if p.models != nil && !slices.Contains(p.models, m) {
					continue
				}
				t.Run(p.id+"-"+p.name, func(t *testing.T) { f.runProbe(t, p) })
			}
			for _, s := range steps {
				if slices.Contains(s.models, m) {
					t.Run(s.name, func(t *testing.T) { s.run(f, t) })
				}
			}
		})
	}
}

func (f *fx) runProbe(t *testing.T, p probe) {
	role := randomName("atk")
	leaked := func(o outcome) bool {
		if p.leaked != nil && p.leaked(f, o) {
			return true
		}
		return len(f.leaks(o.text())) > 0
	}
	skipKnown := func(t *testing.T, o outcome) {
		t.Helper()
		if p.known != nil {
			if why := p.known(f, o); why != "" {
				t.Skipf("known: %s (%v)", why, o.err)
			}
		}
	}
	t.Run("defense-off", func(t *testing.T) {
		o := f.at(t, f.b, p.off, role, p.sql, p.args...)
		skipKnown(t, o)
		if !leaked(o) {
			t.Fatalf("with the defense switched off the probe shows no leak: %v (after: %v)", o, o.after)
		}
	})
	t.Run("defense-on", func(t *testing.T) {
		o := f.at(t, f.b, p.on, role, p.sql, p.args...)
		if leaked(o) {
			t.Fatalf("tenant A learned about tenant B: %v (after: %v)", o, o.after)
		}
	})
	t.Run("handle", func(t *testing.T) {
		if len(p.handleSetup) > 0 {
			f.exec(t, f.a, p.handleSetup...)
			defer f.exec(t, f.a, p.handleUndo...)
		}
		sql := p.sql
		if p.sql2 != "" {
			sql = p.sql2
		}
		o := f.viaHandle(t, f.ctxA, p.pre, p.write, sql, p.args...)
		skipKnown(t, o)
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
