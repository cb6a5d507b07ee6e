package embedded

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// runAs is the unprivileged account that runs initdb and postgres when this
// process is root, because PostgreSQL refuses to run as root. A nil *runAs
// means "run as this process's user"; its methods are then no-ops.
type runAs struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

// lookupRunAs resolves the OS user for a root process: name, or "postgres"
// when that account exists, else "nobody".
func lookupRunAs(name string) (*runAs, error) {
	if name == "" {
		name = "nobody"
		if _, err := user.Lookup("postgres"); err == nil {
			name = "postgres"
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("OSUser %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("OSUser %q: non-numeric uid %q or gid %q", name, u.Uid, u.Gid)
	}
	if uid == 0 {
		return nil, fmt.Errorf("OSUser %q: is root, and PostgreSQL refuses to run as root", name)
	}
	r := &runAs{name: name, uid: uint32(uid), gid: uint32(gid)}
	ids, _ := u.GroupIds()
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil {
			r.groups = append(r.groups, uint32(g))
		}
	}
	return r, nil
}

func (r *runAs) userName() string {
	if r == nil {
		return ""
	}
	return r.name
}

func (r *runAs) credential() *syscall.Credential {
	if r == nil {
		return nil
	}
	return &syscall.Credential{Uid: r.uid, Gid: r.gid, Groups: r.groups}
}

func (r *runAs) chown(path string) error {
	if r == nil {
		return nil
	}
	return os.Chown(path, int(r.uid), int(r.gid))
}

// checkTraverse reports the first directory from dir up to / that the user
// cannot enter; a home directory such as /root (mode 0700) is the usual one.
// It reads mode bits only, so an ACL that grants access is not seen.
func (r *runAs) checkTraverse(dir string) error {
	if r == nil {
		return nil
	}
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if ok && !r.canEnter(fi.Mode().Perm(), st.Uid, st.Gid) {
			return fmt.Errorf("%w: OS user %s cannot enter %s (mode %#o); choose a data directory outside it or run `chmod o+x %s`",
				ErrNotTraversable, r.name, d, fi.Mode().Perm(), d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func (r *runAs) canEnter(perm os.FileMode, uid, gid uint32) bool {
	switch {
	case uid == r.uid:
		return perm&0o100 != 0
	case gid == r.gid || slices.Contains(r.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
