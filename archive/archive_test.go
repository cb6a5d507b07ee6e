package archive

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// seed writes n products of tn with awkward values, and movements whose
// trigger keeps the levels: the derived rows an import must copy, not make
// again.
func (e *env) seed(t *testing.T, tn tenant.Tenant, n int) {
	t.Helper()
	c := e.conn(t, tn)
	q := func(table string) string { return ident.Quote(tn.Schema, table) }
	_, err := c.Exec(t.Context(), fmt.Sprintf(`
		INSERT INTO %s (tenant_id, name, status, attrs, photo, tags, price, created_at)
		SELECT $1, 'product ' || i || E'\twith tab\nand newline \\ and "quotes" ' || $2::text,
			CASE WHEN i %% 2 = 0 THEN 'live'::%s ELSE 'draft' END,
			jsonb_build_object('i', i, 'nested', jsonb_build_array(1, 'two', null)),
			CASE WHEN i %% 3 = 0 THEN NULL ELSE decode(lpad(to_hex(i), 8, '0'), 'hex') END,
			CASE WHEN i %% 4 = 0 THEN NULL ELSE ARRAY['a,b', 'c"d', NULL] END,
			i * 1.25, timestamptz '2026-01-01 12:00:00+03' + i * interval '1 minute'
		FROM generate_series(1, $3) i`, q("products"), ident.Quote(tn.Schema, "status")), tn.ID, tn.Slug, n)
	must(t, err)
	_, err = c.Exec(t.Context(), fmt.Sprintf(`INSERT INTO %s (tenant_id, product_id, quantity)
		SELECT tenant_id, id, q FROM %s, generate_series(1, 3) q WHERE tenant_id = $1`, q("movements"), q("products")), tn.ID)
	must(t, err)
}

// exportBytes exports tn into memory.
func (e *env) exportBytes(t *testing.T, tn tenant.Tenant) ([]byte, Manifest) {
	t.Helper()
	var buf bytes.Buffer
	m, err := Export(t.Context(), e.p, tn.ID, &buf, ExportOptions{})
	if err != nil {
		t.Fatalf("export %s: %v", tn.Slug, err)
	}
	return buf.Bytes(), m
}

// sameRows fails unless two manifests hold the same tables with the same
// counts and digests.
func sameRows(t *testing.T, what string, want, got Manifest) {
	t.Helper()
	if len(want.Tables) != len(got.Tables) {
		t.Fatalf("%s: %d tables, want %d", what, len(got.Tables), len(want.Tables))
	}
	for i := range want.Tables {
		w, g := want.Tables[i], got.Tables[i]
		if w.Name != g.Name || w.Rows != g.Rows || w.SHA256 != g.SHA256 {
			t.Errorf("%s: table %s: %d rows %.12s, want %s: %d rows %.12s", what, g.Name, g.Rows, g.SHA256, w.Name, w.Rows, w.SHA256)
		}
	}
}

func TestRoundTripEveryModel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	for _, from := range tenant.Models {
		src := e.create(t, "src-"+string(from), from)
		e.seed(t, src, 40)
		// A neighbour in the same tables, which no archive may carry.
		other := e.create(t, "other-"+string(from), from)
		e.seed(t, other, 7)
		data, m := e.exportBytes(t, src)
		if m.Tenant.ID != src.ID || m.Tenant.Model != from || m.SchemaVersion != 1 || m.Format != FormatVersion {
			t.Fatalf("manifest of %s: %+v", src.Slug, m)
		}
		if got := m.Rows(); got != 40+120+40 {
			t.Fatalf("%s: archive holds %d rows, want 200 (40 products, 120 movements, 40 levels)", src.Slug, got)
		}
		vm, err := Verify(bytes.NewReader(data))
		must(t, err)
		sameRows(t, "verify "+src.Slug, m, vm)
		for _, to := range tenant.Models {
			slug := "copy-" + string(from) + "-" + string(to)
			got, im, err := Import(ctx, e.p, bytes.NewReader(data), ImportOptions{Slug: slug, Model: to})
			if err != nil {
				t.Fatalf("import %s into %s: %v", from, to, err)
			}
			if got.Model != to || got.State != tenant.StateActive || got.DisplayName != src.DisplayName || got.SchemaVersion != 1 {
				t.Fatalf("imported tenant: %+v", got)
			}
			sameRows(t, "import manifest", m, im)
			_, back := e.exportBytes(t, got)
			sameRows(t, fmt.Sprintf("%s → %s, exported again", from, to), m, back)
			e.noForeignRows(t, got)
			// The identity sequence stands past the imported ids.
			c := e.conn(t, got)
			_, err = c.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (tenant_id, name) VALUES ($1, 'new')`, ident.Quote(got.Schema, "products")), got.ID)
			if err != nil {
				t.Errorf("%s → %s: insert after import: %v", from, to, err)
			}
		}
		// The neighbour is untouched.
		_, om := e.exportBytes(t, other)
		if om.Rows() != 7+21+7 {
			t.Errorf("neighbour of %s holds %d rows after the imports, want 35", from, om.Rows())
		}
	}
}

// noForeignRows fails if tn's tables hold rows of another tenant (schema
// and database models, where the tables are tn's alone).
func (e *env) noForeignRows(t *testing.T, tn tenant.Tenant) {
	t.Helper()
	if tn.Model == tenant.ModelRow {
		return
	}
	c := e.conn(t, tn)
	for _, table := range []string{"products", "movements", "levels"} {
		var n int
		must(t, c.QueryRow(t.Context(), fmt.Sprintf(`SELECT count(*) FROM %s WHERE tenant_id <> $1`, ident.Quote(tn.Schema, table)), tn.ID).Scan(&n))
		if n != 0 {
			t.Errorf("%s.%s holds %d rows of another tenant", tn.Slug, table, n)
		}
	}
}

// footprint is what an installation holds: tenants, and the schemas,
// databases and roles named for tenants.
func (e *env) footprint(t *testing.T) string {
	t.Helper()
	var s string
	mine := "% installation " + e.p.Installation().ID.String()
	must(t, e.pool.QueryRow(t.Context(), `SELECT
		coalesce((SELECT string_agg(slug || ':' || state, ',' ORDER BY slug) FROM landlord.tenants), '') || ' / ' ||
		coalesce((SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname ~ '^t_'), '') || ' / ' ||
		coalesce((SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database
			WHERE datname ~ '^t_' AND shobj_description(oid, 'pg_database') LIKE $1), '') || ' / ' ||
		coalesce((SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles
			WHERE rolname ~ '^r_' AND shobj_description(oid, 'pg_authid') LIKE $1), '') || ' / ' ||
		(SELECT count(*) FROM shared.products)`, mine).Scan(&s))
	return s
}

// rewrite decompresses an archive, lets edit change its frames, and
// compresses it again: an archive altered by someone who knows the
// format, which only the digests can catch.
func rewrite(t *testing.T, data []byte, edit func(kind byte, payload []byte) []byte) []byte {
	t.Helper()
	rd, err := newReader(bytes.NewReader(data))
	must(t, err)
	var out bytes.Buffer
	w, err := newWriter(&out, 1)
	must(t, err)
	hb, err := json.Marshal(rd.header)
	must(t, err)
	if p := edit(frameHeader, hb); p != nil {
		must(t, w.frame(frameHeader, p))
	}
	for {
		kind, p, err := rd.next()
		if err != nil {
			break // the end of the stream
		}
		if p := edit(kind, slices.Clone(p)); p != nil {
			must(t, w.frame(kind, p))
		}
	}
	must(t, w.close())
	return out.Bytes()
}

func TestBadArchivesCreateNothing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	src := e.create(t, "source", tenant.ModelSchema)
	e.seed(t, src, 30)
	data, _ := e.exportBytes(t, src)
	before := e.footprint(t)

	flip := slices.Clone(data)
	flip[len(flip)/2] ^= 0x55
	cases := []struct {
		name string
		data []byte
		want error
		says string
	}{
		{"empty", nil, ErrBadArchive, "not gzip"},
		{"not an archive", []byte("hello, world"), ErrBadArchive, "not gzip"},
		{"truncated in the middle", data[:len(data)/2], ErrBadArchive, "truncated"},
		{"truncated at the end", data[:len(data)-3], ErrBadArchive, ""},
		{"one byte flipped", flip, ErrBadArchive, ""},
		{"rows altered", rewrite(t, data, func(kind byte, p []byte) []byte {
			if kind == frameData {
				return bytes.Replace(p, []byte("product 1"), []byte("product 9"), 1)
			}
			return p
		}), ErrBadArchive, "altered or damaged"},
		{"a row added with its table's end", rewrite(t, data, addRow(t)), ErrBadArchive, "manifest says"},
		{"manifest missing", rewrite(t, data, func(kind byte, p []byte) []byte {
			if kind == frameManifest {
				return nil
			}
			return p
		}), ErrBadArchive, "truncated"},
		{"data after the manifest", append(slices.Clone(data), data...), ErrBadArchive, "follows the manifest"},
		{"newer format", rewrite(t, data, setField(t, "format", 2)), ErrBadArchive, "newer than this Landlord reads"},
		{"other schema version", rewrite(t, data, setField(t, "schema_version", 7)), ErrIncompatible, "version 7"},
		{"a setting out of range", rewrite(t, data, func(kind byte, p []byte) []byte {
			if kind != frameHeader && kind != frameManifest {
				return p
			}
			var m map[string]any
			must(t, json.Unmarshal(p, &m))
			m["tenant"].(map[string]any)["settings"] = map[string]string{"work_mem": "1kB"}
			b, err := json.Marshal(m)
			must(t, err)
			return b
		}), ErrBadArchive, "work_mem"},
		// A forger's archive, digests and all, still lands nowhere but in
		// its target: a row cannot carry a field more (another tenant's
		// id, say), nor the archive a tenant_id column of its own.
		{"forged: a field more", forge(t, data, func(table string, p []byte) []byte {
			if table != "products" {
				return p
			}
			i := bytes.IndexByte(p, '\n')
			return slices.Concat(p[:i], []byte("\t"+tenant.NewID().String()), p[i:])
		}), nil, "extra data after last expected column"},
		{"forged: a tenant_id column", rewrite(t, data, func(kind byte, p []byte) []byte {
			if kind == frameHeader || kind == frameManifest {
				return bytes.Replace(p, []byte(`"name":"name"`), []byte(`"name":"tenant_id"`), 1)
			}
			return p
		}), ErrBadArchive, "tenant_id"},
	}
	for _, c := range cases {
		_, _, err := Import(ctx, e.p, bytes.NewReader(c.data), ImportOptions{Slug: "imported"})
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: got %v, want %v saying %q", c.name, err, c.want, c.says)
		}
		if _, verr := Verify(bytes.NewReader(c.data)); c.want == ErrBadArchive && !errors.Is(verr, ErrBadArchive) {
			t.Errorf("%s: Verify: %v", c.name, verr)
		}
		// Read as a stream, not a file: the tenant is made, the archive
		// found bad while its rows go in, and the tenant removed again.
		_, _, err = Import(ctx, e.p, io.MultiReader(bytes.NewReader(c.data)), ImportOptions{Slug: "streamed", Model: tenant.ModelDatabase})
		if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s, streamed: got %v, want %v", c.name, err, c.want)
		}
		if after := e.footprint(t); after != before {
			t.Fatalf("%s: the installation changed:\nbefore %s\nafter  %s", c.name, before, after)
		}
	}
}

// addRow adds a row to the products table and fixes that table's end
// frame, leaving the manifest as it was.
func addRow(t *testing.T) func(byte, []byte) []byte {
	var table string
	var added bool
	sum, rows := sha256.New(), int64(0)
	return func(kind byte, p []byte) []byte {
		products := strings.Contains(table, `"products"`)
		switch kind {
		case frameTable:
			table = string(p)
		case frameData:
			if products && !added {
				line := p[:bytes.IndexByte(p, '\n')+1]
				extra := append([]byte("999999"), line[bytes.IndexByte(line, '\t'):]...)
				p, added = append(p, extra...), true
			}
			if products {
				sum.Write(p)
				rows += int64(bytes.Count(p, []byte{'\n'}))
			}
		case frameEnd:
			if products {
				b, err := json.Marshal(tableEnd{Rows: rows, SHA256: hex.EncodeToString(sum.Sum(nil))})
				must(t, err)
				return b
			}
		}
		return p
	}
}

// forge rewrites an archive as someone who knows the format would: edit
// changes the rows of the tables, and every table end and the manifest are
// computed again to match, so that only what the import itself checks
// stands in the way.
func forge(t *testing.T, data []byte, edit func(table string, rows []byte) []byte) []byte {
	t.Helper()
	var table string
	var ends []tableEnd
	sum, rows := sha256.New(), int64(0)
	return rewrite(t, data, func(kind byte, p []byte) []byte {
		switch kind {
		case frameTable:
			var b struct{ Name string }
			must(t, json.Unmarshal(p, &b))
			table, sum, rows = b.Name, sha256.New(), 0
		case frameData:
			p = edit(table, p)
			sum.Write(p)
			rows += int64(bytes.Count(p, []byte{'\n'}))
		case frameEnd:
			e := tableEnd{Rows: rows, SHA256: hex.EncodeToString(sum.Sum(nil))}
			ends = append(ends, e)
			b, err := json.Marshal(e)
			must(t, err)
			return b
		case frameManifest:
			var m Manifest
			must(t, json.Unmarshal(p, &m))
			for i := range m.Tables {
				m.Tables[i].Rows, m.Tables[i].SHA256 = ends[i].Rows, ends[i].SHA256
			}
			b, err := json.Marshal(m)
			must(t, err)
			return b
		}
		return p
	})
}

func setField(t *testing.T, field string, v any) func(byte, []byte) []byte {
	return func(kind byte, p []byte) []byte {
		if kind != frameHeader && kind != frameManifest {
			return p
		}
		var m map[string]any
		must(t, json.Unmarshal(p, &m))
		m[field] = v
		b, err := json.Marshal(m)
		must(t, err)
		return b
	}
}

func TestImportOverExistingTenant(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	for _, m := range tenant.Models {
		src := e.create(t, "from-"+string(m), m)
		e.seed(t, src, 12)
		data, sm := e.exportBytes(t, src)
		dst := e.create(t, "into-"+string(m), m)
		e.seed(t, dst, 50)
		got, _, err := Import(ctx, e.p, bytes.NewReader(data), ImportOptions{Replace: dst.ID})
		must(t, err)
		if got.ID != dst.ID || got.Slug != dst.Slug {
			t.Fatalf("import over %s returned %+v", dst.Slug, got)
		}
		_, back := e.exportBytes(t, dst)
		sameRows(t, "replaced "+string(m), sm, back)
	}
	// Options that contradict Replace are refused.
	a := e.create(t, "alpha", tenant.ModelRow)
	data, _ := e.exportBytes(t, a)
	if _, _, err := Import(ctx, e.p, bytes.NewReader(data), ImportOptions{Replace: a.ID, Slug: "beta"}); err == nil {
		t.Error("Replace with a slug: no error")
	}
}

func TestCloneAndProgress(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	src := e.create(t, "original", tenant.ModelRow)
	e.seed(t, src, 25)
	var steps []Progress
	var buf bytes.Buffer
	m, err := Export(ctx, e.p, src.ID, &buf, ExportOptions{Progress: func(p Progress) { steps = append(steps, p) }})
	must(t, err)
	last := steps[len(steps)-1]
	if last.Rows != m.Rows() || last.Tables != 3 || last.TableIndex != 3 {
		t.Errorf("last export progress %+v, archive holds %d rows", last, m.Rows())
	}
	steps = nil
	_, _, err = Import(ctx, e.p, bytes.NewReader(buf.Bytes()), ImportOptions{Slug: "restored", Progress: func(p Progress) { steps = append(steps, p) }})
	must(t, err)
	last = steps[len(steps)-1]
	if last.Rows != m.Rows() || last.Total != m.Rows() {
		t.Errorf("last import progress %+v, archive holds %d rows", last, m.Rows())
	}
	for i := 1; i < len(steps); i++ {
		if steps[i].Rows < steps[i-1].Rows {
			t.Fatalf("progress went back: %+v after %+v", steps[i], steps[i-1])
		}
	}

	c, cm, err := Clone(ctx, e.p, src.ID, ImportOptions{Slug: "twin", Model: tenant.ModelDatabase})
	must(t, err)
	if c.Model != tenant.ModelDatabase || c.Slug != "twin" {
		t.Fatalf("clone: %+v", c)
	}
	sameRows(t, "clone", m, cm)
	_, back := e.exportBytes(t, c)
	sameRows(t, "clone exported again", m, back)

	// A clone onto a taken slug, or of a missing tenant, makes nothing.
	before := e.footprint(t)
	if _, _, err := Clone(ctx, e.p, src.ID, ImportOptions{Slug: "twin"}); !errors.Is(err, tenant.ErrSlugTaken) {
		t.Errorf("clone onto a taken slug: %v", err)
	}
	if _, _, err := Clone(ctx, e.p, tenant.NewID(), ImportOptions{Slug: "ghost"}); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("clone of a missing tenant: %v", err)
	}
	if _, _, err := Clone(ctx, e.p, src.ID, ImportOptions{}); !errors.Is(err, tenant.ErrBadSlug) {
		t.Errorf("clone without a slug: %v", err)
	}
	if after := e.footprint(t); after != before {
		t.Errorf("failed clones changed the installation:\nbefore %s\nafter  %s", before, after)
	}
}

// TestReconcileRemovesUnfinishedImport: the importing process dies while
// rows go in. The tenant stays in provisioning, is never finished empty, and
// Reconcile deletes it.
func TestReconcileRemovesUnfinishedImport(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	for _, m := range tenant.Models {
		before := e.footprint(t)
		done := make(chan tenant.ID)
		go func() {
			var id tenant.ID
			defer func() { done <- id }()
			_, _ = e.p.Create(ctx, provision.Request{Slug: "dying-" + string(m), Model: m, Fill: func(ctx context.Context, tn tenant.Tenant) error {
				id = tn.ID
				runtime.Goexit() // the process dies here: nothing after runs
				return nil
			}})
		}()
		id := <-done
		tn, err := e.p.Directory().Get(ctx, id)
		must(t, err)
		if tn.State != tenant.StateProvisioning {
			t.Fatalf("%s: state %s after the crash", m, tn.State)
		}
		if _, err := e.p.Resume(ctx, id); !errors.Is(err, provision.ErrUnfilled) {
			t.Errorf("%s: resume of an unfilled tenant: %v", m, err)
		}
		rep, err := e.p.Reconcile(ctx)
		must(t, err)
		if !slices.Contains(rep.Deleted, id) {
			t.Errorf("%s: Reconcile did not delete the unfilled tenant: %+v", m, rep)
		}
		if after := e.footprint(t); after != before {
			t.Errorf("%s: left behind:\nbefore %s\nafter  %s", m, before, after)
		}
	}
}

// TestImportAsOwner: an administrator that is not a superuser imports into
// schema and database tenants as the owner role, which leaves the tables
// as it found them; into the shared tables it is refused before anything
// is made.
func TestImportAsOwner(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	src := e.create(t, "plain", tenant.ModelRow)
	e.seed(t, src, 20)
	e.seed(t, e.create(t, "neighbour", tenant.ModelRow), 5)
	data, sm := e.exportBytes(t, src)
	p, err := provision.New(ctx, ownerPool(t, e), testMigrations(), provision.Config{})
	must(t, err)
	// Row-level security applies to this administrator: it reads the
	// tenant's rows, and only those, as the owner in the tenant's context.
	var owned bytes.Buffer
	om, err := Export(ctx, p, src.ID, &owned, ExportOptions{})
	must(t, err)
	sameRows(t, "exported as the owner", sm, om)
	before := e.footprint(t)
	if _, _, err := Import(ctx, p, bytes.NewReader(data), ImportOptions{Slug: "nope"}); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("import into the row model as the owner: %v", err)
	}
	if after := e.footprint(t); after != before {
		t.Errorf("refused import changed the installation")
	}
	for _, m := range []tenant.Model{tenant.ModelSchema, tenant.ModelDatabase} {
		got, _, err := Import(ctx, p, bytes.NewReader(data), ImportOptions{Slug: "owned-" + string(m), Model: m})
		if err != nil {
			t.Fatalf("import into %s as the owner: %v", m, err)
		}
		_, back := e.exportBytes(t, got)
		sameRows(t, "imported as the owner into "+string(m), sm, back)
		// Over it again, as an import over a live tenant.
		_, _, err = Import(ctx, p, bytes.NewReader(data), ImportOptions{Replace: got.ID})
		must(t, err)
		_, back = e.exportBytes(t, got)
		sameRows(t, "imported over as the owner into "+string(m), sm, back)
		c := e.conn(t, got)
		var forced, triggers int
		must(t, c.QueryRow(ctx, `SELECT count(*) FILTER (WHERE c.relforcerowsecurity),
			(SELECT count(*) FROM pg_trigger g JOIN pg_class x ON x.oid = g.tgrelid JOIN pg_namespace y ON y.oid = x.relnamespace
				WHERE y.nspname = $1 AND NOT g.tgisinternal AND g.tgenabled = 'O')
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'`, got.Schema).Scan(&forced, &triggers))
		if forced != 3 || triggers != 1 {
			t.Errorf("%s after the import: %d of 3 tables force row-level security, %d of 1 trigger enabled", m, forced, triggers)
		}
	}
}

func ownerPool(t *testing.T, e *env) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), e.db.URL)
	must(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// TestImportFromPipe: standard input is an *os.File that cannot seek; an
// archive read from one is checked as it is read, not refused.
func TestImportFromPipe(t *testing.T) {
	t.Parallel()
	e := setup(t)
	src := e.create(t, "piped", tenant.ModelSchema)
	e.seed(t, src, 5)
	data, m := e.exportBytes(t, src)
	r, w, err := os.Pipe()
	must(t, err)
	defer r.Close()
	go func() {
		_, _ = w.Write(data)
		w.Close()
	}()
	got, im, err := Import(t.Context(), e.p, r, ImportOptions{Slug: "from-pipe"})
	if err != nil {
		t.Fatalf("import from a pipe: %v", err)
	}
	sameRows(t, "from a pipe", m, im)
	_, back := e.exportBytes(t, got)
	sameRows(t, "from a pipe, exported again", m, back)
}

// TestChangedSums: keyed by every row, ChangedSums sums what Sums does;
// keyed by some, it counts every row and sums those it finds; keys that
// are not the primary key's columns are refused.
func TestChangedSums(t *testing.T) {
	e := setup(t)
	ctx := t.Context()
	for _, m := range []tenant.Model{tenant.ModelRow, tenant.ModelSchema} {
		tn := e.create(t, "sums-"+string(m), m)
		e.seed(t, tn, 20)
		other := e.create(t, "beside-"+string(m), m)
		e.seed(t, other, 5)
		c := e.conn(t, tn)
		var ids []string
		rows, err := c.Query(ctx, fmt.Sprintf(`SELECT id::text FROM %s WHERE tenant_id = $1 ORDER BY id`, ident.Quote(tn.Schema, "products")), tn.ID)
		must(t, err)
		for rows.Next() {
			var id string
			must(t, rows.Scan(&id))
			ids = append(ids, id)
		}
		must(t, rows.Err())
		keysOf := func(ids ...string) map[string]Keys {
			k := Keys{Columns: []string{"tenant_id", "id"}}
			for _, id := range ids {
				k.Values = append(k.Values, []string{tn.ID.String(), id})
			}
			return map[string]Keys{"products": k}
		}
		sums := func(keys map[string]Keys) (map[string]Sum, error) {
			tx, err := c.Begin(ctx)
			must(t, err)
			defer tx.Rollback(ctx)
			if keys == nil {
				return Sums(ctx, e.p, tx, tn)
			}
			return ChangedSums(ctx, e.p, tx, tn, keys)
		}
		all, err := sums(nil)
		must(t, err)
		keyed, err := sums(keysOf(ids...))
		must(t, err)
		if p := keyed["products"]; p.Rows != 20 || p.Keyed != 20 || p.Hash != all["products"].Hash {
			t.Errorf("%s: keyed by every row: %+v, want the sum %+v", m, p, all["products"])
		}
		if mv := keyed["movements"]; mv.Rows != all["movements"].Rows || mv.Rows != 60 || mv.Hash != "0" {
			t.Errorf("%s: a table without keys: %+v, want its count and no sum", m, mv)
		}
		some, err := sums(keysOf(ids[0], ids[3], "999999"))
		must(t, err)
		if p := some["products"]; p.Rows != 20 || p.Keyed != 2 || p.Hash == "0" || p.Hash == all["products"].Hash {
			t.Errorf("%s: keyed by two rows and one missing: %+v", m, p)
		}
		if _, err := sums(map[string]Keys{"products": {Columns: []string{"name"}, Values: [][]string{{"x"}}}}); err == nil {
			t.Errorf("%s: keys by a column outside the primary key were taken", m)
		}
		if _, err := sums(map[string]Keys{"nope": {Columns: []string{"id"}, Values: [][]string{{"1"}}}}); err == nil {
			t.Errorf("%s: keys of a table that is not there were taken", m)
		}
	}
}

// A tenant's own limits travel with its archive: a new tenant imported or
// cloned from it gets them before it serves, and a tenant imported over
// keeps its own.
func TestSettingsTravel(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	dir := e.p.Directory()
	src := e.create(t, "limited", tenant.ModelRow)
	e.seed(t, src, 5)
	limits := tenant.Settings{StatementTimeout: 2 * time.Second, WorkMem: 8192, MaxConns: 3}
	_, err := dir.SetSettings(ctx, src.ID, limits, "test")
	must(t, err)
	data, m := e.exportBytes(t, src)
	if m.Tenant.Settings != limits {
		t.Fatalf("manifest settings %v, want %v", m.Tenant.Settings, limits)
	}
	settingsOf := func(id tenant.ID) tenant.Settings {
		got, err := dir.Get(ctx, id)
		must(t, err)
		return got.Settings
	}
	imported, _, err := Import(ctx, e.p, bytes.NewReader(data), ImportOptions{Slug: "imported", Model: tenant.ModelSchema})
	must(t, err)
	if got := settingsOf(imported.ID); got != limits {
		t.Errorf("imported tenant's settings %v, want %v", got, limits)
	}
	twin, _, err := Clone(ctx, e.p, src.ID, ImportOptions{Slug: "twin"})
	must(t, err)
	if got := settingsOf(twin.ID); got != limits {
		t.Errorf("clone's settings %v, want %v", got, limits)
	}
	own := tenant.Settings{LockTimeout: time.Second}
	dst := e.create(t, "target", tenant.ModelRow)
	_, err = dir.SetSettings(ctx, dst.ID, own, "test")
	must(t, err)
	_, _, err = Import(ctx, e.p, bytes.NewReader(data), ImportOptions{Replace: dst.ID})
	must(t, err)
	if got := settingsOf(dst.ID); got != own {
		t.Errorf("tenant imported over: settings %v, want its own %v", got, own)
	}
	// Without settings the manifest has none to write.
	plain := e.create(t, "plain", tenant.ModelRow)
	raw, _ := e.exportBytes(t, plain)
	if bytes.Contains(raw, []byte(`"settings"`)) {
		t.Error("an archive of a tenant without settings names settings")
	}
}

// TestClonesStoreWithoutCompressing: the archive that Clone and Copy pass
// from the export to the import inside the process is stored, not
// compressed (compressing it was most of the client's work in a move);
// a file is compressed.
func TestClonesStoreWithoutCompressing(t *testing.T) {
	t.Parallel()
	e := setup(t)
	src := e.create(t, "stored", tenant.ModelRow)
	e.seed(t, src, 200)
	for _, tc := range []struct {
		name  string
		store bool
	}{{"file", false}, {"clone", true}} {
		var buf bytes.Buffer
		if _, err := exportPlacement(t.Context(), e.p, src, &buf, ExportOptions{store: tc.store}); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		gz, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
		must(t, err)
		plain, err := io.ReadAll(gz)
		must(t, err)
		if stored := buf.Len() >= len(plain); stored != tc.store {
			t.Errorf("%s: %d bytes written for %d bytes of archive: stored %v, want %v", tc.name, buf.Len(), len(plain), stored, tc.store)
		}
	}
}
