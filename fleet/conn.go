package fleet

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
)

// connector opens administrator connections to the databases that hold
// targets outside the control database: tenant databases, the template
// database, other servers' shared schemas. It asks the provisioner for each
// server's settings once.
type connector struct {
	f    *Fleet
	mu   sync.Mutex
	base map[string]*pgx.ConnConfig // by server id
}

func newConnector(f *Fleet) *connector {
	return &connector{f: f, base: map[string]*pgx.ConnConfig{}}
}

// connect opens a connection to loc as the administrator. The caller closes
// it.
func (c *connector) connect(ctx context.Context, loc location) (*pgx.Conn, error) {
	c.mu.Lock()
	base, ok := c.base[loc.server]
	c.mu.Unlock()
	if !ok {
		cfg, err := c.f.prov.ConnConfig(ctx, loc.server, loc.database, "")
		if err != nil {
			return nil, err
		}
		base = cfg
		c.mu.Lock()
		c.base[loc.server] = base
		c.mu.Unlock()
	}
	cfg := base.Copy()
	cfg.Database = loc.database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// pgx's message names host, user and database but no password.
		return nil, fmt.Errorf("connect to database %s on server %s: %w", loc.database, loc.server, err)
	}
	return conn, nil
}
