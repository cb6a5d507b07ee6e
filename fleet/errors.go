package fleet

import "errors"

// ErrBadConfig is wrapped by New for a Config it cannot use; the message
// names the field.
var ErrBadConfig = errors.New("bad fleet configuration")

// ErrNotMigratable is returned by Up, Plan and Status when Config.Tenants
// names a tenant whose state keeps it out of fleet runs (provisioning,
// deleting or moving: the operation under way brings its tables to the head
// itself). Nothing is recorded.
var ErrNotMigratable = errors.New("tenant state excludes it from fleet migrations")

// ErrSetMismatch is returned by Up and Plan when the ledger of some target
// disagrees with the migration set: a file changed after it was applied, a
// file was removed, or a file was added below a version already applied. The
// error also matches the migration package's sentinel
// (migration.ErrChecksumMismatch, ErrUnknownVersion or ErrMissingVersion).
// Up records nothing and applies nothing.
var ErrSetMismatch = errors.New("migration set disagrees with applied migrations")

// ErrTargetsFailed is returned by Up, together with its Report, when some
// targets failed (Report.Targets says which and why) or were left pending
// after the first failure.
var ErrTargetsFailed = errors.New("targets failed")

// ErrCanaryFailed is returned by Up, together with its Report, when a canary
// target failed: the other targets were not started.
var ErrCanaryFailed = errors.New("canary failed")
