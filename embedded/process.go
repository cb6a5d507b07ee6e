package embedded

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	fastShutdownTimeout = 15 * time.Second
	escalateTimeout     = 5 * time.Second
	pollInterval        = 20 * time.Millisecond
)

// pidFile is what a running server records in postmaster.pid: pid, data
// directory, start time, port, first socket directory, first listen address,
// shared memory key and status, one per line, the later ones written as
// startup proceeds.
type pidFile struct {
	pid       int
	port      int
	socketDir string
	status    string // "starting", "ready", "standby" or "stopping"
}

func readPidFile(dataDir string) (*pidFile, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	pf := &pidFile{}
	if pf.pid, err = strconv.Atoi(strings.TrimSpace(lines[0])); err != nil || pf.pid <= 1 {
		return nil, fmt.Errorf("%s/postmaster.pid: bad pid %q", dataDir, lines[0])
	}
	if len(lines) > 3 {
		pf.port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) > 4 {
		pf.socketDir = strings.TrimSpace(lines[4])
	}
	if len(lines) > 7 {
		pf.status = strings.TrimSpace(lines[7])
	}
	return pf, nil
}

// alive reports whether pid exists; EPERM means it does but belongs to
// someone else.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// serves reports whether pid is a live process of the server on dataDir. A pid
// from an old postmaster.pid may since have gone to an unrelated process,
// which must never be signalled; every postgres process works in its data
// directory, so on Linux its cwd tells.
func serves(pid int, dataDir string) bool {
	if pid <= 1 || !alive(pid) {
		return false
	}
	cwd, err := os.Stat(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		// Without procfs (macOS), or without permission to look, a live pid
		// is taken at its word.
		_, noProc := os.Stat("/proc/self")
		return !errors.Is(err, fs.ErrNotExist) || noProc != nil
	}
	dd, err := os.Stat(dataDir)
	return err == nil && os.SameFile(cwd, dd)
}

// shutdown stops the postmaster pid with SIGINT (fast shutdown: end sessions,
// checkpoint), or straight away with SIGQUIT (immediate: no checkpoint, crash
// recovery at next start) when immediate is set, and escalates to SIGQUIT and
// then SIGKILL when a step takes too long. ctx bounds only the fast step, so
// that a cancelled ctx still leaves no server behind.
func shutdown(ctx context.Context, pid int, gone func() bool, immediate bool) error {
	if pid <= 1 {
		// kill(0) and kill(-1) signal whole process groups.
		return fmt.Errorf("refusing to signal pid %d", pid)
	}
	type step struct {
		sig  syscall.Signal
		wait time.Duration
		ctx  context.Context
	}
	steps := []step{
		{syscall.SIGINT, fastShutdownTimeout, ctx},
		{syscall.SIGQUIT, escalateTimeout, context.Background()},
		{syscall.SIGKILL, escalateTimeout, context.Background()},
	}
	if immediate {
		steps = steps[1:]
	}
	for _, st := range steps {
		if gone() {
			return nil
		}
		if err := syscall.Kill(pid, st.sig); err != nil {
			if errors.Is(err, syscall.ESRCH) {
				return nil
			}
			return fmt.Errorf("signal pid %d: %w", pid, err)
		}
		if waitUntil(st.ctx, st.wait, gone) {
			return nil
		}
	}
	return fmt.Errorf("pid %d still running after SIGKILL", pid)
}

// waitUntil polls cond until it holds, d passes or ctx ends.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-ctx.Done():
			return cond()
		case <-t.C:
		}
	}
}

// removeSocketDir removes a socket directory Start created outside the data
// directory; anything else is not ours to remove.
func removeSocketDir(socketDir, dataDir string) {
	if socketDir != "" && socketDir != dataDir && strings.HasPrefix(filepath.Base(socketDir), socketDirPrefix) {
		_ = os.RemoveAll(socketDir)
	}
}

// StopDataDir stops, with an immediate shutdown, a server still running on
// dataDir, typically one left behind by a process that crashed before calling
// Stop. It does nothing when no server runs there. Use it only on data
// directories about to be discarded: an immediate shutdown skips the
// checkpoint.
func StopDataDir(ctx context.Context, dataDir string) error {
	pf, err := readPidFile(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if serves(pf.pid, dataDir) {
		gone := func() bool { return !alive(pf.pid) }
		if err := shutdown(ctx, pf.pid, gone, true); err != nil {
			return fmt.Errorf("stop postgres in %s: %w", dataDir, err)
		}
	}
	removeSocketDir(pf.socketDir, dataDir)
	return nil
}
