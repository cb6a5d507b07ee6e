package migration

import "errors"

// ErrBadMigration is returned by Load for a file set that cannot be used:
// a malformed name, a duplicate version, an empty file.
var ErrBadMigration = errors.New("bad migration file")

// ErrChecksumMismatch is returned by Apply when a migration recorded as
// applied to the target has since changed on disk. Nothing is applied.
var ErrChecksumMismatch = errors.New("migration changed after it was applied")

// ErrUnknownVersion is returned by Apply when the target's ledger records a
// version at or below the set's head that the set does not contain, i.e. a
// file was removed after it was applied. Nothing is applied.
var ErrUnknownVersion = errors.New("applied migration missing from the set")

// ErrMissingVersion is returned by Apply and Version when the set holds a
// migration below the target's version that the target's ledger does not
// record, i.e. a file was added out of order. Nothing is applied.
var ErrMissingVersion = errors.New("migration below the target's version was never applied")

// ErrShape is wrapped by the error Apply returns when a migration leaves a
// tenant table in a shape that one table shape everywhere
// (ARCHITECTURE.md, idea 1) forbids. The migration is rolled back;
// the message lists every problem.
var ErrShape = errors.New("tenant table shape")

// errBusy is returned inside Apply when another migrator holds the target's
// migration lock; Apply waits and tries again.
var errBusy = errors.New("target locked by another migrator")
