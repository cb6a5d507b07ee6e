package traffic

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// ErrStatementRefused is wrapped by the error returned, before anything is
// sent, for a statement that tenant traffic may not run: EXPLAIN, whose
// estimates come from statistics over every tenant's rows (SECURITY.md,
// I32), and LOCK, which locks whole tables (I38).
var ErrStatementRefused = errors.New("statement refused in tenant traffic")

// fenced reports whether err is a move's fence refusing the tenant at its
// old placement (migration.FenceCode): the statement ran nothing.
func fenced(err error) bool {
	if err == nil {
		return false // without the variable below escaping, on every call
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == migration.FenceCode
}

// movingErr returns err, which a move's fence raised, as an error that
// matches tenant.ErrMoving too.
func movingErr(id tenant.ID, err error) error {
	if err == nil || !fenced(err) {
		return err
	}
	return fmt.Errorf("%w: %w", &tenant.StateError{ID: id, State: tenant.StateMoving}, err)
}
