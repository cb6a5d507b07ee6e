package landlord

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/landlordhq/landlord/tenant"
)

func TestLogHandler(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))).With("app", "shop")
	id := tenant.NewID()
	log.InfoContext(WithTenant(context.Background(), id), "order placed")
	log.InfoContext(context.Background(), "no tenant")
	dec := json.NewDecoder(&buf)
	var first, second map[string]any
	must(t, dec.Decode(&first))
	must(t, dec.Decode(&second))
	if first["tenant"] != id.String() || first["app"] != "shop" {
		t.Errorf("record with a tenant: %v", first)
	}
	if _, ok := second["tenant"]; ok {
		t.Errorf("record without a tenant got one: %v", second)
	}
}
