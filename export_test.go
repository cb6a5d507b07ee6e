package landlord

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
)

// ScratchDatabase creates a fresh database on the test server for an
// example and returns an administrator's URL of it. Examples run after
// TestMain has started the server.
func ScratchDatabase(name string) string {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, server.AdminURL("postgres"))
	if err != nil {
		panic(err)
	}
	defer conn.Close(ctx)
	name = fmt.Sprintf("%s_%d", name, exampleSeq.Add(1))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		panic(err)
	}
	return server.AdminURL(name)
}

var exampleSeq atomic.Int64
