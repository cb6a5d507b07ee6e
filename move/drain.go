package move

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// DrainConfig holds the settings of Drain.
type DrainConfig struct {
	// To is the server the tenants go to; "" spreads them, each to the
	// least loaded other server at the time it moves.
	To string
	// Parallel moves at most this many tenants at once. Default 2.
	Parallel int
	// Move is each move's settings. Its Settle applies once, at the end.
	Move Config
	// Progress, when set, is called after each tenant, with the counts.
	Progress func(DrainProgress)
}

// DrainProgress is how far a drain has come.
type DrainProgress struct {
	Done, Failed, Total int
	Last                tenant.Tenant // the tenant that just finished
	Err                 error         // its error, if it failed
}

// DrainResult is what a drain did, tenant by tenant.
type DrainResult struct {
	Moved  []Result
	Failed map[tenant.ID]error
}

// Drain moves every tenant off server, each to the same model on another
// server, at most cfg.Parallel at once, each online where it can be. A
// tenant whose move fails stays where it was (or, past its fence, is
// finished by Resume) and the others go on; the result lists both. The
// server itself stays in the directory, empty.
func Drain(ctx context.Context, p *provision.Provisioner, server string, cfg DrainConfig) (DrainResult, error) {
	out := DrainResult{Failed: map[tenant.ID]error{}}
	servers, err := p.Directory().Servers(ctx)
	if err != nil {
		return out, err
	}
	known, others := false, 0
	for _, s := range servers {
		if s.ID == server {
			known = true
		} else if cfg.To == "" || s.ID == cfg.To {
			others++
		}
	}
	if !known {
		return out, fmt.Errorf("drain server %q: %w", server, provision.ErrUnknownServer)
	}
	if cfg.To == server || others == 0 {
		return out, fmt.Errorf("drain server %q: no other server to move its tenants to (servers add first)", server)
	}
	ts, err := p.Directory().List(ctx, directory.Filter{})
	if err != nil {
		return out, err
	}
	var todo []tenant.Tenant
	for _, t := range ts {
		if t.Server == server {
			todo = append(todo, t)
		}
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 2
	}
	settle := cfg.Move.Settle
	cfg.Move.Settle = -1 // one sweep at the end

	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, cfg.Parallel)
	// placeMu makes each choice of the least loaded server see the moves
	// chosen before it.
	var placeMu sync.Mutex
	report := func(t tenant.Tenant, r Result, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			out.Failed[t.ID] = err
		} else {
			out.Moved = append(out.Moved, r)
		}
		if cfg.Progress != nil {
			cfg.Progress(DrainProgress{Done: len(out.Moved), Failed: len(out.Failed), Total: len(todo), Last: t, Err: err})
		}
	}
	for _, t := range todo {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func(t tenant.Tenant) {
			defer wg.Done()
			defer func() { <-sem }()
			switch t.State {
			case tenant.StateActive, tenant.StateReadOnly:
			default:
				report(t, Result{}, &tenant.StateError{ID: t.ID, State: t.State})
				return
			}
			placeMu.Lock()
			to, err := drainTarget(ctx, p, server, cfg.To)
			placeMu.Unlock()
			if err != nil {
				report(t, Result{}, err)
				return
			}
			r, err := Move(ctx, p, t.ID, t.Model, to, cfg.Move)
			report(t, r, err)
		}(t)
	}
	wg.Wait()
	if settle >= 0 {
		if settle == 0 {
			settle = defaultSettle
		}
		if err := Sweep(ctx, p, settle, true); err != nil {
			return out, err
		}
	}
	if err := ctx.Err(); err != nil {
		return out, err
	}
	if len(out.Failed) > 0 {
		errs := make([]error, 0, len(out.Failed))
		for id, err := range out.Failed {
			errs = append(errs, fmt.Errorf("%s: %w", id, err))
		}
		return out, fmt.Errorf("drain server %q: %d of %d tenants not moved: %w", server, len(out.Failed), len(todo), errors.Join(errs...))
	}
	return out, nil
}

// drainTarget is the server a tenant leaving from goes to.
func drainTarget(ctx context.Context, p *provision.Provisioner, from, to string) (string, error) {
	if to != "" {
		return to, nil
	}
	loads, err := p.Loads(ctx)
	if err != nil {
		return "", err
	}
	for _, l := range loads {
		if l.Server != from {
			return l.Server, nil
		}
	}
	return "", fmt.Errorf("no server to move to but %s", from)
}

// defaultSettle is Config.Settle's default.
const defaultSettle = 45 * time.Second
