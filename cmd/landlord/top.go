package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/landlordhq/landlord/directory"
	"github.com/landlordhq/landlord/provision"
	"github.com/landlordhq/landlord/tenant"
	"github.com/landlordhq/landlord/tenantstats"
)

// topView is one tenant's line of tenants top in JSON output.
type topView struct {
	ID        tenant.ID `json:"id"`
	Slug      string    `json:"slug"`  // "" for the others and for a tenant deleted since
	Model     string    `json:"model"` // "" likewise
	Calls     int64     `json:"calls"`
	PerSecond float64   `json:"calls_per_second"`
	Errors    int64     `json:"errors"`
	MeanMS    float64   `json:"mean_ms"`
	P50MS     float64   `json:"p50_ms"`
	P99MS     float64   `json:"p99_ms"`
	WaitMS    float64   `json:"conn_wait_ms"` // mean wait for a connection, within the mean
}

func newTenantsTop(g *globals, migrationsDir *string) *cobra.Command {
	var window time.Duration
	var limit int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "List the busiest tenants of the last minutes: calls, errors, latency",
		Long: `top lists the tenants with the most calls over the last --window, as the handles
of every process of the installation measured them and wrote them to the
control database every few seconds (Config.TenantStatsInterval): calls, calls
per second, failed calls, mean, p50 and p99 call durations, and the mean time
a call waited for its connection (part of its duration). The
percentiles are upper bounds of power-of-two buckets, so at most twice the
true value. Tenants past the few hundred busiest of a process's write are
summed in one line, "(others)". Rows are kept for an hour. With --json, one
JSON object per line, busiest first.
` + helpMigrations + "\n" + helpExitCodes,
		Example: `  landlord tenants top
  landlord tenants top --window 1m --limit 5
  landlord tenants top --json | jq -r 'select(.errors > 0) | .slug'`,
		Args: args(cobra.NoArgs),
	}
	asJSON := addJSONFlag(cmd)
	cmd.Flags().DurationVar(&window, "window", 5*time.Minute, "how far back to sum, at most 1h")
	cmd.Flags().IntVar(&limit, "limit", 20, "how many tenants to list")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if window <= 0 || window > tenantstats.DefaultRetention {
			return usageError{fmt.Errorf("--window %s: want more than 0 and at most %s, the time rows are kept", window, tenantstats.DefaultRetention)}
		}
		if limit <= 0 {
			return usageError{fmt.Errorf("--limit %d: want at least 1", limit)}
		}
		o := newOutput(cmd, *asJSON)
		ctx := cmd.Context()
		return withInstallation(ctx, g, cmd.ErrOrStderr(), *migrationsDir, provision.InstallNever, func(in *installation) error {
			stats, err := in.ll.TenantStats(ctx, window, limit)
			if err != nil {
				return err
			}
			if len(stats) == 0 && !o.json {
				o.printf("No tenant calls recorded in the last %s.\n", window)
				return nil
			}
			ts, err := in.dir.List(ctx, directory.Filter{})
			if err != nil {
				return err
			}
			byID := make(map[tenant.ID]tenant.Tenant, len(ts))
			for _, t := range ts {
				byID[t.ID] = t
			}
			rows := make([][]string, len(stats))
			vs := make([]any, len(stats))
			for i, s := range stats {
				v := topView{ID: s.Tenant, Calls: s.Calls, PerSecond: round2(s.PerSecond), Errors: s.Errors,
					MeanMS: ms(s.Mean), P50MS: ms(s.P50), P99MS: ms(s.P99), WaitMS: ms(s.ConnWait)}
				name := s.Tenant.String()
				switch t, ok := byID[s.Tenant]; {
				case s.Tenant == tenantstats.Others:
					name = "(others)"
				case ok:
					v.Slug, v.Model, name = t.Slug, string(t.Model), t.Slug
				default:
					name += " (deleted)"
				}
				rows[i] = []string{name, v.Model, fmt.Sprint(v.Calls), fmt.Sprintf("%.2f", v.PerSecond), fmt.Sprint(v.Errors),
					durText(s.Mean), durText(s.P50), durText(s.P99), durText(s.ConnWait)}
				vs[i] = v
			}
			return o.lines([]string{"TENANT", "MODEL", "CALLS", "CALLS/S", "ERRORS", "MEAN", "P50", "P99", "CONN WAIT"}, rows, vs)
		})
	}
	return cmd
}

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// durText prints a duration in milliseconds with two decimals.
func durText(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}
