package pgtest

import "errors"

// ErrNotPrivileged is returned, wrapped, by Start when the role in
// LANDLORD_DATABASE_URL is neither superuser nor has both CREATEDB and
// CREATEROLE, which the harness needs to create its owner role and the
// test databases.
var ErrNotPrivileged = errors.New("database role lacks privileges for tests")

// ErrOwnerPrivileged is reported, wrapped, by NewDB (through t.Fatal) when
// the role pgtest_owner exists on the server as a superuser or with
// BYPASSRLS: tests connecting as it would not be subject to row-level
// security.
var ErrOwnerPrivileged = errors.New("role pgtest_owner bypasses row-level security")
