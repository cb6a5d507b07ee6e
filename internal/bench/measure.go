package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// load is the work of one side of a comparison: workers goroutines, each
// calling the function its worker returns until the round ends.
type load struct {
	name    string
	workers int
	// worker makes one goroutine's call function; r is that goroutine's
	// own random source.
	worker func(r *rand.Rand) func(ctx context.Context) error
	// latency records every call's duration (for percentiles).
	latency bool
	// tolerate counts errors instead of failing the round on the first: for
	// sides that are expected to fail (a pool per tenant database running
	// out of connections).
	tolerate bool
	// calls, if set, is added to as calls finish, for callers that watch a
	// round's progress.
	calls *atomic.Int64
	// before and after, if set, run just before and just after the timed
	// part of every round of this load; after may add figures to the
	// round's extra.
	before func(ctx context.Context) error
	after  func(ctx context.Context, r *round) error
}

// round is what one side did in one round.
type round struct {
	calls, errs int64
	// errKinds counts errors by SQLSTATE, or by message when there is none.
	errKinds map[string]int64
	firstErr error
	elapsed  time.Duration
	// client and server are CPU time used during the round; serverOK says
	// whether the server's could be read.
	client, server time.Duration
	serverOK       bool
	lat            []time.Duration
	extra          map[string]float64
}

func (r round) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.calls) / r.elapsed.Seconds()
}

// runLoad runs l for d, or until ctx ends.
func (e *env) runLoad(ctx context.Context, l load, d time.Duration) (round, error) {
	if l.before != nil {
		if err := l.before(ctx); err != nil {
			return round{}, fmt.Errorf("%s: %w", l.name, err)
		}
	}
	res, err := e.timed(ctx, l, d)
	if err == nil && l.after != nil {
		res.extra = map[string]float64{}
		if err := l.after(ctx, &res); err != nil {
			return res, fmt.Errorf("%s: %w", l.name, err)
		}
	}
	return res, err
}

func (e *env) timed(ctx context.Context, l load, d time.Duration) (round, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		n, nerr atomic.Int64
		mu      sync.Mutex
		res     = round{errKinds: map[string]int64{}}
		wg      sync.WaitGroup
	)
	c0 := processCPU()
	s0, sok := e.cpu.total()
	start := time.Now()
	deadline := start.Add(d)
	for range l.workers {
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		call := l.worker(r)
		wg.Go(func() {
			var lat []time.Duration
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				err := call(ctx)
				if l.latency {
					lat = append(lat, time.Since(t0))
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					nerr.Add(1)
					mu.Lock()
					res.errKinds[errKind(err)]++
					if res.firstErr == nil {
						res.firstErr = err
					}
					mu.Unlock()
					if !l.tolerate {
						cancel(fmt.Errorf("%s: %w", l.name, err))
						break
					}
					// A failing side must not spin: a refused connection
					// costs the postmaster a fork every time.
					time.Sleep(5 * time.Millisecond)
					continue
				}
				n.Add(1)
				if l.calls != nil {
					l.calls.Add(1)
				}
			}
			if l.latency {
				mu.Lock()
				res.lat = append(res.lat, lat...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.client = processCPU() - c0
	if s1, ok := e.cpu.total(); ok && sok {
		res.server, res.serverOK = s1-s0, true
	}
	res.calls, res.errs = n.Load(), nerr.Load()
	// The cause is a failed call, or the caller's cancellation.
	return res, context.Cause(ctx)
}

// errKind names an error for counting: its SQLSTATE and message for server
// errors, else its text.
func errKind(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code + " " + pgErr.Message
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// alternate runs one warm-up round of every load and then rounds rounds of
// each in turn (A B C A B C ...), so that drift of the shared machine hits
// every side alike. It returns the rounds per load. warmed, if set, is
// called between the warm-up and the first round.
func (e *env) alternate(ctx context.Context, label string, loads []load, rounds int, d time.Duration, warmed func() error) ([][]round, error) {
	for _, l := range loads {
		if _, err := e.runLoad(ctx, l, d); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	if warmed != nil {
		if err := warmed(); err != nil {
			return nil, err
		}
	}
	out := make([][]round, len(loads))
	for i := range rounds {
		for j, l := range loads {
			r, err := e.runLoad(ctx, l, d)
			if err != nil {
				return nil, fmt.Errorf("round %d: %w", i+1, err)
			}
			out[j] = append(out[j], r)
		}
		if len(loads) > 1 {
			e.progressf("%s: round %d/%d: %s", label, i+1, rounds, roundLine(loads, out, i))
		}
	}
	return out, nil
}

func roundLine(loads []load, out [][]round, i int) string {
	var s string
	for j, l := range loads {
		if j > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %.0f/s", l.name, out[j][i].rate())
	}
	return s
}

// spread is the median, minimum and maximum of per-round figures.
type spread struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
}

func spreadOf(xs []float64) spread {
	if len(xs) == 0 {
		return spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{Median: med, Min: s[0], Max: s[len(s)-1]}
}

// ratios returns the per-round throughput ratios a/b.
func ratios(a, b []round) []float64 {
	var out []float64
	for i := range min(len(a), len(b)) {
		if b[i].rate() > 0 {
			out = append(out, a[i].rate()/b[i].rate())
		}
	}
	return out
}

func rates(rs []round) []float64 {
	var out []float64
	for _, r := range rs {
		out = append(out, r.rate())
	}
	return out
}

// cpuPerCall returns client and server CPU per call in microseconds over
// rounds; server is -1 when it could not be read.
func cpuPerCall(rs []round) (client, server float64) {
	var calls int64
	var c, s time.Duration
	ok := true
	for _, r := range rs {
		calls += r.calls
		c += r.client
		s += r.server
		ok = ok && r.serverOK
	}
	if calls == 0 {
		return 0, -1
	}
	client = float64(c.Nanoseconds()) / 1e3 / float64(calls)
	server = -1
	if ok {
		server = float64(s.Nanoseconds()) / 1e3 / float64(calls)
	}
	return client, server
}

// percentile returns the q-quantile (nearest rank) of ds.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr(f float64) *float64 { return &f }

// round3 keeps three significant decimals for the JSON output.
func round3(f float64) float64 {
	return math.Round(f*1000) / 1000
}
