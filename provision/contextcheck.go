package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/migration"
	"github.com/landlordhq/landlord/tenant"
)

// The context check is an installation-wide setting (migration.ContextCheck):
// the directory records what every database should say, and each database's
// verifier says what is in force there. SetContextCheck records the new
// value first and then brings every database to it, so a pass cut short
// (a crash, a failed connection) leaves databases that the audit reports as
// differing from the record, and running it again finishes it. Databases
// made meanwhile get the recorded value: the template is brought before
// the tenant databases are listed, and a new tenant database is checked
// against the record once it exists (ensureContextCheck).

// contextCheckLockNamespace is the first key of the lock that serializes
// SetContextCheck passes ("LLCC").
const contextCheckLockNamespace = 0x4c4c4343

// ContextCheckStatus is what SetContextCheck did with one database.
type ContextCheckStatus string

const (
	ContextCheckChanged   ContextCheckStatus = "changed"    // it held the other check
	ContextCheckCurrent   ContextCheckStatus = "current"    // it held the new check already
	ContextCheckNoContext ContextCheckStatus = "no-context" // gone, or not yet given a context; provisioning checks it
	ContextCheckFailed    ContextCheckStatus = "failed"
)

// ContextCheckTarget is one database that holds tenant tables.
type ContextCheckTarget struct {
	Kind     string // "control", "server", "template", "tenant" or "reserve"
	Server   string
	Database string
	Tenant   tenant.ID // for "tenant" and "reserve"
	Status   ContextCheckStatus
	Err      error
}

// ContextCheckReport is the outcome of SetContextCheck, target by target.
type ContextCheckReport struct {
	Check   migration.ContextCheck
	Targets []ContextCheckTarget
}

// Count returns how many targets ended with status s.
func (r ContextCheckReport) Count(s ContextCheckStatus) int {
	n := 0
	for _, t := range r.Targets {
		if t.Status == s {
			n++
		}
	}
	return n
}

// ErrContextCheckIncomplete is wrapped by SetContextCheck's error when some
// database could not be brought to the new check; the installation's record
// holds the new value, and running SetContextCheck again finishes the pass.
var ErrContextCheckIncomplete = errors.New("the context check is not in force in every database")

// ContextCheck returns the installation's recorded context check.
func (p *Provisioner) ContextCheck(ctx context.Context) (migration.ContextCheck, error) {
	c, err := p.dir.ContextCheck(ctx)
	return migration.ContextCheck(c), err
}

// SetContextCheck makes check the installation's context check and brings
// every database that holds tenant tables to it: the control database,
// the template database, each other server's database, and the database of
// every database tenant, reserved ones included. progress, when not nil, is
// called after each database with the number done and the total. An
// unknown check is refused before anything changes. It is idempotent, and
// passes run one at a time.
func (p *Provisioner) SetContextCheck(ctx context.Context, check migration.ContextCheck, progress func(done, total int)) (ContextCheckReport, error) {
	rep := ContextCheckReport{Check: check}
	if _, err := migration.ParseContextCheck(string(check)); err != nil {
		return rep, err
	}
	err := p.withLock(ctx, contextCheckLockNamespace, 1, func(*pgx.Conn) error {
		if err := p.dir.SetContextCheck(ctx, string(check)); err != nil {
			return err
		}
		control := ContextCheckTarget{Kind: "control", Server: directory.DefaultServer}
		if err := p.admin.QueryRow(ctx, `SELECT current_database()`).Scan(&control.Database); err != nil {
			return err
		}
		control.Status, control.Err = p.bringContextCheck(ctx, p.admin, check)
		rep.Targets = append(rep.Targets, control)

		// The template before the list: a database copied from it later
		// holds the new check.
		exists, _, _, err := p.templateDatabaseState(ctx)
		if err != nil {
			return err
		}
		if exists {
			tpl := ContextCheckTarget{Kind: "template", Server: directory.DefaultServer, Database: p.TemplateDatabase()}
			tpl.Err = p.WithTemplateDatabase(ctx, func(ctx context.Context, conn *pgx.Conn) error {
				var err error
				tpl.Status, err = p.bringContextCheck(ctx, conn, check)
				return err
			})
			if tpl.Err != nil {
				tpl.Status = ContextCheckFailed
			}
			rep.Targets = append(rep.Targets, tpl)
		}
		targets, err := p.contextCheckTargets(ctx)
		if err != nil {
			return err
		}
		total := len(rep.Targets) + len(targets)
		done := len(rep.Targets)
		if progress != nil {
			progress(len(rep.Targets), total)
		}
		sem := make(chan struct{}, DefaultSyncParallel)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := range targets {
			t := &targets[i]
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				t.Status, t.Err = ContextCheckFailed, ctx.Err()
				continue
			}
			wg.Go(func() {
				defer func() { <-sem }()
				t.Status, t.Err = p.bringDatabaseContextCheck(ctx, t.Server, t.Database, check)
				if progress != nil {
					// Under the lock, so that the counts arrive in order.
					mu.Lock()
					done++
					progress(done, total)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		rep.Targets = append(rep.Targets, targets...)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("set the context check: %w", err)
	}
	var errs []error
	for _, t := range rep.Targets {
		if t.Err != nil {
			errs = append(errs, fmt.Errorf("%s %s/%s: %w", t.Kind, t.Server, t.Database, t.Err))
		}
	}
	if len(errs) > 0 {
		return rep, fmt.Errorf("%w: %w", ErrContextCheckIncomplete, errors.Join(errs...))
	}
	return rep, nil
}

// contextCheckTargets lists the databases with tenant tables other than the
// control and template databases: tenant databases in any state but
// deleting (one being provisioned or moved may hold a copy of the template
// already), reserved ones, and each other server's database.
func (p *Provisioner) contextCheckTargets(ctx context.Context) ([]ContextCheckTarget, error) {
	ts, err := p.dir.List(ctx, directory.Filter{})
	if err != nil {
		return nil, err
	}
	servers, err := p.dir.Servers(ctx)
	if err != nil {
		return nil, err
	}
	var out []ContextCheckTarget
	for _, t := range ts {
		if t.Model == tenant.ModelDatabase && t.State != tenant.StateDeleting && t.Database != "" {
			out = append(out, ContextCheckTarget{Kind: "tenant", Server: t.Server, Database: t.Database, Tenant: t.ID})
		}
	}
	for _, s := range servers {
		reserved, err := p.dir.ListReserved(ctx, tenant.ModelDatabase, s.ID)
		if err != nil {
			return nil, err
		}
		for _, e := range reserved {
			out = append(out, ContextCheckTarget{Kind: "reserve", Server: e.Server, Database: e.Database, Tenant: e.ID})
		}
		if s.ID != directory.DefaultServer {
			out = append(out, ContextCheckTarget{Kind: "server", Server: s.ID, Database: s.Database})
		}
	}
	slices.SortStableFunc(out, func(a, b ContextCheckTarget) int {
		switch {
		case a.Server+"/"+a.Database < b.Server+"/"+b.Database:
			return -1
		case a.Server+"/"+a.Database > b.Server+"/"+b.Database:
			return 1
		}
		return 0
	})
	return slices.CompactFunc(out, func(a, b ContextCheckTarget) bool { return a.Server == b.Server && a.Database == b.Database }), nil
}

// bringDatabaseContextCheck connects to database on server and brings its
// verifier to check. A database that is gone counts as NoContext.
func (p *Provisioner) bringDatabaseContextCheck(ctx context.Context, server, database string, check migration.ContextCheck) (ContextCheckStatus, error) {
	conn, err := p.Connect(ctx, server, database)
	if isCode(err, pgerrcode.InvalidCatalogName) {
		return ContextCheckNoContext, nil
	}
	if err != nil {
		return ContextCheckFailed, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := p.bringContextCheck(ctx, conn, check)
	if err != nil {
		return ContextCheckFailed, err
	}
	return st, nil
}

// bringContextCheck makes the verifier of the database conn is connected
// to check as check, if it has a context at all.
func (p *Provisioner) bringContextCheck(ctx context.Context, conn interface {
	migration.Beginner
	migration.Querier
}, check migration.ContextCheck) (ContextCheckStatus, error) {
	cur, ok, err := migration.ReadContextCheck(ctx, conn)
	switch {
	case err != nil:
		return ContextCheckFailed, err
	case !ok:
		return ContextCheckNoContext, nil
	case cur == check:
		return ContextCheckCurrent, nil
	}
	if err := migration.SetContextCheck(ctx, conn, p.cfg.OwnerRole, p.roles.ContextKey(), check); err != nil {
		return ContextCheckFailed, err
	}
	return ContextCheckChanged, nil
}

// ensureContextCheck brings the database conn is connected to (a new tenant
// database, the template) to the installation's recorded check, installing
// the context if it is missing. A context in place with the recorded check
// is left as it is, key and version unchecked: that is InstallContext's.
func (p *Provisioner) ensureContextCheck(ctx context.Context, conn *pgx.Conn) error {
	check, err := p.ContextCheck(ctx)
	if err != nil {
		return err
	}
	cur, ok, err := migration.ReadContextCheck(ctx, conn)
	if err != nil {
		return err
	}
	if ok && cur == check {
		return nil
	}
	return migration.SetContextCheck(ctx, conn, p.cfg.OwnerRole, p.roles.ContextKey(), check)
}
