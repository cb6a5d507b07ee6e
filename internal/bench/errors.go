package bench

import "errors"

var (
	// ErrUnknownCase is returned by Run, wrapped with the name, when
	// Config.Cases names a case that does not exist (see Names).
	ErrUnknownCase = errors.New("unknown benchmark case")

	// ErrNotAdmin is returned by Run when the server URL's role can neither
	// create databases nor roles: the suite builds its own installation
	// next to whatever the server holds.
	ErrNotAdmin = errors.New("the database URL must name a superuser, or a role with CREATEDB and CREATEROLE")
)
