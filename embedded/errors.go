package embedded

import "errors"

// ErrNoBinaries is returned, wrapped, by FindBinDir and Start when no
// PostgreSQL server binaries (postgres and initdb) can be found. The wrapping
// error's message says how to install them or how to use an existing server
// instead.
var ErrNoBinaries = errors.New("no PostgreSQL server binaries found")

// ErrUnsupportedVersion is returned, wrapped, by FindBinDir and Start when the
// only server binaries found are older than PostgreSQL 15, and by Start when
// an existing data directory was made by a different major version than the
// binaries.
var ErrUnsupportedVersion = errors.New("unsupported PostgreSQL version")

// ErrNotTraversable is returned, wrapped, by Start when this process runs as
// root and a parent directory of the data directory cannot be entered by the
// OS user that runs the server (for example a data directory under /root).
var ErrNotTraversable = errors.New("directory not traversable by the server's OS user")

// ErrNotRunning is returned, wrapped, by Running when no server runs on the
// data directory.
var ErrNotRunning = errors.New("postgres is not running")

// errPortTaken is returned, wrapped, by launch when the server could not
// bind its TCP port; Start then retries with another free port.
var errPortTaken = errors.New("port taken")
