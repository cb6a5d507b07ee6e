package directory

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/tenant"
)

func TestMigrations(t *testing.T) {
	t.Parallel()
	set := Migrations()
	if set.Head() < 1 || len(set.Migrations()) == 0 {
		t.Fatalf("control schema migrations: head %d, %d files", set.Head(), len(set.Migrations()))
	}
	for _, m := range set.Migrations() {
		if m.NoTransaction {
			t.Errorf("%s runs outside a transaction; the control schema must move atomically", m.Name)
		}
	}
	if Migrations().Hash() != set.Hash() {
		t.Errorf("Migrations is not stable")
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	db := srv.NewDB(t, nil)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, db.URL)
	must(t, err)
	defer conn.Close(ctx)
	must(t, prepareOwner(ctx, conn))
	pool := openPool(t, db.URL)
	d := New(pool)
	if err := d.Migrate(ctx, owner); err != nil {
		t.Fatalf("migrate: %v", err)
	}

	catalog := func() string {
		var s string
		must(t, conn.QueryRow(ctx, `SELECT concat_ws(E'\n',
			(SELECT string_agg(c.relname || ':' || c.relkind::text || ':' || c.relowner::regrole::text, ' ' ORDER BY c.relname)
			 FROM pg_class c WHERE c.relnamespace = 'landlord'::regnamespace AND c.relkind IN ('r', 'i')),
			(SELECT string_agg(p.proname || ':' || p.proowner::regrole::text || ':' || array_to_string(p.proconfig, ','), ' ' ORDER BY p.proname)
			 FROM pg_proc p WHERE p.pronamespace = 'landlord'::regnamespace),
			(SELECT string_agg(tgname, ' ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'landlord.tenants'::regclass AND NOT tgisinternal),
			(SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'landlord'),
			(SELECT string_agg(target || ':' || version || ':' || applied_at, ' ' ORDER BY version) FROM landlord.target_migrations))`).Scan(&s))
		return s
	}
	before := catalog()
	for _, want := range []string{
		"installation:r:" + owner, "servers:r:" + owner, "tenants:r:" + owner, "provisioning_ledger:r:" + owner,
		"target_migrations:r:" + owner, "tenants_slug_key:i:" + owner,
		"tenants_bump_epoch:" + owner + ":search_path=pg_catalog", "tenants_notify:" + owner + ":search_path=pg_catalog",
		"\ntenants_bump_epoch tenants_notify\n" + owner + "\n", "landlord:1:",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("control schema lacks %q:\n%s", want, before)
		}
	}
	if err := d.Migrate(ctx, owner); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	if after := catalog(); after != before {
		t.Errorf("second migrate changed the control schema:\nbefore %s\nafter  %s", before, after)
	}

	// A first Installation creates the row; later calls return it.
	in, err := d.Installation(ctx)
	must(t, err)
	if in.ID.IsZero() || len(in.Secret) < 32 {
		t.Errorf("installation %s with a %d-byte secret", in.ID, len(in.Secret))
	}
	again, err := d.Installation(ctx)
	must(t, err)
	if again.ID != in.ID || !bytes.Equal(again.Secret, in.Secret) {
		t.Errorf("a second Installation changed it")
	}
}

// TestInstallationOfClone: the test database is a clone of the template, so
// it is a new installation with the template's secret.
func TestInstallationOfClone(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	var tplID tenant.ID
	var tplSecret []byte
	var tplOID, curOID uint32
	must(t, e.pool.QueryRow(ctx, `SELECT id, secret, database_oid, (SELECT oid FROM pg_database WHERE datname = current_database())
		FROM landlord.installation`).Scan(&tplID, &tplSecret, &tplOID, &curOID))
	if tplOID == curOID {
		t.Fatalf("the clone's installation row already names it")
	}
	in, err := e.d.Installation(ctx)
	must(t, err)
	if in.ID == tplID || !bytes.Equal(in.Secret, tplSecret) {
		t.Errorf("clone: id %s (template %s), same secret %t; want a new id and the same secret", in.ID, tplID, bytes.Equal(in.Secret, tplSecret))
	}
	var oid uint32
	must(t, e.pool.QueryRow(ctx, `SELECT database_oid FROM landlord.installation`).Scan(&oid))
	if oid != curOID {
		t.Errorf("installation row names database %d, want %d", oid, curOID)
	}
	again, err := e.d.Installation(ctx)
	must(t, err)
	if again.ID != in.ID {
		t.Errorf("a second Installation in the clone changed the id again")
	}
}

func TestServers(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	must(t, e.d.EnsureServer(ctx, Server{ID: "east", Host: "db-east.internal", Port: 5433, Database: "control"}))
	// A server with a host keeps its recorded database; the directory's
	// own server follows the control database's name.
	must(t, e.d.EnsureServer(ctx, Server{ID: "east", Host: "db-east.internal", Port: 5433, Database: "renamed"}))
	must(t, e.d.EnsureServer(ctx, Server{ID: DefaultServer, Database: "copy_of_control"}))
	got, err := e.d.Servers(ctx)
	must(t, err)
	want := []Server{
		{ID: "east", Host: "db-east.internal", Port: 5433, Database: "control"},
		{ID: DefaultServer, Database: "copy_of_control"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("servers %+v, want %+v", got, want)
	}
	for _, bad := range []Server{{ID: "East", Database: "x"}, {ID: "a'; --", Database: "x"}, {ID: "p", Host: "h", Port: 70000, Database: "x"}} {
		if err := e.d.EnsureServer(ctx, bad); err == nil {
			t.Errorf("EnsureServer(%+v) accepted", bad)
		}
	}
}

func TestInsertAndGet(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	id := tenant.NewID()
	in := tenant.Tenant{
		ID: id, Slug: "acme", DisplayName: "Acme ✓", Model: tenant.ModelSchema, Server: DefaultServer,
		Schema: id.SchemaName(), Database: e.db.Name, State: tenant.StateProvisioning, SchemaVersion: 7,
	}
	must(t, e.d.Insert(ctx, in))
	got := e.get(t, id)
	if got.ID != id || got.Slug != "acme" || got.DisplayName != "Acme ✓" || got.Model != tenant.ModelSchema ||
		got.Server != DefaultServer || got.Schema != id.SchemaName() || got.Database != e.db.Name ||
		got.State != tenant.StateProvisioning || got.SchemaVersion != 7 || got.Epoch != 1 {
		t.Errorf("Get returned %+v, want what was inserted (%+v) at epoch 1", got, in)
	}
	if got.CreatedAt.IsZero() || !got.UpdatedAt.Equal(got.CreatedAt) {
		t.Errorf("timestamps created %v updated %v", got.CreatedAt, got.UpdatedAt)
	}
	for _, slug := range []string{"acme", "ACME", "Acme"} {
		bySlug, err := e.d.GetBySlug(ctx, slug)
		if err != nil || bySlug.ID != id {
			t.Errorf("GetBySlug(%q): %+v, %v", slug, bySlug, err)
		}
	}
	if _, err := e.d.GetBySlug(ctx, "acme-two"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("GetBySlug of an unknown slug: %v, want ErrNotFound", err)
	}
	if _, err := e.d.GetBySlug(ctx, "x'; DROP TABLE landlord.tenants; --"); !errors.Is(err, tenant.ErrBadSlug) {
		t.Errorf("GetBySlug of a bad slug: %v, want ErrBadSlug", err)
	}
	if _, err := e.d.Get(ctx, tenant.NewID()); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("Get of an unknown id: %v, want ErrNotFound", err)
	}

	// The slug is unique.
	dup := in
	dup.ID = tenant.NewID()
	dup.Schema = dup.ID.SchemaName()
	if err := e.d.Insert(ctx, dup); !errors.Is(err, tenant.ErrSlugTaken) {
		t.Errorf("Insert of a taken slug: %v, want ErrSlugTaken", err)
	}
	// Other refusals are not reported as a taken slug, and write nothing.
	unknownServer := dup
	unknownServer.Slug, unknownServer.Server = "other", "nowhere"
	unnormalized := dup
	unnormalized.Slug = "Other"
	longName := dup
	longName.Slug, longName.DisplayName = "other", strings.Repeat("x", 201)
	for _, bad := range []tenant.Tenant{unknownServer, unnormalized, longName} {
		if err := e.d.Insert(ctx, bad); err == nil || errors.Is(err, tenant.ErrSlugTaken) {
			t.Errorf("Insert(%q on %q): %v, want a refusal other than ErrSlugTaken", bad.Slug, bad.Server, err)
		}
	}
	if _, err := e.d.Get(ctx, dup.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("a refused Insert left a row: %v", err)
	}
	steps, err := e.d.Steps(ctx, dup.ID)
	must(t, err)
	if len(steps) != 0 {
		t.Errorf("a refused Insert left ledger rows %+v", steps)
	}
	steps, err = e.d.Steps(ctx, id)
	must(t, err)
	if want := []Step{{Operation: "create", Step: "intent", Detail: "schema acme"}}; !slices.Equal(undated(t, steps), want) {
		t.Errorf("ledger after Insert: %+v, want %+v", steps, want)
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	must(t, e.d.EnsureServer(ctx, Server{ID: "east", Host: "h", Port: 5432, Database: "c"}))
	c := e.insert(t, "charlie", tenant.ModelRow, tenant.StateActive)
	a := e.insert(t, "alpha", tenant.ModelSchema, tenant.StateActive)
	d := e.insert(t, "delta", tenant.ModelDatabase, tenant.StateSuspended)
	b := e.insert(t, "bravo", tenant.ModelSchema, tenant.StateProvisioning)
	_, err := e.pool.Exec(ctx, `UPDATE landlord.tenants SET server_id = 'east' WHERE id = $1`, d.ID)
	must(t, err)
	for _, c := range []struct {
		f    Filter
		want []tenant.Tenant
	}{
		{Filter{}, []tenant.Tenant{a, b, c, d}},
		{Filter{Model: tenant.ModelSchema}, []tenant.Tenant{a, b}},
		{Filter{State: tenant.StateActive}, []tenant.Tenant{a, c}},
		{Filter{Model: tenant.ModelSchema, State: tenant.StateActive}, []tenant.Tenant{a}},
		{Filter{Server: "east"}, []tenant.Tenant{d}},
		{Filter{Server: DefaultServer, Model: tenant.ModelDatabase}, nil},
		{Filter{Model: "x' OR true --"}, nil},
	} {
		got, err := e.d.List(ctx, c.f)
		must(t, err)
		var gotSlugs, wantSlugs []string
		for _, tn := range got {
			gotSlugs = append(gotSlugs, tn.Slug)
		}
		for _, tn := range c.want {
			wantSlugs = append(wantSlugs, tn.Slug)
		}
		if !slices.Equal(gotSlugs, wantSlugs) {
			t.Errorf("List(%+v) = %v, want %v", c.f, gotSlugs, wantSlugs)
		}
	}
}

func TestSetState(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	tn := e.insert(t, "acme", tenant.ModelSchema, tenant.StateProvisioning)

	got, err := e.d.SetState(ctx, tn.ID, tenant.StateActive, tenant.StateProvisioning)
	if err != nil || got.State != tenant.StateActive || got.ID != tn.ID {
		t.Fatalf("SetState active from provisioning: %+v, %v", got, err)
	}
	if e.get(t, tn.ID).State != tenant.StateActive {
		t.Errorf("SetState returned active but did not store it")
	}
	// Any of several from-states.
	if _, err := e.d.SetState(ctx, tn.ID, tenant.StateSuspended, tenant.StateReadOnly, tenant.StateActive); err != nil {
		t.Errorf("SetState suspended from read_only or active: %v", err)
	}
	for _, c := range []struct {
		state tenant.State
		want  error
	}{
		{tenant.StateSuspended, tenant.ErrSuspended},
		{tenant.StateMoving, tenant.ErrMoving},
		{tenant.StateProvisioning, tenant.ErrNotReady},
		{tenant.StateDeleting, tenant.ErrNotReady},
	} {
		_, err := e.d.SetState(ctx, tn.ID, c.state) // no from-states: always allowed
		must(t, err)
		before := e.get(t, tn.ID)
		_, err = e.d.SetState(ctx, tn.ID, tenant.StateActive, tenant.StateReadOnly)
		var se *tenant.StateError
		if !errors.As(err, &se) || se.ID != tn.ID || se.State != c.state || !errors.Is(err, c.want) {
			t.Errorf("SetState active from read_only while %s: %v, want a StateError matching %v", c.state, err, c.want)
		}
		if after := e.get(t, tn.ID); after.State != c.state || after.Epoch != before.Epoch || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("a refused SetState changed the row: %+v → %+v", before, after)
		}
	}
	if _, err := e.d.SetState(ctx, tenant.NewID(), tenant.StateActive); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("SetState of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := e.d.SetState(ctx, tenant.NewID(), tenant.StateActive, tenant.StateProvisioning); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("SetState from provisioning of an unknown id: %v, want ErrNotFound", err)
	}
	if _, err := e.d.SetState(ctx, tn.ID, "bogus"); err == nil {
		t.Errorf("SetState to an unknown state accepted")
	}
}

// TestSetSettings: settings are stored, read back by every lookup, logged,
// and replaced whole; an unknown tenant is not found; a row whose settings
// were garbled by hand fails its lookup with a clear error.
func TestSetSettings(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	tn := e.insert(t, "acme", tenant.ModelRow, tenant.StateActive)
	if got := e.get(t, tn.ID); got.Settings != (tenant.Settings{}) {
		t.Fatalf("a new tenant has settings %v", got.Settings)
	}
	s := tenant.Settings{StatementTimeout: 2 * time.Second, WorkMem: 8192, MaxConns: 2}
	got, err := e.d.SetSettings(ctx, tn.ID, s, "ticket 1")
	if err != nil || got.Settings != s || got.Epoch != tn.Epoch {
		t.Fatalf("SetSettings = %+v, %v; want the settings, epoch %d", got, err, tn.Epoch)
	}
	if got := e.get(t, tn.ID); got.Settings != s {
		t.Errorf("Get after SetSettings: %v", got.Settings)
	}
	list, err := e.d.List(ctx, Filter{})
	if err != nil || len(list) != 1 || list[0].Settings != s {
		t.Errorf("List after SetSettings: %+v, %v", list, err)
	}
	if got, err := e.d.SetSettings(ctx, tn.ID, tenant.Settings{LockTimeout: time.Second}, "ticket 2"); err != nil || got.Settings != (tenant.Settings{LockTimeout: time.Second}) {
		t.Errorf("SetSettings replaces the settings whole: %v, %v", got.Settings, err)
	}
	steps, err := e.d.Steps(ctx, tn.ID)
	must(t, err)
	var logged []string
	for _, st := range steps {
		if st.Operation == SettingsOperation {
			logged = append(logged, st.Step+": "+strings.SplitN(st.Detail, " (by ", 2)[0])
		}
	}
	if want := []string{s.String() + ": ticket 1", "lock_timeout=1s: ticket 2"}; !slices.Equal(logged, want) {
		t.Errorf("ledger %q, want %q", logged, want)
	}
	if _, err := e.d.SetSettings(ctx, tenant.NewID(), s, "ticket 3"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("SetSettings of an unknown id: %v, want ErrNotFound", err)
	}
	_, err = e.pool.Exec(ctx, `UPDATE landlord.tenants SET settings = '{"work_mem": "lots"}' WHERE id = $1`, tn.ID)
	must(t, err)
	if _, err := e.d.Get(ctx, tn.ID); !errors.Is(err, tenant.ErrBadSetting) {
		t.Errorf("Get of a row with garbled settings: %v, want ErrBadSetting", err)
	}
	if _, err := e.pool.Exec(ctx, `UPDATE landlord.tenants SET settings = '[]' WHERE id = $1`, tn.ID); err == nil {
		t.Errorf("settings that are not an object were stored")
	}
}

// TestEpoch: the routing epoch moves when where or whether a tenant is served
// changes, and only then; updated_at moves on every change.
func TestEpoch(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	must(t, e.d.EnsureServer(ctx, Server{ID: "east", Host: "h", Port: 5432, Database: "c"}))
	tn := e.insert(t, "acme", tenant.ModelSchema, tenant.StateProvisioning)
	prev := tn
	step := func(what string, bump bool, change func() error) {
		t.Helper()
		if err := change(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		cur := e.get(t, tn.ID)
		want := prev.Epoch
		if bump {
			want++
		}
		if cur.Epoch != want {
			t.Errorf("%s: epoch %d → %d, want %d", what, prev.Epoch, cur.Epoch, want)
		}
		if !cur.UpdatedAt.After(prev.UpdatedAt) {
			t.Errorf("%s: updated_at %v → %v, want it to move", what, prev.UpdatedAt, cur.UpdatedAt)
		}
		if !cur.CreatedAt.Equal(tn.CreatedAt) {
			t.Errorf("%s: created_at moved", what)
		}
		prev = cur
	}
	exec := func(sql string) func() error {
		return func() error { _, err := e.pool.Exec(ctx, sql, tn.ID); return err }
	}
	setState := func(s tenant.State) func() error {
		return func() error { _, err := e.d.SetState(ctx, tn.ID, s); return err }
	}
	step("activate", true, setState(tenant.StateActive))
	step("schema version", false, func() error { return e.d.SetSchemaVersion(ctx, tn.ID, 3) })
	step("display name", false, exec(`UPDATE landlord.tenants SET display_name = 'New name' WHERE id = $1`))
	step("same state again", false, setState(tenant.StateActive))
	step("suspend", true, setState(tenant.StateSuspended))
	step("server", true, exec(`UPDATE landlord.tenants SET server_id = 'east' WHERE id = $1`))
	step("schema", true, exec(`UPDATE landlord.tenants SET schema_name = 'moved' WHERE id = $1`))
	step("database", true, exec(`UPDATE landlord.tenants SET database_name = 'moved' WHERE id = $1`))
	step("model", true, exec(`UPDATE landlord.tenants SET model = 'database' WHERE id = $1`))
	if got := e.get(t, tn.ID); got.SchemaVersion != 3 || got.DisplayName != "New name" {
		t.Errorf("row after the changes: %+v", got)
	}
	// A hand-written epoch is overwritten by the trigger's.
	step("explicit epoch", true, exec(`UPDATE landlord.tenants SET routing_epoch = 1, state = 'active' WHERE id = $1`))
}

func TestRemoveAndSteps(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := t.Context()
	tn := e.insert(t, "acme", tenant.ModelRow, tenant.StateActive)
	other := e.insert(t, "other", tenant.ModelRow, tenant.StateActive)
	must(t, e.d.Log(ctx, tn.ID, "create", "active", ""))
	must(t, e.d.Remove(ctx, tn.ID))
	if _, err := e.d.Get(ctx, tn.ID); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("Get after Remove: %v, want ErrNotFound", err)
	}
	if _, err := e.d.GetBySlug(ctx, "acme"); !errors.Is(err, tenant.ErrNotFound) {
		t.Errorf("GetBySlug after Remove: %v, want ErrNotFound", err)
	}
	e.get(t, other.ID)
	steps, err := e.d.Steps(ctx, tn.ID)
	must(t, err)
	want := []Step{
		{Operation: "create", Step: "intent", Detail: "row acme"},
		{Operation: "create", Step: "active"},
		{Operation: "delete", Step: "removed"},
	}
	if !slices.Equal(undated(t, steps), want) {
		t.Errorf("ledger after Remove: %+v, want %+v", steps, want)
	}
	// The slug is free again.
	e.insert(t, "acme", tenant.ModelSchema, tenant.StateProvisioning)
	if steps, err := e.d.Steps(ctx, tenant.NewID()); err != nil || len(steps) != 0 {
		t.Errorf("Steps of an unknown id: %+v, %v", steps, err)
	}
}

// undated checks that every step has its time and returns the steps
// without it, for comparisons.
func undated(t *testing.T, steps []Step) []Step {
	t.Helper()
	out := make([]Step, len(steps))
	for i, s := range steps {
		if s.At.IsZero() {
			t.Errorf("step %+v has no time", s)
		}
		s.At = time.Time{}
		out[i] = s
	}
	return out
}
