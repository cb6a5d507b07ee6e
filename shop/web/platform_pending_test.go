package web

import (
	"testing"

	"github.com/landlordhq/landlord"
	"github.com/landlordhq/landlord/shop/store"
)

func setupPlatform(t *testing.T, ll *landlord.Landlord, st *store.Service, cfg *Config) {}
