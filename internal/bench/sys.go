package bench

import (
	"bufio"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU is the CPU time this process has used: the client side of
// every comparison (pgx, Landlord, the load generator).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ), 100
// on every Linux platform Go supports.
const clockTick = time.Second / 100

// procStat is what /proc/<pid>/stat says of one process.
type procStat struct {
	ppid         int
	comm         string
	self, reaped time.Duration // utime+stime; cutime+cstime of waited-for children
}

func readProcStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open || end+2 > len(s) {
		return procStat{}, false
	}
	// Fields after the command: state(3) ppid(4) ... utime(14) stime(15)
	// cutime(16) cstime(17); f[0] is field 3.
	f := strings.Fields(s[end+2:])
	if len(f) < 15 {
		return procStat{}, false
	}
	n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
	ppid, _ := strconv.Atoi(f[1])
	return procStat{
		ppid:   ppid,
		comm:   s[open+1 : end],
		self:   time.Duration(n(11)+n(12)) * clockTick,
		reaped: time.Duration(n(13)+n(14)) * clockTick,
	}, true
}

// serverCPU reads the CPU time of a PostgreSQL server running on this
// machine from /proc: the postmaster, its live children (backends, workers)
// and the children it has already reaped, so that backends that came and
// went during a round count too. postmaster is 0 when the server is not
// local; then nothing is measured.
type serverCPU struct{ postmaster int }

// total returns the server's CPU time so far, and false when it cannot be
// read.
func (s serverCPU) total() (time.Duration, bool) {
	if s.postmaster == 0 {
		return 0, false
	}
	pm, ok := readProcStat(s.postmaster)
	if !ok {
		return 0, false
	}
	sum := pm.self + pm.reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, ok := readProcStat(pid); ok && st.ppid == s.postmaster {
			sum += st.self
		}
	}
	return sum, true
}

// localPostmaster returns the postmaster of the backend with pid when that
// backend runs on this machine, else 0. A remote server's backend pid may
// name some unrelated local process, so the process must look like a
// PostgreSQL backend whose parent looks like a postmaster.
func localPostmaster(backend int) int {
	st, ok := readProcStat(backend)
	if !ok || !strings.HasPrefix(st.comm, "postgres") {
		return 0
	}
	pm, ok := readProcStat(st.ppid)
	if !ok || !(strings.HasPrefix(pm.comm, "postgres") || strings.HasPrefix(pm.comm, "postmaster")) {
		return 0
	}
	return st.ppid
}

// rssAnon returns the private anonymous memory of process pid in bytes
// (RssAnon in /proc/<pid>/status): a backend's heap, its catalog caches
// included, without the shared buffers it has touched.
func rssAnon(pid int) (int64, bool) {
	return procKB("/proc/"+strconv.Itoa(pid)+"/status", "RssAnon:")
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes.
func memAvailable() (int64, bool) { return procKB("/proc/meminfo", "MemAvailable:") }

// procKB returns the value of the line of file that starts with key, given
// in kB there, in bytes.
func procKB(file, key string) (int64, bool) {
	f, err := os.Open(file)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// machine describes the machine for every result's setup.
func machine() map[string]any {
	m := map[string]any{
		"cpus":       runtime.NumCPU(),
		"gomaxprocs": runtime.GOMAXPROCS(0),
		"go":         runtime.Version(),
		"os":         runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m["cpu_model"] = strings.TrimSpace(v)
				break
			}
		}
	}
	if la := loadAvg(); la != "" {
		m["loadavg_start"] = la
	}
	return m
}

// loadAvg is the 1, 5 and 15 minute load average: how busy the shared
// machine was, which the ratios are meant to be robust against.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// rewriteURL returns the connection string base with the database replaced
// (when not empty) and params set, for both URL and keyword/value forms.
// Parameters given later override earlier ones in both forms.
func rewriteURL(base, database string, params map[string]string) string {
	if u, err := url.Parse(base); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if database != "" {
			u.Path, u.RawPath = "/"+database, ""
		}
		q := u.Query()
		for k, v := range params {
			q.Set(k, v)
		}
		u.RawQuery = q.Encode()
		return u.String()
	}
	parts := []string{base}
	if database != "" {
		parts = append(parts, "dbname="+quoteValue(database))
	}
	for k, v := range params {
		parts = append(parts, k+"="+quoteValue(v))
	}
	return strings.Join(parts, " ")
}

func quoteValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
