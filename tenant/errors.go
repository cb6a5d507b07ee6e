package tenant

import (
	"errors"
	"fmt"
)

// ErrBadSlug is returned by NormalizeSlug for a slug that breaks the slug
// rules or is reserved. The wrapping message says which rule.
var ErrBadSlug = errors.New("invalid slug")

// ErrBadModel is returned by ParseModel for an unknown model name.
var ErrBadModel = errors.New("unknown model")

// ErrBadDisplayName is returned for a display name that is too long or not
// valid text.
var ErrBadDisplayName = errors.New("invalid display name")

// ErrBadID is returned by ParseID and the scanners for text or values that are
// not a tenant id.
var ErrBadID = errors.New("invalid tenant id")

// ErrBadIdentifier is returned by CheckIdent for a name that is not a safe
// PostgreSQL identifier.
var ErrBadIdentifier = errors.New("invalid identifier")

// ErrNotFound is returned when no tenant with the given id or slug is in the
// directory.
var ErrNotFound = errors.New("tenant not found")

// ErrSlugTaken is returned by provisioning when another tenant already has the
// slug (after normalization).
var ErrSlugTaken = errors.New("slug already taken")

// ErrSuspended matches a *StateError for a suspended tenant.
var ErrSuspended = errors.New("tenant suspended")

// ErrMoving matches a *StateError for a tenant whose placement is changing.
var ErrMoving = errors.New("tenant moving")

// ErrNotReady matches a *StateError for a tenant that is still being
// provisioned or is being deleted.
var ErrNotReady = errors.New("tenant not ready")

// StateError is returned when a tenant exists but its state does not allow the
// operation, for example traffic to a suspended tenant. errors.Is matches it
// against ErrSuspended, ErrMoving or ErrNotReady according to the state.
type StateError struct {
	ID    ID
	State State
}

func (e *StateError) Error() string {
	return "tenant " + e.ID.String() + " is " + string(e.State)
}

// Is maps the state to its sentinel.
func (e *StateError) Is(target error) bool {
	switch e.State {
	case StateSuspended:
		return target == ErrSuspended
	case StateMoving:
		return target == ErrMoving
	case StateProvisioning, StateDeleting:
		return target == ErrNotReady
	}
	return false
}

// ErrSchemaVersion matches a *VersionError: the tenant's tables are at a
// migration version outside the range the application's code needs.
var ErrSchemaVersion = errors.New("tenant schema version incompatible")

// VersionError is returned by the tenant handle for a tenant whose tables
// are at a version outside [Min, Max] (a bound of 0 is open): the code would
// run against tables of another shape, so no SQL is sent. Migrating the
// tenant (or deploying code that supports its version) clears it.
type VersionError struct {
	ID       ID
	Version  int
	Min, Max int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("tenant %s is at schema version %d, outside the range %s this code supports", e.ID, e.Version, versionRange(e.Min, e.Max))
}

// Is matches ErrSchemaVersion.
func (e *VersionError) Is(target error) bool { return target == ErrSchemaVersion }

func versionRange(lo, hi int) string {
	switch {
	case hi == 0:
		return fmt.Sprintf("%d and later", lo)
	case lo == 0:
		return fmt.Sprintf("up to %d", hi)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}
