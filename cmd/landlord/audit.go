package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/audit"
	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/tenant"
)

func newAudit(g *globals) *cobra.Command {
	var tenantArg, appRole, ownerRole string
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Check the catalog of every database for mistakes that break tenant isolation",
		Long: `audit reads the catalog of the control database and of every tenant database, in
the spirit of Supabase's splinter lints, and reports each mistake that would let
one tenant reach another's rows: tenant tables without forced row-level security
or without the restrictive tenant policy, always-true or NULL-tolerant policies,
keys that do not lead with tenant_id, a tenant-traffic role that is a superuser,
has BYPASSRLS, owns the tables or holds TRUNCATE, REFERENCES or TRIGGER, SECURITY
DEFINER functions, owner-rights views, materialized views and open partitions over
tenant tables, LEAKPROOF functions, CREATE on public for PUBLIC, tenant databases
others may connect to, and PostgreSQL minors with known row-level security bugs.

Every finding names the object, the threat it opens (its id in SECURITY.md) and
the fix. audit only reads: it needs the directory and the catalog, not the
application's migrations (the tenant tables are those with a tenant_id column in
the shared schema and the tenant schemas). It connects as the administrator of
the database URL.

Exit codes: 0 when there is no error finding (warnings allowed); 1 when there is
one, the audit could not run, or --tenant is not in the directory; 2 bad command
line or bad input (a malformed --tenant, role name or database URL, an
--app-role that does not exist); 130 interrupted by Ctrl-C. With --json it
prints one finding per line (JSON lines) and nothing when there is none.`,
		Example: `  # the whole installation, as a table
  landlord audit --database-url postgres://admin@db.example.com/landlord

  # one tenant, by slug or id, as NDJSON (one finding per line)
  landlord audit --tenant acme --json

  # an installation whose app role is not the default
  landlord audit --app-role shop_app --owner-role shop_owner`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			for flag, v := range map[string]string{"--app-role": appRole, "--owner-role": ownerRole} {
				if err := tenant.CheckIdent(v); err != nil {
					return usageError{fmt.Errorf("%s: %w", flag, err)}
				}
			}
			var ref *tenantRef
			if tenantArg != "" {
				r, err := parseTenantRef(tenantArg)
				if err != nil {
					return usageError{fmt.Errorf("--tenant: %w", err)}
				}
				ref = &r
			}
			return g.withDatabase(cmd.Context(), cmd.ErrOrStderr(), func(url string) error {
				return runAudit(cmd, url, newOutput(cmd, asJSON), audit.FleetConfig{
					AppRole: appRole, OwnerRole: ownerRole,
				}, ref)
			})
		},
	}
	addJSONFlag(cmd)
	cmd.Flags().StringVar(&tenantArg, "tenant", "", "audit only this tenant (id or slug): its tables and the database that holds them")
	cmd.Flags().StringVar(&appRole, "app-role", "landlord_app", "the role that runs the row and schema models' tenant traffic")
	cmd.Flags().StringVar(&ownerRole, "owner-role", "landlord_owner", "the role that owns the tenant tables (named in fixes)")
	return cmd
}

// runAudit audits the installation at url and prints the findings. The
// error it returns is what sets the exit status.
func runAudit(cmd *cobra.Command, url string, out *output, cfg audit.FleetConfig, ref *tenantRef) error {
	ctx := cmd.Context()
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors never contain the password.
		return usageError{fmt.Errorf("database URL: %w", err)}
	}
	pcfg.MaxConns = 2
	admin, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("connect to control database: %w", err)
	}
	defer admin.Close()
	if ref != nil {
		if cfg.Tenant, err = auditTenant(ctx, admin, *ref); err != nil {
			return err
		}
	}
	findings, err := audit.Fleet(ctx, admin, cfg)
	switch {
	case errors.Is(err, audit.ErrUnknownRole):
		return usageError{err}
	case err != nil && findings == nil:
		return err
	}
	if perr := printFindings(out, findings); perr != nil {
		return perr
	}
	if err != nil {
		// Some databases could not be audited: what was found is printed,
		// but a partial audit is never a pass.
		return err
	}
	return audit.AsError(findings)
}

// auditTenant resolves --tenant through the directory; an unknown tenant is
// a failure of the operation, as for every command that takes one.
func auditTenant(ctx context.Context, admin *pgxpool.Pool, ref tenantRef) (tenant.ID, error) {
	var installed bool
	if err := admin.QueryRow(ctx, `SELECT to_regclass('landlord.tenants') IS NOT NULL`).Scan(&installed); err != nil {
		return tenant.ID{}, fmt.Errorf("read control database: %w", err)
	}
	if !installed {
		return tenant.ID{}, fmt.Errorf("control database: %w", audit.ErrNoInstallation)
	}
	t, err := ref.lookup(ctx, directory.New(admin))
	if err != nil {
		return tenant.ID{}, fmt.Errorf("--tenant: %w", err)
	}
	return t.ID, nil
}

// printFindings prints the findings, or NDJSON, and in text mode a
// summary. Each finding is a heading line (severity, threat, check,
// database, object) with its message and fix wrapped under it, so that the
// output fits a terminal however long the messages are.
func printFindings(out *output, findings []audit.Finding) error {
	vs := make([]any, 0, len(findings))
	errs := 0
	for _, f := range findings {
		vs = append(vs, f)
		if f.Severity == audit.SeverityError {
			errs++
		}
	}
	if len(findings) == 0 {
		out.printf("No findings: every check passed.\n")
		return nil
	}
	if out.json {
		return out.lines(nil, nil, vs)
	}
	const indent, width = "    ", 76
	for i, f := range findings {
		if i > 0 {
			out.printf("\n")
		}
		out.printf("%s  %s  %s  %s  %s\n", strings.ToUpper(string(f.Severity)), f.Threat, f.Check, f.Database, f.Object)
		for _, l := range wrap(f.Message, width) {
			out.printf("%s%s\n", indent, l)
		}
		if f.Fix != "" {
			for j, l := range wrap("fix: "+f.Fix, width) {
				if j > 0 {
					l = "     " + l
				}
				out.printf("%s%s\n", indent, l)
			}
		}
	}
	out.printf("\n%d error(s), %d warning(s).\n", errs, len(findings)-errs)
	return nil
}
