package landlord

import (
	"context"
	"log/slog"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/tenant"
)

// MoveTenant moves tenant id to model on server ("" its own server,
// provision.LeastLoaded the least loaded one) while it keeps serving: its
// calls pause only at the cutover, where the handle holds them until the
// new placement serves (Config.MoveWait). See package move for the phases.
func (a *Admin) MoveTenant(ctx context.Context, id tenant.ID, model tenant.Model, server string, cfg move.Config) (move.Result, error) {
	a.log(ctx, "move tenant", slog.String("tenant", id.String()), slog.String("model", string(model)), slog.String("server", server))
	return move.Move(ctx, a.l.prov, id, model, server, cfg)
}

// ResumeMove finishes tenant id's unfinished move: undone when it stopped
// before its fence, finished after (see move.Resume).
func (a *Admin) ResumeMove(ctx context.Context, id tenant.ID, cfg move.Config) (move.Result, bool, error) {
	a.log(ctx, "resume move", slog.String("tenant", id.String()))
	return move.Resume(ctx, a.l.prov, id, cfg)
}

// ResumeStoppedMove is ResumeMove for a move whose mover is gone: when
// another session holds the tenant's lock (its mover is alive) it does
// nothing and reports busy (see move.ResumeIdle).
func (a *Admin) ResumeStoppedMove(ctx context.Context, id tenant.ID, cfg move.Config) (res move.Result, aborted, busy bool, err error) {
	a.log(ctx, "resume stopped move", slog.String("tenant", id.String()))
	res, aborted, busy, err = move.ResumeIdle(ctx, a.l.prov, id, cfg)
	a.l.traffic.Invalidate(id)
	return res, aborted, busy, err
}

// AbortMove undoes tenant id's unfinished move that has not reached its
// fence.
func (a *Admin) AbortMove(ctx context.Context, id tenant.ID) (directory.Move, error) {
	a.log(ctx, "abort move", slog.String("tenant", id.String()))
	return move.Abort(ctx, a.l.prov, id, move.Config{})
}

// DrainServer moves every tenant off server (see move.Drain).
func (a *Admin) DrainServer(ctx context.Context, server string, cfg move.DrainConfig) (move.DrainResult, error) {
	a.log(ctx, "drain server", slog.String("server", server))
	return move.Drain(ctx, a.l.prov, server, cfg)
}
