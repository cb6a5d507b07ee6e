package tenant

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestSettingsWith(t *testing.T) {
	ok := []struct {
		pairs []string
		want  Settings
		str   string
	}{
		{nil, Settings{}, "none"},
		{[]string{"statement_timeout=2s"}, Settings{StatementTimeout: 2 * time.Second}, "statement_timeout=2s"},
		{[]string{"lock_timeout=250ms", "idle_in_transaction_session_timeout=1m30s"},
			Settings{LockTimeout: 250 * time.Millisecond, IdleInTransactionTimeout: 90 * time.Second},
			"lock_timeout=250ms idle_in_transaction_session_timeout=1m30s"},
		{[]string{"work_mem=64MB"}, Settings{WorkMem: 64 * 1024}, "work_mem=64MB"},
		{[]string{"work_mem=4096kB"}, Settings{WorkMem: 4096}, "work_mem=4MB"},
		{[]string{"work_mem=1gb"}, Settings{WorkMem: 1024 * 1024}, "work_mem=1GB"},
		{[]string{"work_mem=100"}, Settings{WorkMem: 100}, "work_mem=100kB"},
		{[]string{"max_conns=2"}, Settings{MaxConns: 2}, "max_conns=2"},
		{[]string{"max_conns=2", "max_conns=default"}, Settings{}, "none"},
		{[]string{"statement_timeout=2s", "statement_timeout="}, Settings{}, "none"},
		{[]string{" work_mem = 1MB "}, Settings{WorkMem: 1024}, "work_mem=1MB"},
	}
	for _, c := range ok {
		got, err := Settings{}.ParseSettings(c.pairs)
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.pairs, got, err, c.want)
			continue
		}
		if got.String() != c.str {
			t.Errorf("%q: String() = %q, want %q", c.pairs, got.String(), c.str)
		}
		back, err := SettingsFromMap(got.Map())
		if err != nil || back != got {
			t.Errorf("%q: through Map: %+v, %v", c.pairs, back, err)
		}
	}

	bad := []string{
		"statement_timeout", // no value
		"nope=1",
		"search_path=public",
		"statement_timeout=2",
		"statement_timeout=-1s",
		"statement_timeout=0s",
		"statement_timeout=1500us",
		"statement_timeout=1000h",
		"work_mem=32kB",
		"work_mem=3TB",
		"work_mem=9999999GB",
		"work_mem=-1MB",
		"work_mem=lots",
		"max_conns=0",
		"max_conns=many",
		"max_conns=100000",
	}
	for _, p := range bad {
		s := Settings{MaxConns: 3}
		got, err := s.ParseSettings([]string{p})
		if !errors.Is(err, ErrBadSetting) {
			t.Errorf("%q: %v, want ErrBadSetting", p, err)
		}
		if got != s {
			t.Errorf("%q: changed the settings to %+v", p, got)
		}
	}
	if _, err := SettingsFromMap(map[string]string{"work_mem": "1MB", "nope": "1"}); !errors.Is(err, ErrBadSetting) {
		t.Errorf("SettingsFromMap with an unknown name: %v", err)
	}
}

func TestServerSettings(t *testing.T) {
	s := Settings{StatementTimeout: 1500 * time.Millisecond, WorkMem: 2048, MaxConns: 4, IdleInTransactionTimeout: time.Minute}
	names, values := s.ServerSettings()
	if want := []string{"statement_timeout", "idle_in_transaction_session_timeout", "work_mem"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	if want := []string{"1500ms", "60000ms", "2048kB"}; !slices.Equal(values, want) {
		t.Errorf("values %q, want %q", values, want)
	}
	if n, v := (Settings{MaxConns: 2}).ServerSettings(); n != nil || v != nil {
		t.Errorf("max_conns alone sets %q %q on the server", n, v)
	}
}

func TestSettingsJSON(t *testing.T) {
	s := Settings{StatementTimeout: 1500 * time.Millisecond, WorkMem: 65536, MaxConns: 2}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"max_conns":"2","statement_timeout":"1.5s","work_mem":"64MB"}`; string(b) != want {
		t.Errorf("json %s, want %s", b, want)
	}
	var back Settings
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("round trip: %v, %v", back, err)
	}
	for _, bad := range []string{`{"work_mem":"1kB"}`, `{"colour":"red"}`, `[1]`, `{"max_conns":3}`} {
		var got Settings
		if err := json.Unmarshal([]byte(bad), &got); !errors.Is(err, ErrBadSetting) {
			t.Errorf("%s: %v, want ErrBadSetting", bad, err)
		}
	}
}
