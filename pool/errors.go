package pool

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

var (
	// ErrClosed is returned by Acquire, and to acquires still waiting, once
	// Manager.Close has been called.
	ErrClosed = errors.New("connection manager closed")

	// ErrAcquireTimeout is returned, wrapped together with the context's
	// error, by Acquire when its context ends (deadline or cancellation)
	// before a connection is available. When the target's last dial failed,
	// the error wraps that failure too.
	ErrAcquireTimeout = errors.New("timed out acquiring a connection")

	// ErrTargetClosed is returned to acquires waiting for a target that
	// Manager.CloseTarget closes.
	ErrTargetClosed = errors.New("target closed")

	// ErrBadTarget is returned by Acquire and CloseTarget for a Target with
	// an empty Server, Database or Role.
	ErrBadTarget = errors.New("invalid target")
)

// DialError is returned to acquires that were waiting for a target when a
// connection to it could not be opened (the resolver, the connection itself
// or AfterConnect failed) and no open connection of the target could serve
// them instead. Err holds the cause; a PostgreSQL refusal unwraps to a
// *pgconn.PgError.
type DialError struct {
	Target Target
	Err    error
}

// Error names the target and the cause (never a password: pgx leaves it out
// of its errors).
func (e *DialError) Error() string { return fmt.Sprintf("connect to %s: %v", e.Target, e.Err) }

// Unwrap returns the cause.
func (e *DialError) Unwrap() error { return e.Err }

// IsDialError reports whether err is or wraps a DialError: the target could
// not be reached, as opposed to a busy pool.
func IsDialError(err error) bool {
	var de *DialError
	return errors.As(err, &de)
}

// serverLevel reports whether a dial error says the server itself is out of
// reach (refused, unreachable, timed out) rather than that it refused this
// target (wrong database, role or password, too many connections): the
// former holds back every target of the server, the latter only the one.
func serverLevel(err error) bool {
	var pgErr *pgconn.PgError
	var hookErr *afterConnectError
	var resErr *resolveError
	return !errors.As(err, &pgErr) && !errors.As(err, &hookErr) && !errors.As(err, &resErr)
}

// afterConnectError marks a failure of Config.AfterConnect.
type afterConnectError struct{ err error }

func (e *afterConnectError) Error() string { return "after connect: " + e.err.Error() }
func (e *afterConnectError) Unwrap() error { return e.err }

// resolveError marks a failure of the resolver.
type resolveError struct{ err error }

func (e *resolveError) Error() string { return "resolve: " + e.err.Error() }
func (e *resolveError) Unwrap() error { return e.err }

var errNilConfig = errors.New("resolver returned no config")
