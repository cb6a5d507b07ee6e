package changefeed

import "errors"

// ErrNoSlot is returned, wrapped, by Resume when the database has no
// replication slot of the configured name: there is nothing to resume, and
// the move has to start over with Start.
var ErrNoSlot = errors.New("no replication slot")

// ErrSlotExists is returned, wrapped, by Start when a replication slot of
// the configured name exists already: a feed of that name was started
// before. Resume it, or Drop it and start again.
var ErrSlotExists = errors.New("replication slot exists already")

// ErrNoPrimaryKey is returned, wrapped, by Start and Resume for a table
// without a primary key: its rows could not be told apart on the target,
// and publishing its updates and deletes would make them fail on the
// source.
var ErrNoPrimaryKey = errors.New("table has no primary key")

// ErrTruncate is returned, wrapped, by CatchUp when a published table was
// truncated on the source. A truncate removes every tenant's rows at once
// and cannot be applied to one tenant's copy safely; the move has to start
// over. The transactions before it were applied and acknowledged.
var ErrTruncate = errors.New("a published table was truncated")

// ErrClosed is returned by the methods of a Feed after Close.
var ErrClosed = errors.New("feed is closed")
