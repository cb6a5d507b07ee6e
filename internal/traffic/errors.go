package traffic

import "errors"

// ErrStatementRefused is wrapped by the error returned, before anything is
// sent, for a statement that tenant traffic may not run: EXPLAIN, whose
// estimates come from statistics over every tenant's rows (SECURITY.md,
// I32), and LOCK, which locks whole tables (I38).
var ErrStatementRefused = errors.New("statement refused in tenant traffic")
