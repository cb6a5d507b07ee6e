package embedded

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// EnvBinDir names the environment variable that, when set, is the only place
// FindBinDir looks for server binaries.
const EnvBinDir = "LANDLORD_PG_BIN"

// MinMajorVersion is the oldest PostgreSQL major version Start accepts.
const MinMajorVersion = 15

const installHint = "install PostgreSQL server binaries (Debian/Ubuntu: apt-get install -y postgresql; macOS: brew install postgresql) or pass a database URL (--database-url or LANDLORD_DATABASE_URL)"

var (
	versionOutput = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)
	versionInPath = regexp.MustCompile(`(\d+)(?:\.(\d+))?`)
)

// FindBinDir returns the directory holding the postgres and initdb binaries
// of PostgreSQL 15 or newer. It looks, in order, at $LANDLORD_PG_BIN (and
// nowhere else when that is set), at `pg_config --bindir`, at the versioned
// directories of Debian (/usr/lib/postgresql/*/bin) and Homebrew, newest
// version first, and at postgres on PATH. The error wraps ErrNoBinaries or
// ErrUnsupportedVersion and says how to fix the problem.
func FindBinDir() (string, error) {
	dir, _, err := systemSearch().find()
	return dir, err
}

// search describes where FindBinDir looks, so that tests can describe a
// machine instead of depending on the one they run on.
type search struct {
	getenv   func(string) string
	pgConfig func() string // the directory `pg_config --bindir` prints, "" when there is none
	globs    []string
	lookPath func(string) (string, error)
}

func systemSearch() search {
	return search{
		getenv: os.Getenv,
		pgConfig: func() string {
			out, err := exec.Command("pg_config", "--bindir").Output()
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(out))
		},
		globs: []string{
			"/usr/lib/postgresql/*/bin",
			"/opt/homebrew/opt/postgresql@*/bin",
			"/usr/local/opt/postgresql@*/bin",
		},
		lookPath: exec.LookPath,
	}
}

// find returns the first usable bin directory and its major version.
func (s search) find() (string, int, error) {
	if dir := s.getenv(EnvBinDir); dir != "" {
		major, err := checkBinDir(dir)
		if err != nil {
			return "", 0, fmt.Errorf("%s: %w", EnvBinDir, err)
		}
		return dir, major, nil
	}
	var tooOld error
	for _, dir := range s.candidates() {
		major, err := checkBinDir(dir)
		if err == nil {
			return dir, major, nil
		}
		// Keep looking: an old version first on the list (pg_config of an old
		// client package, say) must not hide a newer server elsewhere.
		if tooOld == nil && errors.Is(err, ErrUnsupportedVersion) {
			tooOld = err
		}
	}
	if tooOld != nil {
		return "", 0, fmt.Errorf("%w; %s", tooOld, installHint)
	}
	return "", 0, fmt.Errorf("%w: %s", ErrNoBinaries, installHint)
}

func (s search) candidates() []string {
	var dirs []string
	if dir := s.pgConfig(); dir != "" {
		dirs = append(dirs, dir)
	}
	for _, pattern := range s.globs {
		matches, _ := filepath.Glob(pattern)
		sort.SliceStable(matches, func(i, j int) bool {
			return pathVersionLess(matches[j], matches[i])
		})
		dirs = append(dirs, matches...)
	}
	if p, err := s.lookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
		// Homebrew links postgres into a shared bin; initdb may only sit
		// next to the real file.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
	}
	return dirs
}

// pathVersionLess orders versioned install directories such as
// /usr/lib/postgresql/9.6/bin and /usr/lib/postgresql/16/bin numerically.
func pathVersionLess(a, b string) bool {
	am, an := pathVersion(a)
	bm, bn := pathVersion(b)
	if am != bm {
		return am < bm
	}
	return an < bn
}

func pathVersion(binDir string) (major, minor int) {
	m := versionInPath.FindStringSubmatch(filepath.Base(filepath.Dir(binDir)))
	if m == nil {
		return -1, -1
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor
}

// checkBinDir reports the major version of the server binaries in dir, or why
// they cannot be used.
func checkBinDir(dir string) (int, error) {
	for _, name := range []string{"postgres", "initdb"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return 0, fmt.Errorf("%w in %s (need postgres and initdb)", ErrNoBinaries, dir)
		}
	}
	major, err := binVersion(dir)
	if err != nil {
		return 0, err
	}
	if major < MinMajorVersion {
		return 0, fmt.Errorf("%w: PostgreSQL %d in %s, need %d or newer", ErrUnsupportedVersion, major, dir, MinMajorVersion)
	}
	return major, nil
}

// binVersion runs `postgres --version`, which works even as root.
func binVersion(dir string) (int, error) {
	bin := filepath.Join(dir, "postgres")
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", bin, err)
	}
	m := versionOutput.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s --version: unrecognized output %q", bin, strings.TrimSpace(string(out)))
	}
	return strconv.Atoi(string(m[1]))
}
