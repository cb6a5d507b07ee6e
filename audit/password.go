package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/provision"
)

// Password checks (SECURITY.md, I33): a role may change its own password,
// so SQL injected into a tenant transaction can, as the app role or a
// database tenant's login role, lock Landlord's connections out and keep a
// login for whoever wrote it. The stored verifier is compared with the
// password Landlord derives; only a superuser may read it.

const (
	checkPassword          = "role_password"
	checkPasswordUnchecked = "role_password_unchecked"
)

// passwordFindings checks the stored password of the login role that runs
// tenant traffic here: app, or in a tenant database the tenant's role.
// authid says whether the audit's role may read pg_authid.
func passwordFindings(ctx context.Context, conn Conn, cfg Config, app, database string, authid bool) ([]Finding, error) {
	role := app
	if cfg.TenantDatabase {
		role = "r_" + strings.TrimPrefix(database, "t_")
	}
	if !authid {
		if cfg.TenantDatabase {
			// The server's own database says it, once.
			return nil, nil
		}
		return []Finding{{
			Check: checkPasswordUnchecked, Severity: SeverityWarning, Object: role, Database: database, Threat: "I33",
			Message: "the audit's role cannot read pg_authid (only a superuser can), so it cannot tell whether tenant SQL changed this role's password, or a database tenant's, with ALTER ROLE … PASSWORD",
			Fix:     "run the audit as a superuser to check passwords; Open sets the app role's password again either way",
		}}, nil
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = $1`, role)
	var stored *string
	br := conn.SendBatch(ctx, b)
	err := br.QueryRow().Scan(&stored)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil // a missing role is reported by the checks that need it
	case err != nil:
		return nil, fmt.Errorf("audit database %q: read the password of role %q: %w", database, role, err)
	}
	if stored != nil && provision.PasswordMatches(*stored, role, cfg.Passwords(role)) {
		return nil, nil
	}
	what := "a password other than the one Landlord derives from the installation secret"
	if stored == nil {
		what = "no password"
	}
	return []Finding{{
		Check: checkPassword, Severity: SeverityError, Object: role, Database: database, Threat: "I33",
		Message: fmt.Sprintf("has %s: SQL that ran as the role (a tenant transaction can) changed it, so Landlord's connections with a password fail, and whoever changed it can log in as the role", what),
		Fix:     "open Landlord with Install InstallAlways or InstallExisting as a superuser, or wait for its role repair (Config.RoleRepairInterval), which sets the derived password again",
	}}, nil
}
