package tenant_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/landlordhq/landlord/tenant"
)

func TestParseModel(t *testing.T) {
	t.Parallel()
	for _, m := range tenant.Models {
		got, err := tenant.ParseModel(string(m))
		if err != nil || got != m {
			t.Errorf("ParseModel(%q) = %q, %v", m, got, err)
		}
	}
	if want := []tenant.Model{"row", "schema", "database"}; fmt.Sprint(tenant.Models) != fmt.Sprint(want) {
		t.Errorf("Models = %v, want %v", tenant.Models, want)
	}
	for _, in := range []string{"", "Row", "ROW", "rows", " row", "row ", "schema\x00", "db", "shared", strings.Repeat("x", 1<<20)} {
		got, err := tenant.ParseModel(in)
		if err == nil {
			t.Errorf("ParseModel(%.40q) = %q, want an error", in, got)
			continue
		}
		if !errors.Is(err, tenant.ErrBadModel) {
			t.Errorf("ParseModel(%.40q) error %v does not wrap ErrBadModel", in, err)
		}
		if got != "" {
			t.Errorf("ParseModel(%.40q) returned %q along with an error", in, got)
		}
		if !strings.Contains(err.Error(), "row, schema or database") {
			t.Errorf("ParseModel(%.40q) error %q does not list the models", in, err)
		}
		if len(err.Error()) > maxErrLen {
			t.Errorf("ParseModel: error message is %d bytes", len(err.Error()))
		}
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	prev := tenant.NewID()
	seen := map[tenant.ID]bool{prev: true}
	for range 2000 {
		id := tenant.NewID()
		if id.IsZero() {
			t.Fatal("NewID returned the zero id")
		}
		if v := id[6] >> 4; v != 7 {
			t.Fatalf("NewID() = %s has version %d, want 7", id, v)
		}
		if id[8]&0xc0 != 0x80 {
			t.Fatalf("NewID() = %s does not have the RFC 4122 variant", id)
		}
		if seen[id] {
			t.Fatalf("NewID returned %s twice", id)
		}
		seen[id] = true
		// Time-ordered: later ids sort after earlier ones, as bytes and as text.
		if bytes.Compare(prev[:], id[:]) >= 0 || prev.String() >= id.String() {
			t.Fatalf("NewID: %s came after %s", id, prev)
		}
		prev = id
	}
}

func TestParseID(t *testing.T) {
	t.Parallel()
	id := tenant.NewID()
	s := id.String()
	if len(s) != 36 || s != strings.ToLower(s) || strings.Count(s, "-") != 4 {
		t.Fatalf("String() = %q, want the canonical lower-case hyphenated form", s)
	}
	forms := []string{
		s,
		strings.ToUpper(s),
		"{" + s + "}",
		"urn:uuid:" + s,
		strings.ReplaceAll(s, "-", ""),
	}
	for _, in := range forms {
		got, err := tenant.ParseID(in)
		if err != nil {
			t.Errorf("ParseID(%q): %v", in, err)
			continue
		}
		if got != id {
			t.Errorf("ParseID(%q) = %s, want %s", in, got, id)
		}
	}

	bad := []string{
		"",
		"not-a-uuid",
		s[:35],
		s + "0",
		strings.Replace(s, s[:1], "g", 1),
		"'; DROP TABLE tenants; --",
		s[:8] + "\x00" + s[9:],
		strings.Repeat("0", 1<<20),
	}
	for _, in := range bad {
		got, err := tenant.ParseID(in)
		if err == nil {
			t.Errorf("ParseID(%.40q) = %s, want an error", in, got)
			continue
		}
		if !errors.Is(err, tenant.ErrBadID) {
			t.Errorf("ParseID(%.40q) error %v does not wrap ErrBadID", in, err)
		}
		if !got.IsZero() {
			t.Errorf("ParseID(%.40q) returned %s along with an error", in, got)
		}
		if len(err.Error()) > maxErrLen {
			t.Errorf("ParseID: error message is %d bytes", len(err.Error()))
		}
	}
}

func TestIDText(t *testing.T) {
	t.Parallel()
	id := tenant.NewID()
	b, err := json.Marshal(struct{ ID tenant.ID }{id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"ID":"` + id.String() + `"}`; string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
	var back struct{ ID tenant.ID }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != id {
		t.Fatalf("json round trip: got %s, want %s", back.ID, id)
	}

	keep := id
	err = keep.UnmarshalText([]byte("x'; --"))
	if !errors.Is(err, tenant.ErrBadID) {
		t.Fatalf("UnmarshalText(junk) = %v, want ErrBadID", err)
	}
	if keep != id {
		t.Fatalf("UnmarshalText(junk) changed the id to %s", keep)
	}
	if err := json.Unmarshal([]byte(`{"ID":"nope"}`), &back); !errors.Is(err, tenant.ErrBadID) {
		t.Fatalf("json.Unmarshal(bad id) = %v, want ErrBadID", err)
	}
}

func TestIDNames(t *testing.T) {
	t.Parallel()
	ids := []tenant.ID{
		tenant.NewID(),
		{},
		{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		mustParseID(t, "00000000-0000-7000-8000-000000000001"),
	}
	for _, id := range ids {
		hex := strings.ReplaceAll(id.String(), "-", "")
		if id.Hex() != hex {
			t.Errorf("%s: Hex() = %q, want %q", id, id.Hex(), hex)
		}
		names := map[string]string{
			"SchemaName":   id.SchemaName(),
			"DatabaseName": id.DatabaseName(),
			"RoleName":     id.RoleName(),
		}
		for what, n := range names {
			if len(n) > tenant.MaxIdentLen {
				t.Errorf("%s: %s() = %q is %d bytes, over %d", id, what, n, len(n), tenant.MaxIdentLen)
			}
			if err := tenant.CheckIdent(n); err != nil {
				t.Errorf("%s: %s() = %q fails CheckIdent: %v", id, what, n, err)
			}
			if !strings.HasSuffix(n, hex) {
				t.Errorf("%s: %s() = %q does not carry the whole id", id, what, n)
			}
		}
		if want := "t_" + hex; id.SchemaName() != want {
			t.Errorf("SchemaName() = %q, want %q", id.SchemaName(), want)
		}
		if id.DatabaseName() != id.SchemaName() {
			t.Errorf("DatabaseName() = %q differs from SchemaName() = %q", id.DatabaseName(), id.SchemaName())
		}
		// A "$user" entry in search_path must never resolve to the schema.
		if id.RoleName() == id.SchemaName() {
			t.Errorf("RoleName() = SchemaName() = %q", id.RoleName())
		}
		if want := "r_" + hex; id.RoleName() != want {
			t.Errorf("RoleName() = %q, want %q", id.RoleName(), want)
		}
	}
	a, b := tenant.NewID(), tenant.NewID()
	if a.SchemaName() == b.SchemaName() || a.RoleName() == b.RoleName() {
		t.Error("two ids share a derived name")
	}
	if !(tenant.ID{}).IsZero() || a.IsZero() {
		t.Error("IsZero is wrong")
	}
}

func TestStateError(t *testing.T) {
	t.Parallel()
	sentinels := []error{tenant.ErrSuspended, tenant.ErrMoving, tenant.ErrNotReady}
	tests := []struct {
		state tenant.State
		want  error // nil: matches no sentinel
	}{
		{tenant.StateSuspended, tenant.ErrSuspended},
		{tenant.StateMoving, tenant.ErrMoving},
		{tenant.StateProvisioning, tenant.ErrNotReady},
		{tenant.StateDeleting, tenant.ErrNotReady},
		{tenant.StateActive, nil},
		{tenant.StateReadOnly, nil},
		{tenant.State("bogus"), nil},
	}
	id := tenant.NewID()
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			t.Parallel()
			var err error = &tenant.StateError{ID: id, State: tt.state}
			wrapped := fmt.Errorf("route request: %w", err)
			for _, e := range []error{err, wrapped} {
				for _, s := range sentinels {
					if got := errors.Is(e, s); got != (s == tt.want) {
						t.Errorf("errors.Is(%v, %v) = %v", e, s, got)
					}
				}
				for _, s := range []error{tenant.ErrNotFound, tenant.ErrBadID, tenant.ErrSlugTaken} {
					if errors.Is(e, s) {
						t.Errorf("errors.Is(%v, %v) = true", e, s)
					}
				}
			}
			var se *tenant.StateError
			if !errors.As(wrapped, &se) || se.ID != id || se.State != tt.state {
				t.Fatalf("errors.As: got %+v", se)
			}
			msg := err.Error()
			if !strings.Contains(msg, id.String()) || !strings.Contains(msg, string(tt.state)) {
				t.Errorf("Error() = %q, want the id and the state", msg)
			}
		})
	}
}

func mustParseID(t *testing.T, s string) tenant.ID {
	t.Helper()
	id, err := tenant.ParseID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
