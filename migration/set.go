// Package migration loads an application's tenant-table migrations and applies
// them to one target: the shared schema of a server, a tenant schema, the
// schema inside a tenant database, or a template. Each migration commits its
// DDL, the row-level security Landlord installs, the shape checks and its
// ledger row in one transaction, so a target is at version v or v+1, never in
// between.
package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Migration is one file of a Set.
type Migration struct {
	Version       int
	Name          string // file name, e.g. "001_products.up.sql"
	SQL           string
	Checksum      string // hex SHA-256 of SQL; a changed file is refused
	NoTransaction bool   // first line "-- landlord:no-transaction"
	// Earlier are the checksums of earlier wordings of the file that
	// ledgers may hold, from its "-- landlord:earlier-checksum <hex>" lines:
	// the way to reword the comments of an applied migration without every
	// installation refusing it. Only comments may differ; nothing checks
	// that, so such a line is a promise its author makes.
	Earlier []string
}

// Matches reports whether a checksum a ledger recorded is this file's, in
// its present wording or an earlier one.
func (m Migration) Matches(recorded string) bool {
	return recorded == m.Checksum || slices.Contains(m.Earlier, recorded)
}

// Set is an ordered, validated list of migrations.
type Set struct {
	list []Migration
	hash string
}

// noTxDirective on the first line of a file marks a migration that cannot run
// inside a transaction, such as CREATE INDEX CONCURRENTLY. Such a migration
// must be written to be idempotent: it may run again after a crash.
const noTxDirective = "-- landlord:no-transaction"

// earlierDirective starts a line that names the checksum of an earlier
// wording of the file (see Migration.Earlier).
const earlierDirective = "-- landlord:earlier-checksum "

var checksumPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

var fileName = regexp.MustCompile(`^([0-9]{1,9})_([a-z0-9][a-z0-9_]*)\.up\.sql$`)

// Load reads every "*.sql" file at the root of fsys. Names must look like
// "001_create_products.up.sql"; versions must be unique and positive. Other
// files (a README, say) are ignored. Load fails on the first problem and names
// the file.
func Load(fsys fs.FS) (*Set, error) {
	if fsys == nil {
		return nil, fmt.Errorf("load migrations: %w: no file system given", ErrBadMigration)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("load migrations: %w", err)
	}
	s := &Set{}
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		m := fileName.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration file %q: %w: name must look like 001_create_products.up.sql (digits, underscore, lower-case name, .up.sql)", name, ErrBadMigration)
		}
		v, _ := strconv.Atoi(m[1])
		if v <= 0 {
			return nil, fmt.Errorf("migration file %q: %w: version must be positive", name, ErrBadMigration)
		}
		if prev, ok := seen[v]; ok {
			return nil, fmt.Errorf("migration files %q and %q: %w: both have version %d", prev, name, ErrBadMigration, v)
		}
		seen[v] = name
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("migration file %q: %w", name, err)
		}
		sql := string(b)
		if strings.TrimSpace(sql) == "" {
			return nil, fmt.Errorf("migration file %q: %w: empty", name, ErrBadMigration)
		}
		sum := sha256.Sum256(b)
		firstLine, _, _ := strings.Cut(sql, "\n")
		var earlier []string
		for _, line := range strings.Split(sql, "\n") {
			if rest, ok := strings.CutPrefix(strings.TrimSpace(line), earlierDirective); ok {
				if !checksumPattern.MatchString(rest) {
					return nil, fmt.Errorf("migration file %q: %w: %q is not a hex SHA-256", name, ErrBadMigration, strings.TrimSpace(line))
				}
				earlier = append(earlier, rest)
			}
		}
		s.list = append(s.list, Migration{
			Version:       v,
			Name:          name,
			SQL:           sql,
			Checksum:      hex.EncodeToString(sum[:]),
			NoTransaction: strings.TrimSpace(firstLine) == noTxDirective,
			Earlier:       earlier,
		})
	}
	if len(s.list) == 0 {
		return nil, fmt.Errorf("load migrations: %w: no *.up.sql files found", ErrBadMigration)
	}
	sort.Slice(s.list, func(i, j int) bool { return s.list[i].Version < s.list[j].Version })
	h := sha256.New()
	for _, m := range s.list {
		fmt.Fprintf(h, "%d %s\n", m.Version, m.Checksum)
	}
	s.hash = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// Migrations returns the migrations in version order. The slice is shared;
// do not modify it.
func (s *Set) Migrations() []Migration { return s.list }

// Head is the highest version in the set.
func (s *Set) Head() int { return s.list[len(s.list)-1].Version }

// Hash identifies the set's content: it changes when any file changes.
func (s *Set) Hash() string { return s.hash }

// find returns the migration with version v.
func (s *Set) find(v int) (Migration, bool) {
	i := sort.Search(len(s.list), func(i int) bool { return s.list[i].Version >= v })
	if i < len(s.list) && s.list[i].Version == v {
		return s.list[i], true
	}
	return Migration{}, false
}
