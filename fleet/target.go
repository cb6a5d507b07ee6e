package fleet

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// Kind says what a target is.
type Kind string

// The kinds of target.
const (
	KindShared   Kind = "shared"   // schema "shared" of a server: the row tenants' tables
	KindSchema   Kind = "schema"   // a schema tenant's schema
	KindDatabase Kind = "database" // the schema inside a database tenant's database
	KindTemplate Kind = "template" // a provisioning template (schema or database)
)

// Target is one place the migrations apply to.
type Target struct {
	// Key names the target in the directory: "server/database/schema".
	Key      string    `json:"key"`
	Kind     Kind      `json:"kind"`
	Tenant   tenant.ID `json:"tenant,omitzero"` // zero for shared schemas and templates
	Slug     string    `json:"slug,omitempty"`
	Server   string    `json:"server"`
	Database string    `json:"database"`
	Schema   string    `json:"schema"`
}

// location is a database on a server: where targets live, and what one
// connection reaches.
type location struct{ server, database string }

// item is a target as a run or a survey works on it.
type item struct {
	Target
	mt      migration.Target
	loc     location
	control bool // in the control database
	rank    int  // run order: tenants, shared schemas, schema template, template database

	// What the survey found.
	version int   // from the target's ledger; -1 when it could not be read
	pending []int // versions of the set above version
	// The global schema of the target's database, for a target outside
	// the control database when the installation has global tables.
	globalVersion int
	globalPending []int
	problem       error // why the ledger could not be read, or how it disagrees with the set
	mismatch      bool  // problem is a disagreement with the set, not a connection failure
	last          *LastRun
	held          int // id of another running run that holds the target; 0 if none

	dirVersion  int   // the tenant's schema_version in the directory
	rowVersions []int // shared schemas: the schema_versions of the server's row tenants

	// The template database is migrated through the provisioner, which
	// keeps it closed to connections between uses; while closed, the
	// survey takes its version from the provisioner's mark or the latest
	// run's record (see judgeClosed).
	templateDB bool
	closed     bool
}

// inSync reports whether the directory's schema_version of the target's
// tenants (the row tenants of its server, for a shared schema) agrees with
// the version the survey read from the ledger.
func (it *item) inSync() bool {
	switch it.Kind {
	case KindSchema, KindDatabase:
		return it.dirVersion == it.version
	case KindShared:
		for _, v := range it.rowVersions {
			if v != it.version {
				return false
			}
		}
	}
	return true
}

// tenantRef is a tenant as Config.Tenants names it.
type tenantRef struct {
	arg  string
	id   tenant.ID // zero when arg is not an id
	slug string    // normalized; "" when arg is not a valid slug
}

// parseTenantRef reads an id or a slug. An argument that is both (32 hex
// digits starting with a letter) is looked up as an id first.
func parseTenantRef(arg string) (tenantRef, error) {
	ref := tenantRef{arg: arg}
	if id, err := tenant.ParseID(arg); err == nil && !id.IsZero() {
		ref.id = id
	}
	slug, err := tenant.NormalizeSlug(arg)
	if err == nil {
		ref.slug = slug
	} else if ref.id.IsZero() {
		return ref, fmt.Errorf("%w (and not a tenant id either)", err)
	}
	return ref, nil
}

// excluded reports whether a tenant in state s is left out of fleet runs:
// the operation under way (provisioning, deleting, moving) owns its tables.
func excluded(s tenant.State) bool {
	return s == tenant.StateProvisioning || s == tenant.StateDeleting || s == tenant.StateMoving
}

// selection is the outcome of enumerating the targets.
type selection struct {
	items     []*item
	controlDB string
	servers   map[string]directory.Server
}

// targets lists the targets Config selects, in run order.
func (f *Fleet) targets(ctx context.Context) (*selection, error) {
	dir := f.prov.Directory()
	servers, err := dir.Servers(ctx)
	if err != nil {
		return nil, err
	}
	sel := &selection{servers: make(map[string]directory.Server, len(servers))}
	for _, s := range servers {
		sel.servers[s.ID] = s
	}
	control, ok := sel.servers[directory.DefaultServer]
	if !ok {
		return nil, fmt.Errorf("directory has no server %q: installation not bootstrapped", directory.DefaultServer)
	}
	sel.controlDB = control.Database
	all, err := dir.List(ctx, directory.Filter{})
	if err != nil {
		return nil, err
	}

	modelOK := func(m tenant.Model) bool { return len(f.cfg.Models) == 0 || slices.Contains(f.cfg.Models, m) }
	var chosen []tenant.Tenant
	if len(f.refs) > 0 {
		byID := make(map[tenant.ID]int, len(all))
		bySlug := make(map[string]int, len(all))
		for i, t := range all {
			byID[t.ID], bySlug[t.Slug] = i, i
		}
		seen := map[tenant.ID]bool{}
		for _, r := range f.refs {
			i, ok := byID[r.id]
			if r.id.IsZero() || !ok {
				i, ok = bySlug[r.slug]
				if r.slug == "" {
					ok = false
				}
			}
			if !ok {
				return nil, fmt.Errorf("tenant %q: %w", r.arg, tenant.ErrNotFound)
			}
			t := all[i]
			if excluded(t.State) {
				return nil, fmt.Errorf("tenant %q is %s: %w", r.arg, t.State, ErrNotMigratable)
			}
			if !seen[t.ID] && modelOK(t.Model) {
				seen[t.ID] = true
				chosen = append(chosen, t)
			}
		}
	} else {
		for _, t := range all {
			if !excluded(t.State) && modelOK(t.Model) {
				chosen = append(chosen, t)
			}
		}
	}

	loc := func(server, database string) (location, bool) {
		return location{server, database}, server == directory.DefaultServer && database == sel.controlDB
	}
	rowVersions := map[string][]int{}
	for _, t := range all {
		if t.Model == tenant.ModelRow && !slices.Contains(rowVersions[t.Server], t.SchemaVersion) {
			rowVersions[t.Server] = append(rowVersions[t.Server], t.SchemaVersion)
		}
	}
	sharedServers := map[string]bool{}
	if len(f.refs) == 0 && modelOK(tenant.ModelRow) {
		// Every server's shared tables, those without row tenants yet
		// too: a row tenant placed there later is created at the head.
		for id := range sel.servers {
			sharedServers[id] = true
		}
	}
	for _, t := range chosen {
		switch t.Model {
		case tenant.ModelRow:
			sharedServers[t.Server] = true
		case tenant.ModelSchema, tenant.ModelDatabase:
			kind := KindSchema
			if t.Model == tenant.ModelDatabase {
				kind = KindDatabase
			}
			l, ctl := loc(t.Server, t.Database)
			sel.items = append(sel.items, &item{
				Target: Target{Kind: kind, Tenant: t.ID, Slug: t.Slug, Server: t.Server, Database: t.Database, Schema: t.Schema},
				mt:     migration.Target{Schema: t.Schema, Grantee: t.ID.RoleName()},
				loc:    l, control: ctl, rank: 0, dirVersion: t.SchemaVersion,
			})
		}
	}
	for id := range sharedServers {
		s, ok := sel.servers[id]
		if !ok {
			return nil, fmt.Errorf("row tenants on server %q, which the directory does not list: %w", id, provision.ErrUnknownServer)
		}
		l, ctl := loc(s.ID, s.Database)
		sel.items = append(sel.items, &item{
			Target: Target{Kind: KindShared, Server: s.ID, Database: s.Database, Schema: provision.SharedSchema},
			mt:     migration.Target{Schema: provision.SharedSchema, Grantee: f.prov.Roles().App},
			loc:    l, control: ctl, rank: 1, rowVersions: rowVersions[s.ID],
		})
	}
	if len(f.refs) == 0 && (modelOK(tenant.ModelSchema) || modelOK(tenant.ModelDatabase)) {
		var haveSchema bool
		var dbOpen *bool // nil: no template database
		if err := f.admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1),
			(SELECT datallowconn FROM pg_database WHERE datname = $2)`,
			provision.TemplateSchema, f.prov.TemplateDatabase()).Scan(&haveSchema, &dbOpen); err != nil {
			return nil, fmt.Errorf("look for templates: %w", err)
		}
		tpl := migration.Target{Schema: provision.TemplateSchema}
		if haveSchema && modelOK(tenant.ModelSchema) {
			l, ctl := loc(directory.DefaultServer, sel.controlDB)
			sel.items = append(sel.items, &item{
				Target: Target{Kind: KindTemplate, Server: directory.DefaultServer, Database: sel.controlDB, Schema: provision.TemplateSchema},
				mt:     tpl, loc: l, control: ctl, rank: 2,
			})
		}
		if dbOpen != nil && modelOK(tenant.ModelDatabase) {
			db := f.prov.TemplateDatabase()
			l, _ := loc(directory.DefaultServer, db)
			sel.items = append(sel.items, &item{
				Target: Target{Kind: KindTemplate, Server: directory.DefaultServer, Database: db, Schema: provision.TemplateSchema},
				mt:     tpl, loc: l, rank: 3, templateDB: true, closed: !*dbOpen,
			})
		}
	}
	for _, it := range sel.items {
		it.Key = it.Server + "/" + it.Database + "/" + it.Schema
	}
	slices.SortFunc(sel.items, func(a, b *item) int {
		return cmp.Or(cmp.Compare(a.rank, b.rank), strings.Compare(a.Slug, b.Slug), strings.Compare(a.Key, b.Key))
	})
	return sel, nil
}
