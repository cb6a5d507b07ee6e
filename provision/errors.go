package provision

import "errors"

// ErrUnknownServer is returned when a request names a server that is not in
// the directory.
var ErrUnknownServer = errors.New("unknown server")
