package traffic

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/landlordhq/landlord/pool"
	"github.com/landlordhq/landlord/tenant"
)

// A lease is one tenant connection held for one call, one batch or one
// transaction: the route that chose it, the connection, when the call
// started, and whether what ran on it may have left session state. Every
// way tenant traffic ends (Exec returning, rows closed, a batch closed, a
// transaction committed or rolled back, a failure anywhere) goes through
// release, which runs once: it gives the connection back, or closes it
// when the call may have left session state, and reports the outcome to
// the tracer.
//
// A lease is a value, embedded in the rows, batch results or transaction
// that holds it, so that the hot path allocates nothing for it.
type lease struct {
	t     *Traffic
	r     *route
	c     *pool.Conn
	start time.Time
	// leftState: a statement may have left session state; the
	// connection is closed instead of going back to the pool.
	leftState bool
	released  bool
}

// release ends the lease once; later calls do nothing. err is the outcome
// of the call, for the tracer.
func (ls *lease) release(err error) {
	if ls.released || ls.c == nil {
		return
	}
	ls.released = true
	if ls.leftState {
		ls.t.connReplaced()
		ls.c.Discard()
	} else {
		ls.c.Release()
	}
	if ls.r.calls != nil {
		ls.r.calls(ls.start, err)
	}
}

// replace ends a lease whose connection the enter statement refused: the
// connection is closed and counted, and the call goes again on another
// (nothing of it ran). The call's outcome is not reported: it has none yet.
func (ls *lease) replace() {
	ls.released = true
	ls.t.connReplaced()
	ls.t.cfg.Logger.Warn("replaced a connection that SQL left with session state out of sight (a session-level role or search path set by a function or DO block, or its enter statement deallocated)")
	ls.c.Discard()
}

// open routes ctx, leases a connection and calls send with it, which sends the
// call's first round trip (the enter statement and what it guards). A
// connection that the enter statement refuses for leftover session state is
// replaced and send runs again on another, at most twice. left says the
// call's SQL may leave session state; behind a transaction pooler such a
// call is refused with ErrSessionState before anything is sent.
//
// On success the caller owns the lease and must release it; on failure it
// is released already, with the error.
func (h *Handle) open(ctx context.Context, left bool, send func(r *route, c *pool.Conn) error) (lease, error) {
	var moveDeadline time.Time
	for attempt := 0; ; attempt++ {
		r, err := h.route(ctx)
		if err != nil {
			if errors.Is(err, tenant.ErrMoving) && h.waitMove(ctx, &moveDeadline) {
				continue
			}
			return lease{}, err
		}
		start := time.Time{}
		if r.calls != nil || r.waits != nil {
			start = time.Now()
		}
		c, err := h.t.conns.Acquire(ctx, pool.Key{Target: r.target, Tenant: r.t.ID, OwnTables: r.t.Model == tenant.ModelSchema, MaxConns: r.t.Settings.MaxConns})
		if r.waits != nil {
			r.waits(time.Since(start))
		}
		if err != nil {
			if r.calls != nil {
				r.calls(start, err)
			}
			return lease{}, err
		}
		ls := lease{t: h.t, r: r, c: c, start: start, leftState: left}
		if r.pooled && left {
			ls.leftState = false // nothing was sent
			ls.release(ErrSessionState)
			return lease{}, ErrSessionState
		}
		err = send(r, c) // not &ls: the lease would escape to the heap on every call
		if err == nil {
			return ls, nil
		}
		if refused(err) && attempt < 2 {
			ls.replace()
			continue
		}
		// A connection left inside a failed round trip is the pool's to
		// judge: it destroys one that is not idle.
		ls.release(err)
		return lease{}, err
	}
}

// refused reports whether err is an enter statement refusing a connection
// that carries session state, or missing from a connection whose prepared
// statements tenant SQL deallocated (SECURITY.md, I34). Nothing of the round
// trip ran after it.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == pgerrcode.UndefinedObject && strings.Contains(pgErr.Message, refusedSetting) ||
		pgErr.Code == pgerrcode.InvalidSQLStatementName && strings.Contains(pgErr.Message, `"landlord_enter`)
}

// stale reports whether err says a prepared statement no longer fits
// (its result type changed after a migration) or is gone.
func stale(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.FeatureNotSupported || pgErr.Code == pgerrcode.InvalidSQLStatementName)
}

// waitMove waits a little for a moving tenant's move to flip its placement,
// and reports whether the call should route again: until the deadline
// (Config.MoveWait from the first wait) passes. Its route is read from the
// directory anew each time, so a notification late or lost costs no more
// than one pause.
func (h *Handle) waitMove(ctx context.Context, deadline *time.Time) bool {
	now := time.Now()
	if deadline.IsZero() {
		*deadline = now.Add(h.t.cfg.MoveWait)
	}
	if !now.Before(*deadline) {
		return false
	}
	t := time.NewTimer(min(movePoll, deadline.Sub(now)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	if id, ok := h.tenantOf(ctx); ok {
		h.t.routes.Invalidate(id)
	}
	return true
}

// movePoll is how often a call waiting for a move reads its tenant's
// directory entry.
const movePoll = 20 * time.Millisecond
