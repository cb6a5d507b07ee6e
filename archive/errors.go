package archive

import "errors"

// ErrBadArchive is returned by Verify, Import and Clone when the archive is
// not one this package can read: not an archive, truncated, damaged,
// altered after it was written, or of a newer format. The error's text
// says which and where. Nothing is created or changed for such an archive.
var ErrBadArchive = errors.New("bad archive")

// ErrIncompatible is returned by Import when a sound archive does not fit
// its target: it holds tables at another migration version than the
// tenants it would become, or tables whose columns differ.
var ErrIncompatible = errors.New("archive does not fit this installation")

// ErrNotPermitted is returned by Import when the administrator may not
// write rows past row-level security with triggers off, which an import
// needs: a superuser can.
var ErrNotPermitted = errors.New("the administrator cannot import tenants")
