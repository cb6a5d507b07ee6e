package bench

import (
	"math"
	"math/rand/v2"
)

// zipfS is the skew of the Zipf tenant choice: a few tenants get most of
// the traffic, as in a SaaS with many small and some big customers.
const zipfS = 1.1

// zipfPicker draws tenant indexes in [0, n) with P(k) proportional to
// (1+k)^-s: index 0 is the hottest tenant. It is not safe for concurrent
// use; every worker makes its own.
func zipfPicker(r *rand.Rand, n int) func() int {
	if n == 1 {
		return func() int { return 0 }
	}
	z := rand.NewZipf(r, zipfS, 1, uint64(n-1))
	return func() int { return int(z.Uint64()) }
}

// uniformPicker draws tenant indexes in [0, n) uniformly.
func uniformPicker(r *rand.Rand, n int) func() int {
	return func() int { return r.IntN(n) }
}

// bestHitRate is the share of Zipf traffic over n tenants that goes to the
// budget hottest ones: the hit rate of a connection cache that always holds
// exactly the right budget connections, which no real one beats.
func bestHitRate(n, budget int, s float64) float64 {
	if budget >= n {
		return 1
	}
	var top, all float64
	for k := range n {
		p := math.Pow(float64(1+k), -s)
		all += p
		if k < budget {
			top += p
		}
	}
	return top / all
}

// connectBound is the throughput bound of database-per-tenant traffic with
// a connection budget: cores / (query_cost + (1 - best_hit_rate) ×
// connect_cost). With each cost measured as the cores' time per operation at
// full load (cores / throughput of that operation alone), it is
// 1 / (1/queries_per_s + miss/connects_per_s).
func connectBound(queriesPerSec, connectsPerSec, bestHit float64) float64 {
	if queriesPerSec <= 0 || connectsPerSec <= 0 {
		return 0
	}
	return 1 / (1/queriesPerSec + (1-bestHit)/connectsPerSec)
}
