package bench

import "time"

// sizes are the data and durations of one mode (full or quick).
type sizes struct {
	quick     bool
	rounds    int
	roundTime time.Duration

	// The lookup cases: connections and goroutines of each side, rows per
	// tenant.
	conns, goroutines int
	rows              int

	rowTenants    int // row-lookup
	schemaLookups int // schema-lookup: schema tenants with rows

	catalogTenants int           // schema-catalog-memory: schema tenants of 10 tables
	catalogConns   int           // its pool
	catalogRun     time.Duration // how long its traffic runs
	catalogWindow  time.Duration // first and last window compared

	dbTenants   int           // database-zipf
	budget      int           // its connection budget
	wideBudget  int           // the same case with a larger budget
	zipfWorkers int           // goroutines of the database-zipf case
	failureRun  time.Duration // the naive and idle-timeout pools run this long

	mixedRow, mixedSchema, mixedDB int // mixed

	provisionN      int // tenants per model per provision round
	provisionRounds int
	claimN          int // claims per model per provision round

	fleetSchemas, fleetDBs int // fleet-migrate: targets per model
	fleetRounds            int
	statusTargets          int // fleet-status: schema tenants (the catalog case's, in a full run)
	statusRounds           int

	shopRow, shopSchema, shopDB int // storefront: stores per model
	shopProducts                int // storefront: products per store
}

func sizesFor(cfg Config) sizes {
	sz := sizes{
		rounds: 12, roundTime: time.Second,
		conns: 8, goroutines: 8, rows: 100,
		rowTenants: 1000, schemaLookups: 1000,
		catalogTenants: 10000, catalogConns: 20, catalogRun: 4 * time.Minute, catalogWindow: time.Minute,
		dbTenants: 2000, budget: 50, wideBudget: 200, zipfWorkers: 32, failureRun: 10 * time.Second,
		mixedRow: 1000, mixedSchema: 200, mixedDB: 50,
		provisionN: 20, provisionRounds: 4, claimN: 10,
		fleetSchemas: 1000, fleetDBs: 200, fleetRounds: 2,
		statusTargets: 10000, statusRounds: 10,
		shopRow: 800, shopSchema: 150, shopDB: 50, shopProducts: 20,
	}
	if cfg.Quick {
		sz = sizes{
			quick:  true,
			rounds: 6, roundTime: 500 * time.Millisecond,
			conns: 8, goroutines: 8, rows: 100,
			rowTenants: 200, schemaLookups: 100,
			catalogTenants: 500, catalogConns: 20, catalogRun: 12 * time.Second, catalogWindow: 6 * time.Second,
			dbTenants: 100, budget: 10, wideBudget: 100, zipfWorkers: 32, failureRun: 2 * time.Second,
			mixedRow: 200, mixedSchema: 50, mixedDB: 20,
			provisionN: 5, provisionRounds: 2, claimN: 3,
			fleetSchemas: 100, fleetDBs: 25, fleetRounds: 1,
			statusTargets: 500, statusRounds: 3,
			shopRow: 80, shopSchema: 15, shopDB: 5, shopProducts: 10,
		}
	}
	if cfg.Rounds > 0 {
		sz.rounds = cfg.Rounds
	}
	if cfg.RoundTime > 0 {
		sz.roundTime = cfg.RoundTime
	}
	return sz
}

// needs is the data a case needs. The cases share one installation, which
// grows before each case to what it needs.
type needs struct {
	rowTenants    int // row tenants, each with rows in shared.items
	schemaTenants int // schema tenants
	schemaRows    int // the first schemaRows schema tenants get rows
	dbTenants     int // database tenants
	dbRows        int // the first dbRows database tenants get rows
}
