package move

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/landlordhq/landlord/internal/changefeed"
	"github.com/landlordhq/landlord/internal/ident"
	"github.com/landlordhq/landlord/tenant"
)

// touched holds the keys of the rows that the catch-up of this run changed
// at the new placement, by source table: with the snapshot's copy checked
// as it went in (counts and digests of every table), comparing those rows
// and every table's count at the cutover checks the new placement whole,
// without reading the rows nobody changed.
type touched map[changefeed.TableName]*keySet

type keySet struct {
	table changefeed.Table
	keys  map[string][][]byte
}

// note records the keys txn changes.
func (tc touched) note(txn changefeed.Txn) {
	for _, c := range txn.Changes {
		ks := tc[c.Table.TableName()]
		if ks == nil {
			ks = &keySet{table: c.Table, keys: map[string][][]byte{}}
			tc[c.Table.TableName()] = ks
		}
		if c.New != nil {
			key := make([][]byte, len(c.Table.Key))
			for i, k := range c.Table.Key {
				for j, col := range c.Columns {
					if col == k {
						key[i] = c.New[j]
					}
				}
			}
			ks.add(key)
		}
		if c.OldKey != nil {
			ks.add(c.OldKey)
		}
	}
}

func (ks *keySet) add(key [][]byte) {
	parts := make([]string, len(key))
	for i, v := range key {
		parts[i] = string(v)
	}
	ks.keys[strings.Join(parts, "\x00")] = key
}

// fixedOutput makes values print alike on every server.
const fixedOutput = `SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL IntervalStyle = 'postgres'; SET LOCAL TimeZone = 'UTC';
SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'`

// compareTouched checks, in one snapshot on each side, every table's count
// of the tenant's rows and the rows at the touched keys.
func (r *run) compareTouched(ctx context.Context, srcConn, dstConn *pgx.Conn, tables []changefeed.Table) error {
	type side struct {
		conn *pgx.Conn
		t    tenant.Tenant
		out  []string
		err  error
	}
	sides := []*side{{conn: srcConn, t: r.m.From}, {conn: dstConn, t: r.m.To}}
	done := make(chan struct{}, len(sides))
	for _, s := range sides {
		go func() {
			defer func() { done <- struct{}{} }()
			s.err = pgx.BeginTxFunc(ctx, s.conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, fixedOutput); err != nil {
					return err
				}
				for _, tb := range tables {
					got, err := r.tableCheck(ctx, tx, s.t, tb)
					if err != nil {
						return err
					}
					s.out = append(s.out, got)
				}
				return nil
			})
		}()
	}
	for range sides {
		<-done
	}
	if err := errors.Join(sides[0].err, sides[1].err); err != nil {
		return fmt.Errorf("compare the placements: %w", err)
	}
	for i, tb := range tables {
		if a, b := sides[0].out[i], sides[1].out[i]; a != b {
			return fmt.Errorf("%w: table %s: %s at the source, %s at the new placement", ErrMismatch, tb.Name, a, b)
		}
	}
	return nil
}

// tableCheck is one table's count of the tenant's rows and the count and
// hash sum of its rows at the touched keys, at placement t.
func (r *run) tableCheck(ctx context.Context, tx pgx.Tx, t tenant.Tenant, tb changefeed.Table) (string, error) {
	name := ident.Quote(t.Schema, tb.Name)
	var rows int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+name+` WHERE tenant_id = $1`, t.ID).Scan(&rows); err != nil {
		return "", fmt.Errorf("count %s: %w", tb.Name, err)
	}
	ks := r.touched[tb.TableName()]
	if ks == nil || len(ks.keys) == 0 {
		return fmt.Sprintf("%d rows", rows), nil
	}
	// The columns in the source's order, the key columns' types.
	cols, err := collect(ctx, tx, `SELECT quote_ident(attname) FROM pg_attribute
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, name)
	if err != nil {
		return "", err
	}
	types, err := collect(ctx, tx, `SELECT format_type(a.atttypid, a.atttypmod) FROM unnest($2::text[]) WITH ORDINALITY k(name, n)
		JOIN pg_attribute a ON a.attrelid = $1::regclass AND a.attname = k.name ORDER BY k.n`, name, tb.Key)
	if err != nil || len(types) != len(tb.Key) {
		return "", fmt.Errorf("read the key of %s: %v", tb.Name, err)
	}
	args := []any{t.ID}
	unnest, casts, keyCols := make([]string, len(tb.Key)), make([]string, len(tb.Key)), make([]string, len(tb.Key))
	for i := range tb.Key {
		vals := make([]*string, 0, len(ks.keys))
		for _, key := range ks.keys {
			if key[i] == nil {
				vals = append(vals, nil)
				continue
			}
			v := string(key[i])
			vals = append(vals, &v)
		}
		args = append(args, vals)
		unnest[i] = fmt.Sprintf("$%d::text[]", i+2)
		casts[i] = fmt.Sprintf("u.c%d::%s", i, types[i])
		keyCols[i] = ident.Quote(tb.Key[i])
	}
	cnames := make([]string, len(tb.Key))
	for i := range cnames {
		cnames[i] = fmt.Sprintf("c%d", i)
	}
	sql := fmt.Sprintf(`SELECT count(*), coalesce(sum(hashtextextended(ROW(%s)::text, 0)::numeric), 0)::text FROM %s
		WHERE tenant_id = $1 AND (%s) IN (SELECT %s FROM unnest(%s) AS u(%s))`,
		strings.Join(cols, ", "), name, strings.Join(keyCols, ", "), strings.Join(casts, ", "), strings.Join(unnest, ", "), strings.Join(cnames, ", "))
	var n int64
	var sum string
	if err := tx.QueryRow(ctx, sql, args...).Scan(&n, &sum); err != nil {
		return "", fmt.Errorf("read the changed rows of %s: %w", tb.Name, err)
	}
	return fmt.Sprintf("%d rows, %d changed rows with sum %s", rows, n, sum), nil
}

func collect(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}
