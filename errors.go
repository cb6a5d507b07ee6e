package landlord

import (
	"errors"

	"github.com/landlordhq/landlord/internal/traffic"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
)

// ErrNoTenant is returned by every Handle method called with a context that
// carries no tenant (see WithTenant). No SQL is sent. There is no default
// tenant. It is tenant.ErrNoTenant.
var ErrNoTenant = tenant.ErrNoTenant

// ErrUnsafeRole is returned by Open, and by a tenant connection as it is
// made, when the role that would run tenant traffic is a superuser, has
// BYPASSRLS, or owns (or may become the owner of) tenant tables: row-level
// security would not bind it (SECURITY.md, I01, I02).
var ErrUnsafeRole = traffic.ErrUnsafeRole

// ErrNoDatabaseURL is returned by Open for an empty database URL. The
// private server the landlord command starts without one is
// embedded.StartDefault; open srv.URL(embedded.ControlDatabase) with it.
var ErrNoDatabaseURL = errors.New("no database URL: give one, or start the embedded default with embedded.StartDefault and open srv.URL(embedded.ControlDatabase)")

// ErrNoReason is returned by Landlord.Admin when no reason is given.
var ErrNoReason = errors.New("admin scope needs a reason")

// ErrBatchTx is returned by Handle.SendBatch for a batch that begins a
// transaction (pgx.Batch.BeginTx); use Handle.BeginTx and Tx.SendBatch.
var ErrBatchTx = traffic.ErrBatchTx

// ErrResultFormats is returned, before anything is sent, by a Handle call
// outside a transaction whose arguments begin with pgx.QueryResultFormats
// or pgx.QueryResultFormatsByOID: a statement that goes in one round trip
// with its tenant context cannot take them. A pgx.QueryExecMode option is
// accepted and changes nothing: the handle decides how statements are
// sent. Inside a transaction (Handle.BeginTx) both work as in pgx.
var ErrResultFormats = traffic.ErrResultFormats

// ErrSessionState is returned, before anything is sent, for a statement that
// could leave session state on its server connection (a session-level SET,
// DISCARD, DECLARE ... WITH HOLD, LISTEN, PREPARE, set_config, a session
// advisory lock) when tenant traffic goes through a transaction-pooling
// connection pooler (Config.Pooler): the pooler would hand that state to
// another client's next transaction.
var ErrSessionState = traffic.ErrSessionState

// ErrStatementRefused is wrapped by the error a Handle, or a transaction
// begun by one, returns before anything is sent for a statement tenant
// traffic may not run: EXPLAIN, whose row estimates come from statistics
// over every tenant's rows (SECURITY.md, I32), and LOCK, which locks a
// whole table, every tenant's rows of it in the row model (I38). Run
// EXPLAIN on a connection of your own as the administrator; lock rows with
// SELECT ... FOR UPDATE.
var ErrStatementRefused = traffic.ErrStatementRefused

// ErrNoGlobal is returned by GlobalAdmin and SyncGlobal for an installation
// opened without global tables (Config.Global).
var ErrNoGlobal = provision.ErrNoGlobal

// ErrSyncFailed is wrapped by the error of SyncGlobal when some copies of
// the global tables could not be synced; the SyncReport says which and why.
var ErrSyncFailed = provision.ErrSyncFailed

// ErrGlobalRowInUse is wrapped by the error of a copy whose sync would
// delete a global row that one of its tenant's rows still references.
var ErrGlobalRowInUse = provision.ErrGlobalRowInUse
