package migration

import "time"

// SetBusyNotice sets how long a step waits for the target's lock before it
// logs, for a test, and returns what restores it. Tests that call it must
// not run in parallel.
func SetBusyNotice(d time.Duration) (restore func()) {
	old := busyNotice
	busyNotice = d
	return func() { busyNotice = old }
}
