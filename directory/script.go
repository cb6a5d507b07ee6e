package directory

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TemplateScript is one row of landlord.template_scripts: the DDL that
// clones the template schema at the migration set with hash SetHash.
type TemplateScript struct {
	SetHash string
	Version int    // the set's head
	Script  string // "" when the set cannot be cloned
	Note    string // why not, when Script is ""
}

// LoadTemplateScript returns the script stored for setHash on q; found is
// false when none is stored.
func LoadTemplateScript(ctx context.Context, q DBTX, setHash string) (s TemplateScript, found bool, err error) {
	var script *string
	err = q.QueryRow(ctx, `SELECT set_hash, version, script, note FROM landlord.template_scripts WHERE set_hash = $1`, setHash).
		Scan(&s.SetHash, &s.Version, &script, &s.Note)
	if errors.Is(err, pgx.ErrNoRows) {
		return TemplateScript{}, false, nil
	}
	if err != nil {
		return TemplateScript{}, false, fmt.Errorf("read template script: %w", err)
	}
	if script != nil {
		s.Script = *script
	}
	return s, true, nil
}

// SaveTemplateScript stores s, replacing what was stored for the same set.
func (d *Directory) SaveTemplateScript(ctx context.Context, s TemplateScript) error {
	var script any
	if s.Script != "" {
		script = s.Script
	}
	_, err := d.db.Exec(ctx, `INSERT INTO landlord.template_scripts (set_hash, version, script, note) VALUES ($1, $2, $3, $4)
		ON CONFLICT (set_hash) DO UPDATE SET version = EXCLUDED.version, script = EXCLUDED.script, note = EXCLUDED.note, created_at = now()`,
		s.SetHash, s.Version, script, s.Note)
	if err != nil {
		return fmt.Errorf("store template script: %w", err)
	}
	return nil
}
