package traffic

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
)

// Statements of schema tenants are prepared per schema. PostgreSQL resolves
// table names when it parses a statement, and fixes its parameter and result
// types then; a statement parsed in one tenant's schema and run in another's
// is re-planned every time (the search path differs) and fails outright when
// the two schemas are at different migration versions ("cached plan must not
// change result type"). So each connection keeps its own statements per
// (schema, SQL), parsed inside the tenant's context, and never runs one
// tenant's statement for another (SECURITY.md, I19). Row and database tenants
// parse in the session's own search path, which is already theirs, and use
// pgx's statement cache.

// schemaStmtCap bounds the statements one connection keeps for schema
// tenants; the least recently used is deallocated to make room. Each costs
// the backend about 25 KB with its generic plan, so 2,048 are at most about
// 50 MB; the connection manager replaces a connection whose backend grows
// past its memory budget (pool.Config.ConnMemory). It holds one lookup for
// each of 1,000 schema tenants: at 512, uniform traffic over them missed
// half the time and prepared afresh.
const schemaStmtCap = 2048

const stmtCacheKey = "landlord.schemaStmts"

type stmtKey struct{ schema, sql string }

type schemaStmts struct {
	m   map[stmtKey]*list.Element // of *stmtEntry
	lru list.List                 // front = most recently used
}

type stmtEntry struct {
	k  stmtKey
	sd *pgconn.StatementDescription
}

// stmtsOf returns conn's cache, creating it on first use. A connection is
// used by one goroutine at a time, so the cache needs no lock.
func stmtsOf(pc *pgconn.PgConn) *schemaStmts {
	data := pc.CustomData()
	if s, ok := data[stmtCacheKey].(*schemaStmts); ok {
		return s
	}
	s := &schemaStmts{m: map[stmtKey]*list.Element{}}
	data[stmtCacheKey] = s
	return s
}

func (s *schemaStmts) get(k stmtKey) *pgconn.StatementDescription {
	if e, ok := s.m[k]; ok {
		s.lru.MoveToFront(e)
		return e.Value.(*stmtEntry).sd
	}
	return nil
}

// put records sd and returns the names of statements evicted to make room;
// the caller deallocates them on the server.
func (s *schemaStmts) put(k stmtKey, sd *pgconn.StatementDescription) (evicted []string) {
	s.m[k] = s.lru.PushFront(&stmtEntry{k: k, sd: sd})
	for s.lru.Len() > schemaStmtCap {
		old := s.lru.Remove(s.lru.Back()).(*stmtEntry)
		delete(s.m, old.k)
		evicted = append(evicted, old.sd.Name)
	}
	return evicted
}

// forget drops the statement for k, after the server reported it stale.
func (s *schemaStmts) forget(k stmtKey) {
	if e, ok := s.m[k]; ok {
		s.lru.Remove(e)
		delete(s.m, k)
	}
}

func stmtName(k stmtKey) string {
	h := sha256.Sum256([]byte(k.schema + "\x00" + k.sql))
	return "ll_" + hex.EncodeToString(h[:16])
}

// prepareInSchema prepares sql for r's schema on pc, parsed inside r's tenant
// context: one round trip that enters the context (transaction-locally, so
// nothing outlives it), parses and describes the statement, and deallocates
// what the cache evicts. inTx says the context is already set by the
// caller's transaction.
func prepareInSchema(ctx context.Context, pc *pgconn.PgConn, r *route, enterSD *pgconn.StatementDescription, sql string, inTx bool) (*pgconn.StatementDescription, error) {
	st := stmtsOf(pc)
	k := stmtKey{r.t.Schema, sql}
	if sd := st.get(k); sd != nil {
		return sd, nil
	}
	name := stmtName(k)
	p := pc.StartPipeline(ctx)
	if !inTx {
		p.SendQueryStatement(enterSD, r.enterParams().raw, nil, nil)
	}
	p.SendPrepare(name, sql, nil)
	if err := p.Sync(); err != nil {
		p.Close()
		return nil, err
	}
	var sd *pgconn.StatementDescription
	var firstErr error
	for {
		res, err := p.GetResults()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				continue // the server skips to the Sync; read on to it
			}
			break
		}
		switch v := res.(type) {
		case *pgconn.ResultReader:
			if _, err := v.Close(); err != nil && firstErr == nil {
				firstErr = err
			}
			continue
		case *pgconn.StatementDescription:
			// The pipeline leaves the name and text to the caller.
			v.Name, v.SQL = name, sql
			sd = v
			continue
		case *pgconn.PipelineSync:
		case nil:
		default:
			firstErr = fmt.Errorf("landlord: unexpected pipeline result %T", res)
		}
		break
	}
	if err := p.Close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return nil, firstErr
	}
	for _, old := range st.put(k, sd) {
		// Evicted statements go in a round trip of their own: rare, and
		// cheaper than keeping server memory for them.
		if err := pc.Deallocate(ctx, old); err != nil {
			return nil, err
		}
	}
	return sd, nil
}
