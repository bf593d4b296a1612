package sqlite

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// sqlStats is rowcodec.StatsQuery with SQLite's numbered parameters.
var sqlStats = rowcodec.StatsQuery(func(n int) string { return "?" + strconv.Itoa(n) })

// Stats counts deliveries by status, subscriptions by health and
// scheduled retries by due bucket across every tenant, in one statement
// on the read pool (one snapshot). Each count is read from an index
// (deliveries_status, subscriptions_state_failing, scheduled_retries_due;
// see rowcodec.StatsQuery), never from a scan of a table.
func (s *Store) Stats(ctx context.Context, now time.Time) (store.Stats, error) {
	counts := make([]int64, rowcodec.StatsCounts)
	dest := make([]any, len(counts))
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := s.read.QueryRowContext(ctx, sqlStats, rowcodec.StatsArgs(now)...).Scan(dest...); err != nil {
		return store.Stats{}, fmt.Errorf("sqlite: stats: %w", err)
	}
	st, err := rowcodec.StatsFrom(counts)
	if err != nil {
		return store.Stats{}, fmt.Errorf("sqlite: %w", err)
	}
	return st, nil
}
