package landlord

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/move"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// moverChildEnv makes the test binary a mover child: TestMoverChild moves
// the tenant and kills itself when the move reaches a phase.
const moverChildEnv = "LANDLORD_TEST_MOVER_CHILD"

// TestMoverChild is the mover that TestMoveSurvivesKill kills; it does
// nothing in a normal run.
func TestMoverChild(t *testing.T) {
	if os.Getenv(moverChildEnv) == "" {
		t.Skip("runs only as TestMoveSurvivesKill's child")
	}
	ctx := context.Background()
	// The parent audited the installation already.
	l, err := Open(ctx, os.Getenv("LL_URL"), testMigrations(), Config{StartupAudit: AuditOff})
	must(t, err)
	defer l.Close()
	a, err := l.Admin(ctx, "mover child")
	must(t, err)
	id, err := tenant.ParseID(os.Getenv("LL_TENANT"))
	must(t, err)
	kill, seen := directory.MovePhase(os.Getenv("LL_KILL")), 0
	_, err = a.MoveTenant(ctx, id, tenant.Model(os.Getenv("LL_MODEL")), "", move.Config{Settle: time.Millisecond, Progress: func(p move.Progress) {
		if p.Phase == kill {
			// fenced is reported twice: after the directory's fence and
			// after the database's; the second is killed.
			if seen++; kill != directory.MoveFenced || seen == 2 {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}})
	t.Fatalf("the move was not killed at %s: %v", kill, err)
}

// TestMoveSurvivesKill kills the mover (SIGKILL of a child process) as it
// reaches each phase, while a writer writes through the handle, and then
// resumes the move: before the fence it is undone and the tenant stays
// where it was, from the fence on it is finished. Either way every
// acknowledged write is there once and nothing is left of the placement
// that no longer serves (THREATS F05).
func TestMoveSurvivesKill(t *testing.T) {
	t.Parallel()
	l, a, db := moveSetup(t)
	ctx := t.Context()
	h := l.Handle()
	for i, kill := range []directory.MovePhase{directory.MoveTarget, directory.MoveCopied, directory.MoveFenced, directory.MoveFlipped} {
		t.Run(string(kill), func(t *testing.T) {
			from, to := tenant.ModelRow, tenant.ModelSchema
			if i%2 == 1 {
				from, to = tenant.ModelSchema, tenant.ModelDatabase
			}
			src, err := l.CreateTenant(ctx, provision.Request{Slug: fmt.Sprintf("killed-%d", i), Model: from})
			must(t, err)
			dst, err := l.Provisioner().Placement(ctx, src, to, src.Server)
			must(t, err)
			tctx := WithTenant(ctx, src.ID)
			seedItems(t, h, tctx, 300)
			w := startWriter(h, tctx, 10000)

			child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestMoverChild$", "-test.count=1")
			child.Env = append(os.Environ(), moverChildEnv+"=1", "LL_URL="+db.AdminURL, "LL_TENANT="+src.ID.String(),
				"LL_MODEL="+string(to), "LL_KILL="+string(kill))
			out, err := child.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				w.finish()
				t.Fatalf("the mover was not killed: %v\n%s", err, out)
			}
			m, ok, err := l.Directory().UnfinishedMove(ctx, src.ID)
			must(t, err)
			if !ok || m.Phase != kill {
				t.Fatalf("after the kill the move is %v (%s), want unfinished at %s", ok, m.Phase, kill)
			}

			// Half the moves are taken over by ResumeMove, the others by
			// Reconcile, which finds them itself.
			wantAborted := kill == directory.MoveTarget || kill == directory.MoveCopied
			if i%2 == 0 {
				res, aborted, err := a.ResumeMove(ctx, src.ID, move.Config{Settle: time.Millisecond})
				time.Sleep(100 * time.Millisecond)
				w.finish()
				must(t, err)
				if aborted != wantAborted {
					t.Errorf("resumed after a kill at %s: aborted %v, want %v (%s)", kill, aborted, wantAborted, res.Move.Phase)
				}
			} else {
				rep, err := a.Reconcile(ctx)
				time.Sleep(100 * time.Millisecond)
				w.finish()
				must(t, err)
				want, other := &rep.MovesFinished, &rep.MovesUndone
				if wantAborted {
					want, other = other, want
				}
				if !slices.Contains(*want, src.ID) || slices.Contains(*other, src.ID) || len(rep.Failures) > 0 {
					t.Errorf("reconcile after a kill at %s: finished %v, undone %v, failures %v; want the move %s",
						kill, rep.MovesFinished, rep.MovesUndone, rep.Failures, map[bool]string{true: "undone", false: "finished"}[wantAborted])
				}
			}
			got, err := l.Directory().Get(ctx, src.ID)
			must(t, err)
			gone, here := dst, src
			if !wantAborted {
				gone, here = src, dst
			}
			if got.Model != here.Model || got.State != tenant.StateActive {
				t.Errorf("after the resume the tenant is %s, %s; want %s, active", got.Model, got.State, here.Model)
			}
			w.check(t)
			if left := leftovers(t, l, gone); len(left) > 0 {
				t.Errorf("left behind of the %s placement: %v", gone.Model, left)
			}
			if _, ok, _ := l.Directory().UnfinishedMove(ctx, src.ID); ok {
				t.Errorf("the move is still unfinished")
			}
		})
	}
}
