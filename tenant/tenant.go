// Package tenant holds the leaf types every other package shares: tenant ids,
// isolation models, lifecycle states, slugs and the identifiers derived from
// ids. It has no database access.
package tenant

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// ID identifies a tenant. It is a UUID (version 7 for tenants Landlord
// creates), and every schema, database and role name of a tenant is derived
// from it, never from user text.
type ID [16]byte

// NewID returns a new time-ordered (version 7) tenant id.
func NewID() ID {
	u, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system random source fails, which Go
		// treats as fatal elsewhere too.
		panic(fmt.Sprintf("tenant: generate id: %v", err))
	}
	return ID(u)
}

// ParseID parses the textual form of an id (any form uuid.Parse accepts).
func ParseID(s string) (ID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, fmt.Errorf("tenant id %q: %w", clip(s), ErrBadID)
	}
	return ID(u), nil
}

// String returns the canonical hyphenated form.
func (id ID) String() string { return uuid.UUID(id).String() }

// IsZero reports whether id is the zero value, which never names a tenant.
func (id ID) IsZero() bool { return id == ID{} }

// Hex returns the 32 lower-case hex digits of id, the part every derived
// identifier shares.
func (id ID) Hex() string { return hex.EncodeToString(id[:]) }

// SchemaName is the schema that holds the tenant's tables in the schema and
// database models: "t_" followed by 32 hex digits.
func (id ID) SchemaName() string { return "t_" + id.Hex() }

// DatabaseName is the database of a tenant in the database model. It equals
// the schema name, so a tenant's tables have the same qualified names wherever
// it lives.
func (id ID) DatabaseName() string { return "t_" + id.Hex() }

// RoleName is the tenant's own role in the schema and database models. It
// differs from the schema name on purpose: a search_path entry "$user" must
// never resolve to a tenant schema (SECURITY.md, I18).
func (id ID) RoleName() string { return "r_" + id.Hex() }

// MarshalText implements encoding.TextMarshaler.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// UUIDValue lets pgx encode an ID as a PostgreSQL uuid.
func (id ID) UUIDValue() (pgtype.UUID, error) { return pgtype.UUID{Bytes: id, Valid: true}, nil }

// ScanUUID lets pgx decode a PostgreSQL uuid into an ID.
func (id *ID) ScanUUID(v pgtype.UUID) error {
	if !v.Valid {
		return fmt.Errorf("tenant id: NULL: %w", ErrBadID)
	}
	*id = v.Bytes
	return nil
}

// Model is the isolation model of a tenant.
type Model string

// The three isolation models.
const (
	ModelRow      Model = "row"      // shared tables guarded by row-level security
	ModelSchema   Model = "schema"   // tables in the tenant's own schema
	ModelDatabase Model = "database" // tables in the tenant's own database
)

// Models lists every model in a stable order.
var Models = []Model{ModelRow, ModelSchema, ModelDatabase}

// ParseModel parses a model name.
func ParseModel(s string) (Model, error) {
	switch m := Model(s); m {
	case ModelRow, ModelSchema, ModelDatabase:
		return m, nil
	}
	return "", fmt.Errorf("model %q: %w: use row, schema or database", clip(s), ErrBadModel)
}

// State is where a tenant is in its lifecycle.
type State string

// Lifecycle states, as ARCHITECTURE.md lists them (idea 5).
const (
	StateProvisioning State = "provisioning" // intent written, objects being created
	StateActive       State = "active"       // serves traffic
	StateReadOnly     State = "read_only"    // serves reads; the database refuses writes
	StateMoving       State = "moving"       // placement changing; traffic refused
	StateSuspended    State = "suspended"    // traffic refused
	StateDeleting     State = "deleting"     // objects being dropped
)

// Tenant is one row of the tenant directory.
type Tenant struct {
	ID            ID
	Slug          string
	DisplayName   string
	Model         Model
	Server        string // id of the server that holds the tenant's data
	Schema        string // schema holding the tenant's tables ("shared" for row tenants)
	Database      string // database holding that schema
	State         State
	SchemaVersion int      // migration version of the tenant's tables
	Epoch         int64    // routing epoch; bumped on every placement or state change
	Settings      Settings // the tenant's own bounds on its work
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// clip shortens user input before it is quoted in an error message, so that a
// megabyte of junk does not become a megabyte of log.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
