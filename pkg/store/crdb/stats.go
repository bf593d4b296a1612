package crdb

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// sqlStats is rowcodec.StatsQuery with PostgreSQL's parameters.
var sqlStats = rowcodec.StatsQuery(func(n int) string { return "$" + strconv.Itoa(n) + "::INT8" })

// Stats counts deliveries by status, subscriptions by health and
// scheduled retries by due bucket across every tenant, in one statement
// (one round trip, one snapshot). Each count reads a range of an index
// (deliveries_status_created, subscriptions_state_failing,
// scheduled_retries_due; see rowcodec.StatsQuery), never a whole table:
// on CockroachDB the hash-sharded indexes are read as one span per shard,
// the shard column being constrained by its check constraint.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	counts := make([]int64, rowcodec.StatsCounts)
	dest := make([]any, len(counts))
	for i := range counts {
		dest[i] = &counts[i]
	}
	err := s.run(ctx, "stats", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, sqlStats, rowcodec.StatsArgs(now)...).Scan(dest...)
	})
	if err != nil {
		return store.Stats{}, err
	}
	st, err := rowcodec.StatsFrom(counts)
	if err != nil {
		return store.Stats{}, fmt.Errorf("crdb: %w", err)
	}
	return st, nil
}
