package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/pgtest"
)

// The contract for scripts, as the README's command-line section states it:
// exit 0 done, 1 the operation failed (a tenant, server or installation that
// is not there included), 2 bad input with nothing changed; with --json a
// list prints one object per line and nothing when empty, every other
// command exactly one object, arrays are [] and unknown values null; a
// command that fails prints nothing on stdout.

// shape is what a successful command prints on stdout with --json.
type shape int

const (
	oneObject shape = iota + 1
	jsonLines       // zero or more objects, one per line
)

// contractCase is one command line and what it must do.
type contractCase struct {
	args  []string
	code  int
	shape shape // for code 0
	lines int   // for jsonLines: at least this many objects
}

// arrayKeys are the fields the JSON output holds lists in: never null.
var arrayKeys = map[string]bool{
	"targets": true, "pending": true, "applied": true, "steps": true, "objects": true,
	"resumed": true, "deleted": true, "skipped": true, "dropped": true, "failures": true,
	"tables": true, "columns": true,
}

// checkValue walks a decoded JSON value: lists are [] rather than null, and
// a version is null when not known, never -1.
func checkValue(t *testing.T, where string, key string, v any) {
	t.Helper()
	switch v := v.(type) {
	case nil:
		if arrayKeys[key] {
			t.Errorf("%s: %q is null, want []", where, key)
		}
	case float64:
		if v < 0 && (key == "version" || key == "from" || key == "port") {
			t.Errorf("%s: %q is %v; an unknown value is null", where, key, v)
		}
	case map[string]any:
		for k, e := range v {
			checkValue(t, where, k, e)
		}
	case []any:
		for _, e := range v {
			checkValue(t, where, key, e)
		}
	}
}

// check runs c and checks its exit code and its stdout against the
// contract. It returns the objects printed.
func (c contractCase) check(t *testing.T, db *pgtest.DB) []map[string]any {
	t.Helper()
	args := append(append([]string{}, c.args...), "--json")
	if db != nil {
		args = append(args, dbFlag(db)...)
	}
	where := strings.Join(c.args, " ")
	out, errOut, code := cli(t, "", args...)
	if code != c.code {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", where, code, c.code, out, errOut)
		return nil
	}
	if code != 0 {
		if out != "" {
			t.Errorf("%s: exit %d and stdout %q; a failed command prints nothing there", where, code, out)
		}
		if errOut == "" {
			t.Errorf("%s: exit %d and nothing on stderr", where, code)
		}
		if strings.Contains(errOut, "hunter2") {
			t.Errorf("%s: the password is in the error: %s", where, errOut)
		}
		return nil
	}
	var objs []map[string]any
	for line := range strings.Lines(out) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("%s: stdout line is not one JSON object: %v\n%q", where, err, line)
			return nil
		}
		checkValue(t, where, "", m)
		objs = append(objs, m)
	}
	switch c.shape {
	case oneObject:
		if len(objs) != 1 {
			t.Errorf("%s: printed %d JSON objects, want exactly one:\n%s", where, len(objs), out)
		}
	case jsonLines:
		if len(objs) < c.lines {
			t.Errorf("%s: printed %d JSON lines, want at least %d:\n%s", where, len(objs), c.lines, out)
		}
	}
	return objs
}

func runContract(t *testing.T, db *pgtest.DB, cases []contractCase) {
	t.Helper()
	for _, c := range cases {
		c.check(t, db)
	}
}

func TestContractTenants(t *testing.T) {
	t.Parallel()
	db := setupDB(t, installed)
	const bad = "Not A Slug!"
	ok := func(shape shape, args ...string) contractCase { return contractCase{args: args, shape: shape} }
	notFound := func(args ...string) contractCase { return contractCase{args: args, code: exitError} }
	badInput := func(args ...string) contractCase { return contractCase{args: args, code: exitUsage} }
	archive := filepath.Join(t.TempDir(), "shop.landlord")
	runContract(t, db, []contractCase{
		ok(oneObject, "tenants", "create", "shop", "--model", "schema"),
		ok(oneObject, "tenants", "create", "corner", "--model", "row"),
		notFound("tenants", "create", "far-shop", "--model", "row", "--server", "nowhere"),
		badInput("tenants", "create", bad, "--model", "row"),
		badInput("tenants", "create", "other-shop", "--model", "table"),

		{args: []string{"tenants", "list"}, shape: jsonLines, lines: 2},
		ok(jsonLines, "tenants", "list", "--state", "suspended"), // empty: nothing
		notFound("tenants", "list", "--server", "nowhere"),
		badInput("tenants", "list", "--model", "table"),

		ok(oneObject, "tenants", "show", "shop"),
		notFound("tenants", "show", "no-such-shop"),
		badInput("tenants", "show", bad),

		ok(oneObject, "tenants", "suspend", "shop", "--reason", "contract"),
		notFound("tenants", "suspend", "no-such-shop", "--reason", "contract"),
		badInput("tenants", "suspend", bad, "--reason", "contract"),
		badInput("tenants", "suspend", "shop"),
		ok(oneObject, "tenants", "read-only", "shop", "--reason", "contract"),
		notFound("tenants", "read-only", "no-such-shop", "--reason", "contract"),
		badInput("tenants", "read-only", bad, "--reason", "contract"),
		ok(oneObject, "tenants", "resume", "shop", "--reason", "contract"),
		notFound("tenants", "resume", "no-such-shop", "--reason", "contract"),
		badInput("tenants", "resume", bad, "--reason", "contract"),

		ok(oneObject, "tenants", "reconcile"),
		badInput("tenants", "reconcile", "--reason", " "),

		{args: []string{"servers", "list"}, shape: jsonLines, lines: 1},

		ok(jsonLines, "reserve", "list"), // empty: nothing
		ok(oneObject, "reserve", "fill", "--model", "schema", "--count", "1"),
		{args: []string{"reserve", "list"}, shape: jsonLines, lines: 1},
		ok(oneObject, "reserve", "fill", "--model", "schema", "--count", "0"),
		badInput("reserve", "fill", "--model", "row", "--count", "1"),
		badInput("reserve", "fill", "--model", "schema"),

		ok(oneObject, "tenants", "export", "shop", "--output", archive),
		notFound("tenants", "export", "no-such-shop", "--output", archive+".2"),
		badInput("tenants", "export", bad),
		ok(oneObject, "tenants", "import", archive, "--check"),
		ok(oneObject, "tenants", "import", archive, "--slug", "shop-copy"),
		notFound("tenants", "import", archive, "--slug", "shop-copy"),
		badInput("tenants", "import", archive, "--slug", bad),
		badInput("tenants", "import", archive+".missing"),
		ok(oneObject, "tenants", "clone", "shop", "shop-twin"),
		notFound("tenants", "clone", "no-such-shop", "shop-two"),
		badInput("tenants", "clone", "shop", bad),

		ok(oneObject, "migrate", "status"),
		notFound("migrate", "status", "--tenant", "no-such-shop"),
		badInput("migrate", "status", "--tenant", bad),
		ok(oneObject, "migrate", "plan"),
		notFound("migrate", "plan", "--tenant", "no-such-shop"),
		badInput("migrate", "plan", "--tenant", bad),
		ok(oneObject, "migrate", "up"), // nothing to do: still one object, targets []
		notFound("migrate", "up", "--tenant", "no-such-shop"),
		badInput("migrate", "up", "--tenant", bad),
		badInput("migrate", "up", "--migrations", filepath.Join(t.TempDir(), "missing")),

		ok(oneObject, "tenants", "delete", "shop", "--yes"),
		notFound("tenants", "delete", "shop", "--yes"),
		badInput("tenants", "delete", bad, "--yes"),
	})
}

// TestContractNoInstallation: an installation that is not there fails the
// operation of every command but init, which makes it.
func TestContractNoInstallation(t *testing.T) {
	t.Parallel()
	db := setupDB(t, nil)
	var cases []contractCase
	for _, args := range [][]string{
		{"tenants", "list"}, {"tenants", "show", "shop"}, {"tenants", "suspend", "shop", "--reason", "contract"},
		{"tenants", "delete", "shop", "--yes"}, {"tenants", "reconcile"},
		{"servers", "list"}, {"reserve", "list"}, {"reserve", "fill", "--model", "schema", "--count", "1"},
		{"migrate", "status"}, {"migrate", "plan"}, {"migrate", "up"}, {"audit"},
	} {
		cases = append(cases, contractCase{args: args, code: exitError})
	}
	cases = append(cases,
		contractCase{args: []string{"init", "--migrations", filepath.Join(t.TempDir(), "missing")}, code: exitUsage},
		contractCase{args: []string{"init"}, shape: oneObject},
		contractCase{args: []string{"init"}, shape: oneObject}, // again: changes nothing, says the same
	)
	runContract(t, db, cases)
}

func TestContractAudit(t *testing.T) {
	t.Parallel()
	db := demoInstallation(t)
	runContract(t, db, []contractCase{
		{args: []string{"audit"}, shape: jsonLines}, // clean: nothing
		{args: []string{"audit", "--tenant", "demo-book-store"}, shape: jsonLines},
		{args: []string{"audit", "--tenant", "no-such-shop"}, code: exitError},
		{args: []string{"audit", "--tenant", "Not A Slug!"}, code: exitUsage},
		{args: []string{"audit", "--app-role", "Bad Role"}, code: exitUsage},
	})
}

// TestContractDatabaseURL: a URL that cannot be parsed is bad input for
// every command, one that does not answer is a failed operation; neither
// puts the password in the error.
func TestContractDatabaseURL(t *testing.T) {
	t.Parallel()
	const (
		malformed   = "postgres://u:hunter2@localhost:notaport/x"
		unreachable = "postgres://u:hunter2@nowhere.invalid:1/x?connect_timeout=1"
	)
	for _, args := range [][]string{
		{"init"}, {"tenants", "create", "shop", "--model", "row"}, {"tenants", "list"}, {"tenants", "show", "shop"},
		{"tenants", "delete", "shop", "--yes"}, {"tenants", "suspend", "shop", "--reason", "contract"},
		{"tenants", "resume", "shop", "--reason", "contract"}, {"tenants", "read-only", "shop", "--reason", "contract"},
		{"tenants", "reconcile"}, {"servers", "list"}, {"reserve", "list"},
		{"reserve", "fill", "--model", "schema", "--count", "1"},
		{"migrate", "status"}, {"migrate", "plan"}, {"migrate", "up"}, {"audit"},
	} {
		contractCase{args: append(append([]string{}, args...), "--database-url", malformed), code: exitUsage}.check(t, nil)
	}
	for _, args := range [][]string{{"tenants", "list"}, {"migrate", "status"}, {"audit"}} {
		contractCase{args: append(append([]string{}, args...), "--database-url", unreachable), code: exitError}.check(t, nil)
	}
}

// TestContractEditedMigration: a migration set whose applied file was edited
// is bad input for every command that opens the installation with it —
// those that apply or plan migrations, and those that only look — and
// nothing is changed.
func TestContractEditedMigration(t *testing.T) {
	t.Parallel()
	db := setupDB(t, nil)
	dir := migDir(t, 2)
	mustRun(t, append([]string{"init", "--migrations", dir}, dbFlag(db)...)...)
	edited := migDir(t, 2)
	if err := os.WriteFile(filepath.Join(edited, migFiles[1].name), []byte(migFiles[1].sql+"\n-- edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var cases []contractCase
	for _, args := range [][]string{
		{"tenants", "create", "shop", "--model", "row"}, {"tenants", "reconcile"},
		{"reserve", "fill", "--model", "schema", "--count", "1"},
		{"migrate", "plan"}, {"migrate", "up"}, {"init"},
		{"tenants", "list"}, {"reserve", "list"}, {"servers", "list"}, {"migrate", "status"},
	} {
		cases = append(cases, contractCase{args: append(append([]string{}, args...), "--migrations", edited), code: exitUsage})
	}
	runContract(t, db, cases)
	if ts := (contractCase{args: []string{"tenants", "list", "--migrations", dir}, shape: jsonLines}).check(t, db); len(ts) != 0 {
		t.Errorf("bad input created tenants: %v", ts)
	}
}
