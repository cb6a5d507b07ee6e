package directory

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// CopyKey names a database that holds a copy of the global tables.
type CopyKey struct {
	Server   string
	Database string
}

// GlobalCopies returns the version of the global data each copy was last
// brought to, as recorded by SetGlobalCopy.
func (d *Directory) GlobalCopies(ctx context.Context) (map[CopyKey]string, error) {
	rows, err := d.db.Query(ctx, `SELECT server_id, database_name, data_version FROM landlord.global_copies`)
	if err != nil {
		return nil, fmt.Errorf("read global copies: %w", err)
	}
	out := map[CopyKey]string{}
	var k CopyKey
	var v string
	if _, err := pgx.ForEachRow(rows, []any{&k.Server, &k.Database, &v}, func() error {
		out[k] = v
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read global copies: %w", err)
	}
	return out, nil
}

// SetGlobalCopy records that the copy in database on server holds global
// data version.
func (d *Directory) SetGlobalCopy(ctx context.Context, k CopyKey, version string) error {
	_, err := d.db.Exec(ctx, `INSERT INTO landlord.global_copies (server_id, database_name, data_version) VALUES ($1, $2, $3)
		ON CONFLICT (server_id, database_name) DO UPDATE SET data_version = EXCLUDED.data_version, synced_at = now()`,
		k.Server, k.Database, version)
	if err != nil {
		return fmt.Errorf("record global copy %s/%s: %w", k.Server, k.Database, err)
	}
	return nil
}

// ForgetGlobalCopies removes the records of the copies keys, so that the
// next sync reads those databases instead of trusting the record: for a
// database that was dropped or rebuilt.
func (d *Directory) ForgetGlobalCopies(ctx context.Context, keys ...CopyKey) error {
	if len(keys) == 0 {
		return nil
	}
	servers, dbs := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		servers[i], dbs[i] = k.Server, k.Database
	}
	_, err := d.db.Exec(ctx, `DELETE FROM landlord.global_copies c USING unnest($1::text[], $2::text[]) AS k(s, d)
		WHERE c.server_id = k.s AND c.database_name = k.d`, servers, dbs)
	if err != nil {
		return fmt.Errorf("forget global copies: %w", err)
	}
	return nil
}
