package tenantjob_test

import (
	"os"
	"testing"

	"github.com/landlordhq/landlord/pgtest"
)

var srv *pgtest.Server

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &srv)) }
