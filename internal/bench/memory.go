package bench

import (
	"bufio"
	"context"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Catalog memory of the backends that serve tenant traffic is read the way
// PostgreSQL offers for other backends: pg_log_backend_memory_contexts(pid)
// makes backend pid write its memory contexts to the server log at its next
// interrupt check (an idle backend does so at once), and the log is parsed.
// A backend could report its own memory through pg_backend_memory_contexts,
// but only on a connection the caller holds, and the handle's pool hands out
// whichever connection is free; the log reaches every backend of the pool.
// It needs a superuser (the function is not granted to others by default)
// and the server's log file, which the embedded server keeps in its data
// directory. Next to it the backends' private memory (RssAnon in /proc)
// is sampled, which needs neither.

// backendMemory is what one backend logged, in bytes allocated.
type backendMemory struct {
	// Cache is CacheMemoryContext with all its children (relation, index
	// and catalog caches).
	Cache int64
	// Total is the backend's grand total of all contexts.
	Total int64
}

var (
	logLine     = regexp.MustCompile(`\[(\d+)\] LOG:\s+(.*)$`)
	levelLine   = regexp.MustCompile(`^level: (\d+); (.*)$`)
	ctxStats    = regexp.MustCompile(`^(.*?): (\d+) total in \d+ blocks;`)
	moreStats   = regexp.MustCompile(`^\d+ more child contexts containing (\d+) total in`)
	grandTotal  = regexp.MustCompile(`^Grand total: (\d+) bytes in`)
	loggingLine = "logging memory contexts of PID "
)

// parseMemoryLog reads the memory context dumps in a server log excerpt,
// per backend pid. Contexts are logged depth first with their level; the
// children of CacheMemoryContext are the lines after it with a deeper
// level, and children beyond the hundredth are summed up in one "more
// child contexts" line at CacheMemoryContext's own level right after them.
func parseMemoryLog(r io.Reader) map[int]backendMemory {
	type state struct {
		mem        backendMemory
		cacheLevel int // -1: not inside CacheMemoryContext
		done       bool
	}
	states := map[int]*state{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := logLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		msg := m[2]
		if strings.HasPrefix(msg, loggingLine) {
			states[pid] = &state{cacheLevel: -1}
			continue
		}
		st := states[pid]
		if st == nil {
			continue
		}
		if g := grandTotal.FindStringSubmatch(msg); g != nil {
			st.mem.Total, _ = strconv.ParseInt(g[1], 10, 64)
			st.done = true
			st.cacheLevel = -1
			continue
		}
		lv := levelLine.FindStringSubmatch(msg)
		if lv == nil {
			continue
		}
		level, _ := strconv.Atoi(lv[1])
		body := lv[2]
		if st.cacheLevel >= 0 {
			switch {
			case level > st.cacheLevel:
				st.mem.Cache += statsTotal(body)
				continue
			case level == st.cacheLevel && moreStats.MatchString(body):
				st.mem.Cache += statsTotal(body)
				st.cacheLevel = -1
				continue
			default:
				st.cacheLevel = -1
			}
		}
		if c := ctxStats.FindStringSubmatch(body); c != nil && c[1] == "CacheMemoryContext" {
			st.mem.Cache, _ = strconv.ParseInt(c[2], 10, 64)
			st.cacheLevel = level
		}
	}
	out := map[int]backendMemory{}
	for pid, st := range states {
		if st.done {
			out[pid] = st.mem
		}
	}
	return out
}

// statsTotal is the "N total" of a context or summary line.
func statsTotal(body string) int64 {
	if m := moreStats.FindStringSubmatch(body); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	if m := ctxStats.FindStringSubmatch(body); m != nil {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		return n
	}
	return 0
}

// memProbe asks backends to log their memory and reads the log.
type memProbe struct {
	admin   *pgxpool.Pool // a superuser's
	logPath string
}

// sample returns the memory of the backends pids, as far as they logged it
// within a few seconds.
func (p *memProbe) sample(ctx context.Context, pids []int) (map[int]backendMemory, error) {
	fi, err := os.Stat(p.logPath)
	if err != nil {
		return nil, err
	}
	off := fi.Size()
	for _, pid := range pids {
		if _, err := p.admin.Exec(ctx, `SELECT pg_log_backend_memory_contexts($1)`, pid); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := p.read(off)
		if err != nil {
			return nil, err
		}
		if len(got) >= len(pids) || time.Now().After(deadline) {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *memProbe) read(off int64) (map[int]backendMemory, error) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, err
	}
	return parseMemoryLog(f), nil
}
