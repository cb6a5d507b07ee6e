package landlordtest

import (
	"slices"
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/tenant"
)

// Attacks runs the isolation attack suite (SECURITY.md) against
// installations of k, each case as a subtest of t, in parallel where they
// allow:
//
//   - per model, on one installation whose pools have one connection (so A
//     and B always share it; in the database model, each its own): every
//     probe of every tenant table (I01, I02, I04, I05, I08, I09, I10, I12,
//     I13, I14, I15, I16, I19, I24), the application's own views and
//     SECURITY DEFINER functions, then the attacks on pooled connections,
//     names, catalogs and triggers (I06, I07, I16, I17, I18, I19, I20, I23,
//     I24, I25, I26, I28, I30), and on what tenants share outside their
//     tables: planner estimates, large objects, query text, the
//     maintenance databases, other tenants' backends and whole-table
//     locks (I32, I35, I36, I37, I38);
//   - on installations of their own: an app role turned BYPASSRLS after
//     Open (I02), tables added by hand and by migration (I03), SECURITY
//     DEFINER functions in Landlord's schemas (I09), the server's version
//     (I11), schema tenants at different versions (I19), access to tenant
//     databases (I21).
//
// A probe `Ixx-name/<table>` runs three times: defense-off (the defense
// switched off inside a rolled-back transaction of the superuser at B's
// placement: the leak must show, or the probe proves nothing), defense-on
// (the same place, the defense on) and handle (through the handle as A).
func Attacks(t *testing.T, k Kit) {
	k.check(t)
	all := tenant.Models
	rs := []tenant.Model{tenant.ModelRow, tenant.ModelSchema}
	steps := []struct {
		name   string
		models []tenant.Model
		run    func(*fx, *testing.T)
	}{
		{"I31-forged-context", all, (*fx).attackI31ForgedContext},
		{"I16-materialized-views", rs, (*fx).attackI16MaterializedViews},
		{"I17-sequences", all, (*fx).attackI17Sequences},
		{"I19-alternating-tenants", all, (*fx).attackI19AlternatingTenants},
		{"I20-names", all, (*fx).attackI20Names},
		{"I23-export", all, (*fx).attackI23Export},
		{"I24-trigger-paths", all, (*fx).attackI24TriggerPaths},
		{"I06-session-leftovers", all, (*fx).attackI06SessionLeftovers},
		{"I34-hidden-session-state", rs, (*fx).attackI34HiddenSessionState},
		{"I25-listen-notify", all, (*fx).attackI25ListenNotify},
		{"I26-advisory-locks", all, (*fx).attackI26AdvisoryLocks},
		{"I28-job-without-tenant", rs, (*fx).attackI28JobWithoutTenant},
		{"I30-late-cancel", rs, (*fx).attackI30LateCancel},
		{"I30-cancel-storm", all, (*fx).attackI30CancelStorm},
		{"I33-role-sabotage", all, (*fx).attackI33RoleSabotage},
		{"I32-explain-estimates", all, (*fx).attackI32ExplainEstimates},
		{"I35-large-objects", rs, (*fx).attackI35LargeObjects},
		{"I36-maintenance-databases", []tenant.Model{tenant.ModelDatabase}, (*fx).attackI36MaintenanceDatabases},
		{"I37-signal-backends", all, (*fx).attackI37SignalBackends},
		{"I38-table-locks", all, (*fx).attackI38TableLocks},
		{"I39-lock-squatting", rs, (*fx).attackI39LockSquatting},
		{"I40-temp-files", all, (*fx).attackI40TempFiles},
		// Last: it grants TEMP and leaves a temporary table on the pool.
		{"I18-search-path", all, (*fx).attackI18SearchPath},
	}
	for _, m := range tenant.Models {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			f := newFx(t, k, m, landlord.Config{MaxConns: 1})
			var ps []probe
			for _, tb := range f.tables {
				ps = append(ps, f.tableProbes(t, tb)...)
			}
			ps = append(ps, f.objectProbes(t)...)
			for _, p := range ps {
				if p.models != nil && !slices.Contains(p.models, m) {
					continue
				}
				t.Run(p.id+"-"+p.name+"/"+p.subject, func(t *testing.T) { f.runProbe(t, p) })
			}
			for _, s := range steps {
				if slices.Contains(s.models, m) {
					t.Run(s.name, func(t *testing.T) { s.run(f, t) })
				}
			}
		})
	}
	t.Run("I02-unsafe-role-at-connect", func(t *testing.T) { t.Parallel(); attackI02UnsafeRoleAtConnect(t, k) })
	t.Run("I03-new-table", func(t *testing.T) { t.Parallel(); attackI03NewTable(t, k) })
	t.Run("I09-definer-audit", func(t *testing.T) { t.Parallel(); attackI09DefinerAudit(t, k) })
	t.Run("I11-server-version", func(t *testing.T) { t.Parallel(); attackI11ServerVersion(t, k) })
	t.Run("I19-schema-versions", func(t *testing.T) { t.Parallel(); attackI19SchemaVersions(t, k) })
	t.Run("I21-database-access", func(t *testing.T) { t.Parallel(); attackI21DatabaseAccess(t, k) })
}
