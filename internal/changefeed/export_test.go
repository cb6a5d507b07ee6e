package changefeed

import "time"

// SetDropPause sets DropPublication's pause for a test and returns what
// restores it. Tests that call it must not run in parallel.
func SetDropPause(d time.Duration) (restore func()) {
	old := dropPause
	dropPause = d
	return func() { dropPause = old }
}
