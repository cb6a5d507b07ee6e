package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/pgtest"
)

var server *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &server)) }

// run executes the command line args and returns stdout, stderr and the
// exit code main would use.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRoot()
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := 0
	if err := root.ExecuteContext(context.Background()); err != nil {
		code = exitCode(err)
		stderr.WriteString(err.Error())
	}
	return stdout.String(), stderr.String(), code
}

func TestDemoWithDatabaseURL(t *testing.T) {
	t.Parallel()
	db := server.NewDB(t, nil)
	out, errOut, code := run(t, "demo", "--database-url", db.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "demo-big-market") || !strings.Contains(out, "refused") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"demo", "--no-such-flag"},
		{"demo", "extra-argument"},
	} {
		_, _, code := run(t, args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	// A bad URL is a failure of the operation, with a clear message and no
	// password in it.
	_, errOut, code := run(t, "demo", "--database-url", "postgres://u:hunter2@nowhere.invalid:1/x?connect_timeout=1")
	if code != exitError || strings.Contains(errOut, "hunter2") || errOut == "" {
		t.Errorf("unreachable database: exit %d, %q", code, errOut)
	}
}

func TestHelpHasExamples(t *testing.T) {
	t.Parallel()
	root := newRoot()
	for _, c := range root.Commands() {
		if c.Name() == "help" || c.Name() == "completion" {
			continue
		}
		if c.Example == "" {
			t.Errorf("command %q has no examples in its help", c.Name())
		}
	}
}
