package tenant

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Settings are a tenant's own bounds on its work, kept in the directory and
// applied by every handle of every process: the PostgreSQL settings in each
// of the tenant's transactions, set transaction-locally in the same round
// trip as its context, and a cap on the connections it holds at once. The
// zero value sets nothing: the server's settings and the handle's pool
// configuration apply.
//
// They bound the application's own work (a runaway report, a missing
// index), so that one tenant cannot hold the server's workers or memory
// for long. They are not a security boundary: SQL inside the tenant's
// transaction may SET its own statement_timeout, as it may under a role's
// settings; the connection cap is enforced by the handle and SQL cannot
// change it.
type Settings struct {
	// StatementTimeout is statement_timeout in the tenant's transactions.
	StatementTimeout time.Duration
	// LockTimeout is lock_timeout.
	LockTimeout time.Duration
	// IdleInTransactionTimeout is idle_in_transaction_session_timeout: a
	// transaction of the tenant left open and idle for longer ends with
	// its connection.
	IdleInTransactionTimeout time.Duration
	// WorkMem is work_mem in kilobytes: the memory one sort or hash of the
	// tenant's queries may take before it spills to disk.
	WorkMem int
	// MaxConns caps the connections the tenant holds at once on a server,
	// per process; calls beyond it wait for one of them. It only lowers the
	// handle's own cap (pool.Config.MaxConnsPerTenant).
	MaxConns int
}

// The names of the settings, as they are set (SettingNames lists them).
const (
	SettingStatementTimeout         = "statement_timeout"
	SettingLockTimeout              = "lock_timeout"
	SettingIdleInTransactionTimeout = "idle_in_transaction_session_timeout"
	SettingWorkMem                  = "work_mem"
	SettingMaxConns                 = "max_conns"
)

// SettingNames lists every setting's name in a stable order.
var SettingNames = []string{SettingStatementTimeout, SettingLockTimeout, SettingIdleInTransactionTimeout, SettingWorkMem, SettingMaxConns}

// ErrBadSetting is wrapped by errors about a setting's name or value.
var ErrBadSetting = errors.New("bad tenant setting")

// Limits of the values, as PostgreSQL takes them: timeouts in whole
// milliseconds up to its largest integer, work_mem from 64 kB.
const (
	maxTimeout  = math.MaxInt32 * time.Millisecond
	minWorkMem  = 64
	maxWorkMem  = math.MaxInt32
	maxMaxConns = 10_000
)

// With returns s with setting name set to value. An empty value or
// "default" unsets it. Timeouts are durations ("2s", "1m30s", "250ms"),
// whole milliseconds; work_mem is a size ("64MB", "4096kB", "1GB"; a bare
// number is kilobytes); max_conns a positive count.
func (s Settings) With(name, value string) (Settings, error) {
	value = strings.TrimSpace(value)
	unset := value == "" || value == "default"
	bad := func(why string) (Settings, error) {
		return s, fmt.Errorf("%s=%q: %s: %w", name, clip(value), why, ErrBadSetting)
	}
	switch name {
	case SettingStatementTimeout, SettingLockTimeout, SettingIdleInTransactionTimeout:
		var d time.Duration
		if !unset {
			var err error
			if d, err = time.ParseDuration(value); err != nil {
				return bad("want a duration such as 2s, 500ms or 1m")
			}
			switch {
			case d <= 0:
				return bad("want a positive duration (default unsets it)")
			case d%time.Millisecond != 0:
				return bad("want whole milliseconds")
			case d > maxTimeout:
				return bad("want at most " + maxTimeout.String())
			}
		}
		switch name {
		case SettingStatementTimeout:
			s.StatementTimeout = d
		case SettingLockTimeout:
			s.LockTimeout = d
		default:
			s.IdleInTransactionTimeout = d
		}
	case SettingWorkMem:
		kb := 0
		if !unset {
			n, err := parseKB(value)
			if err != nil {
				return bad(err.Error())
			}
			if n < minWorkMem || n > maxWorkMem {
				return bad(fmt.Sprintf("want %dkB to %s", minWorkMem, formatKB(maxWorkMem)))
			}
			kb = int(n)
		}
		s.WorkMem = kb
	case SettingMaxConns:
		n := 0
		if !unset {
			var err error
			if n, err = strconv.Atoi(value); err != nil || n < 1 || n > maxMaxConns {
				return bad(fmt.Sprintf("want a count from 1 to %d", maxMaxConns))
			}
		}
		s.MaxConns = n
	default:
		return s, fmt.Errorf("setting %q: %w: the settings are %s", clip(name), ErrBadSetting, strings.Join(SettingNames, ", "))
	}
	return s, nil
}

// ParseSettings returns the settings of the name=value pairs, in order,
// applied to s: "work_mem=64MB statement_timeout=2s".
func (s Settings) ParseSettings(pairs []string) (Settings, error) {
	for _, p := range pairs {
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			return s, fmt.Errorf("%q: want name=value: %w", clip(p), ErrBadSetting)
		}
		var err error
		if s, err = s.With(strings.TrimSpace(name), value); err != nil {
			return s, err
		}
	}
	return s, nil
}

// Map returns the settings that are set, by name, in the form With takes.
func (s Settings) Map() map[string]string {
	m := map[string]string{}
	dur := func(name string, d time.Duration) {
		if d > 0 {
			m[name] = d.String()
		}
	}
	dur(SettingStatementTimeout, s.StatementTimeout)
	dur(SettingLockTimeout, s.LockTimeout)
	dur(SettingIdleInTransactionTimeout, s.IdleInTransactionTimeout)
	if s.WorkMem > 0 {
		m[SettingWorkMem] = formatKB(s.WorkMem)
	}
	if s.MaxConns > 0 {
		m[SettingMaxConns] = strconv.Itoa(s.MaxConns)
	}
	return m
}

// SettingsFromMap is the inverse of Map.
func SettingsFromMap(m map[string]string) (Settings, error) {
	var s Settings
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		var err error
		if s, err = s.With(n, m[n]); err != nil {
			return Settings{}, err
		}
	}
	return s, nil
}

// MarshalJSON writes the settings that are set as an object of names and
// values, as Map returns them.
func (s Settings) MarshalJSON() ([]byte, error) { return json.Marshal(s.Map()) }

// UnmarshalJSON reads an object of names and values, refusing what
// SettingsFromMap refuses (an error wrapping ErrBadSetting).
func (s *Settings) UnmarshalJSON(b []byte) error {
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("%w: want an object of names and values: %v", ErrBadSetting, err)
	}
	v, err := SettingsFromMap(m)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// String lists the settings that are set as name=value, in SettingNames'
// order, or "none".
func (s Settings) String() string {
	m := s.Map()
	var out []string
	for _, n := range SettingNames {
		if v, ok := m[n]; ok {
			out = append(out, n+"="+v)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

// ServerSettings returns the PostgreSQL settings among s that are set, in
// SettingNames' order, with values in the server's units: what a
// transaction of the tenant sets.
func (s Settings) ServerSettings() (names, values []string) {
	ms := func(name string, d time.Duration) {
		if d > 0 {
			names, values = append(names, name), append(values, strconv.FormatInt(d.Milliseconds(), 10)+"ms")
		}
	}
	ms(SettingStatementTimeout, s.StatementTimeout)
	ms(SettingLockTimeout, s.LockTimeout)
	ms(SettingIdleInTransactionTimeout, s.IdleInTransactionTimeout)
	if s.WorkMem > 0 {
		names, values = append(names, SettingWorkMem), append(values, strconv.Itoa(s.WorkMem)+"kB")
	}
	return names, values
}

// parseKB parses a size in kilobytes: a number with kB, MB or GB (any
// case), or a bare number of kilobytes.
func parseKB(v string) (int64, error) {
	num, mult := v, int64(1)
	low := strings.ToLower(v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"kb", 1}, {"mb", 1024}, {"gb", 1024 * 1024}} {
		if strings.HasSuffix(low, u.suffix) {
			num, mult = strings.TrimSpace(v[:len(v)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("want a size such as 64MB, 4096kB or 1GB")
	}
	if n > maxWorkMem/mult {
		return maxWorkMem + 1, nil // out of range, said by the caller
	}
	return n * mult, nil
}

// formatKB writes kb in the largest unit that divides it.
func formatKB(kb int) string {
	switch {
	case kb%(1024*1024) == 0:
		return strconv.Itoa(kb/(1024*1024)) + "GB"
	case kb%1024 == 0:
		return strconv.Itoa(kb/1024) + "MB"
	}
	return strconv.Itoa(kb) + "kB"
}
