package provision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/ident"
)

// Repairs of the roles Landlord relies on (SECURITY.md, I33). PostgreSQL
// lets a role change its own password and its own settings (ALTER ROLE …
// PASSWORD, ALTER ROLE … [IN DATABASE …] SET), so SQL injected into a
// tenant transaction can do it as the app role, or as a database tenant's
// login role: lock Landlord's connections out while keeping a login for
// itself, or make every later session of the role fail or misbehave. That
// cannot be refused; it is undone instead, at Open and on a schedule.

// managedRoleSQL lists the roles the repair watches: the owner and app
// roles, and the tenant roles of this installation (their comment carries
// its marker), with what may have drifted. Superusers are left out: the
// app-role check refuses them, and only a superuser could change them.
// Parameters: $1 owner, $2 app role, $3 the marker's suffix.
const managedRoleSQL = `
SELECT r.rolname, r.rolcanlogin, r.rolinherit, r.rolcreatedb, r.rolcreaterole,
       coalesce((SELECT array_agg(coalesce(d.datname, '') ORDER BY d.datname NULLS FIRST)
                 FROM pg_db_role_setting s LEFT JOIN pg_database d ON d.oid = s.setdatabase
                 WHERE s.setrole = r.oid AND (s.setdatabase = 0 OR d.oid IS NOT NULL)), '{}')
FROM pg_roles r
WHERE NOT r.rolsuper
  AND (r.rolname IN ($1, $2)
       OR (r.rolname ~ '^r_[0-9a-f]{32}$' AND shobj_description(r.oid, 'pg_authid') LIKE '% installation ' || $3))
ORDER BY r.rolname`

// managedRole is one row of managedRoleSQL.
type managedRole struct {
	name                                 string
	login, inherit, createDB, createRole bool
	// settingDBs are the databases the role has settings in; "" is every
	// database.
	settingDBs []string
}

// RepairRoles undoes what tenant SQL can do to the roles Landlord relies
// on (SECURITY.md, I33): settings of the owner, app and tenant roles (ALTER
// ROLE … RESET ALL, also per database), attributes that differ from those
// the roles were created with (LOGIN, INHERIT, CREATEDB, CREATEROLE), and a
// login role's password when its stored verifier no longer verifies the
// password derived from the installation secret. Passwords are checked only
// when the administrator can read pg_authid (a superuser). It returns one
// line per repair, saying what it found; nothing when all was in order.
// Open runs it at bootstrap; landlord.Config.RoleRepairInterval runs it on
// a schedule.
func (p *Provisioner) RepairRoles(ctx context.Context) (repaired []string, err error) {
	return p.repairRoles(ctx, false)
}

// repairAtBootstrap repairs the roles and logs each repair. Unlike the
// scheduled repair, it sets the app role's password again even when it
// cannot be read: opening is the moment an operator expects a repair, and
// one statement is cheap once.
func (p *Provisioner) repairAtBootstrap(ctx context.Context) error {
	repaired, err := p.repairRoles(ctx, true)
	for _, r := range repaired {
		p.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "role repaired", slog.String("threat", "I33"), slog.String("repair", r))
	}
	if err != nil {
		return fmt.Errorf("repair roles: %w", err)
	}
	return nil
}

func (p *Provisioner) repairRoles(ctx context.Context, bootstrap bool) ([]string, error) {
	roles, err := p.managedRoles(ctx)
	if err != nil {
		return nil, err
	}
	var repaired []string
	var errs []error
	for _, r := range roles {
		done, err := p.repairRole(ctx, r)
		repaired = append(repaired, done...)
		errs = append(errs, err)
	}
	done, err := p.repairPasswords(ctx, roles, bootstrap)
	repaired = append(repaired, done...)
	errs = append(errs, err)
	return repaired, errors.Join(errs...)
}

// managedRoles reads the roles the repair watches.
func (p *Provisioner) managedRoles(ctx context.Context) ([]managedRole, error) {
	rows, err := p.admin.Query(ctx, managedRoleSQL, p.cfg.OwnerRole, p.cfg.AppRole, p.inst.ID.String())
	if err != nil {
		return nil, fmt.Errorf("read the roles to repair: %w", err)
	}
	roles, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (managedRole, error) {
		var r managedRole
		err := row.Scan(&r.name, &r.login, &r.inherit, &r.createDB, &r.createRole, &r.settingDBs)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the roles to repair: %w", err)
	}
	return roles, nil
}

// repairRole resets r's settings and its attributes.
func (p *Provisioner) repairRole(ctx context.Context, r managedRole) ([]string, error) {
	var repaired []string
	for _, db := range r.settingDBs {
		sql, where := fmt.Sprintf("ALTER ROLE %s RESET ALL", ident.Quote(r.name)), "in every database"
		if db != "" {
			sql, where = fmt.Sprintf("ALTER ROLE %s IN DATABASE %s RESET ALL", ident.Quote(r.name), ident.Quote(db)), "in database "+db
		}
		if err := p.alterRole(ctx, sql); err != nil {
			return repaired, fmt.Errorf("reset the settings of role %s %s: %w", r.name, where, err)
		}
		repaired = append(repaired, fmt.Sprintf("role %s had settings of its own %s: reset", r.name, where))
	}
	if want, drift := p.wantAttributes(r); drift != "" {
		if err := p.alterRole(ctx, fmt.Sprintf("ALTER ROLE %s %s", ident.Quote(r.name), want)); err != nil {
			return repaired, fmt.Errorf("restore the attributes of role %s: %w", r.name, err)
		}
		repaired = append(repaired, fmt.Sprintf("role %s had %s: set %s", r.name, drift, want))
	}
	return repaired, nil
}

// wantAttributes returns the attributes r was created with and, when r's
// differ, what differs ("" when nothing does). A tenant role's LOGIN is
// left as it is: a schema tenant's role has none, a database tenant's has
// it, and which one r is would take the directory.
func (p *Provisioner) wantAttributes(r managedRole) (want, drift string) {
	type attr struct {
		have, want bool
		on, off    string
	}
	attrs := []attr{
		{r.inherit, r.name == p.cfg.OwnerRole, "INHERIT", "NOINHERIT"},
		{r.createDB, false, "CREATEDB", "NOCREATEDB"},
		{r.createRole, false, "CREATEROLE", "NOCREATEROLE"},
	}
	switch r.name {
	case p.cfg.AppRole:
		attrs = append(attrs, attr{r.login, true, "LOGIN", "NOLOGIN"})
	case p.cfg.OwnerRole:
		attrs = append(attrs, attr{r.login, false, "LOGIN", "NOLOGIN"})
	}
	var wants, drifts []string
	for _, a := range attrs {
		w, h := a.off, a.off
		if a.want {
			w = a.on
		}
		if a.have {
			h = a.on
		}
		wants = append(wants, w)
		if w != h {
			drifts = append(drifts, h)
		}
	}
	return strings.Join(wants, " "), strings.Join(drifts, " ")
}

// repairPasswords sets again the password of every login role among roles
// whose stored verifier does not verify its derived password. Without the
// right to read pg_authid nothing can be compared: at bootstrap the app
// role's password is set all the same, on a schedule nothing is done.
func (p *Provisioner) repairPasswords(ctx context.Context, roles []managedRole, bootstrap bool) ([]string, error) {
	var logins []string
	for _, r := range roles {
		if r.name != p.cfg.OwnerRole && (r.login || r.name == p.cfg.AppRole) {
			logins = append(logins, r.name)
		}
	}
	stored, readable, err := p.storedPasswords(ctx, logins)
	if err != nil {
		return nil, err
	}
	if !readable {
		// Only an app role the repair watches: a superuser is the app-role
		// check's to refuse, and only a superuser could change it.
		if bootstrap && slices.Contains(logins, p.cfg.AppRole) {
			return nil, p.setPassword(ctx, p.cfg.AppRole)
		}
		return nil, nil
	}
	var repaired []string
	for _, role := range logins {
		if PasswordMatches(stored[role], role, p.roles.Password(role)) {
			continue
		}
		if err := p.setPassword(ctx, role); err != nil {
			return repaired, err
		}
		found := "a password other than the one derived from the installation secret"
		if stored[role] == "" {
			found = "no password"
		}
		repaired = append(repaired, fmt.Sprintf("role %s had %s: set it again", role, found))
	}
	return repaired, nil
}

// storedPasswords reads the stored passwords of roles from pg_authid, and
// reports whether the administrator may read it at all.
func (p *Provisioner) storedPasswords(ctx context.Context, roles []string) (map[string]string, bool, error) {
	var readable bool
	if err := p.admin.QueryRow(ctx, `SELECT has_table_privilege('pg_catalog.pg_authid', 'SELECT')`).Scan(&readable); err != nil {
		return nil, false, fmt.Errorf("check access to pg_authid: %w", err)
	}
	if !readable || len(roles) == 0 {
		return nil, readable, nil
	}
	rows, err := p.admin.Query(ctx, `SELECT rolname, coalesce(rolpassword, '') FROM pg_catalog.pg_authid WHERE rolname = ANY ($1)`, roles)
	if err != nil {
		return nil, false, fmt.Errorf("read stored passwords: %w", err)
	}
	stored := make(map[string]string, len(roles))
	var name, pw string
	_, err = pgx.ForEachRow(rows, []any{&name, &pw}, func() error {
		stored[name] = pw
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("read stored passwords: %w", err)
	}
	return stored, true, nil
}

// setPassword sets role's derived password, as a SCRAM verifier so that
// no statement log keeps the password itself.
func (p *Provisioner) setPassword(ctx context.Context, role string) error {
	verifier, err := scramVerifier(p.roles.Password(role))
	if err != nil {
		return err
	}
	if err := p.alterRole(ctx, fmt.Sprintf("ALTER ROLE %s PASSWORD %s", ident.Quote(role), ident.Literal(verifier))); err != nil {
		return fmt.Errorf("set password of role %s: %w", role, err)
	}
	return nil
}

// alterRole runs an ALTER ROLE of a repair. Every process of the
// installation repairs the same roles, so two may change one role at the
// same moment; the loser's InternalError "tuple concurrently updated"
// means the winner made the same repair.
func (p *Provisioner) alterRole(ctx context.Context, sql string) error {
	if err := p.exec(ctx, sql); err != nil && !isCode(err, pgerrcode.InternalError) {
		return err
	}
	return nil
}
