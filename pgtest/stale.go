package pgtest

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"syscall"

	"github.com/landlordhq/landlord/embedded"
)

const (
	dirPrefix  = "landlord-pgtest-"
	markerName = "owner.json"
)

// marker records, in each temporary server directory, which test process
// owns the server and whether it was kept on purpose, so that later test
// binaries can tell a crashed binary's leftovers from a live or kept server.
type marker struct {
	PID  int  `json:"pid"`
	Kept bool `json:"kept"`
}

func writeMarker(dir string, m marker) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	// Written aside and renamed, so a concurrent reader never sees half.
	tmp := filepath.Join(dir, markerName+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, markerName))
}

func readMarker(dir string) (marker, error) {
	var m marker
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, err
	}
	if m.PID <= 0 {
		return m, errors.New("no owner pid")
	}
	return m, nil
}

// cleanStale stops and removes the servers under root whose test binary died
// without stopping them (a panic, a timeout, a Ctrl-C) and that were not
// kept on purpose. A directory without a readable marker, with a live owner,
// or kept, is left alone. It returns the directories it removed.
func cleanStale(ctx context.Context, root string) []string {
	dirs, _ := filepath.Glob(filepath.Join(root, dirPrefix+"*"))
	var removed []string
	for _, dir := range dirs {
		m, err := readMarker(dir)
		if err != nil || m.Kept || processAlive(m.PID) {
			continue
		}
		if err := embedded.StopDataDir(ctx, filepath.Join(dir, dataSubdir)); err != nil {
			continue
		}
		if os.RemoveAll(dir) == nil {
			removed = append(removed, dir)
		}
	}
	return removed
}

// processAlive reports whether pid exists; EPERM means it does but belongs
// to another user.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
