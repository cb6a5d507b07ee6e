package provision

import "errors"

// ErrUnknownServer is returned when a request names a server that is not in
// the directory.
var ErrUnknownServer = errors.New("unknown server")

// ErrOlderMigrations is returned by Create and FillReserve when the
// installation's tenant tables are at a newer migration version than the
// set the Provisioner was made with: a tenant made now would be of an older
// shape than the rest of the fleet. The message names both versions. Code
// with the older set may still serve traffic (see landlord.Config's
// MinSchemaVersion), but only the newer set creates tenants.
var ErrOlderMigrations = errors.New("the installation's tenant tables are newer than these migrations")

// ErrNotInstalled is returned by New with InstallExisting or InstallNever
// when the database
// holds no Landlord installation, or one whose control schema is older than
// this code: installing or upgrading is an explicit step.
var ErrNotInstalled = errors.New("no Landlord installation")

// ErrUnfilled is returned when a tenant created to be filled
// (Request.Fill), an import, would be provisioned to the end without its
// filler: it would serve with none of its rows. Reconcile deletes such a
// tenant.
var ErrUnfilled = errors.New("tenant was created to be filled and its fill did not finish")

// ErrBadServer is returned by AddServer for a server it will not add: a
// malformed id or address, an id or address the directory has already
// (at another address, or under another id), a PostgreSQL older than
// Landlord supports, or an administrator that may not create databases
// and roles there. Nothing is changed.
var ErrBadServer = errors.New("bad server")
