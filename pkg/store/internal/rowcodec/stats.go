package rowcodec

import (
	"fmt"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// StatsQuery is the statement of Store.Stats in both stores: one SELECT
// of scalar count(*) subqueries, one per count, in the order StatsCounts
// reads them, each answered from an index (both stores' schemas have
// them):
//
//   - deliveries by status: equality on the leading column of the
//     deliveries' status index (deliveries_status on SQLite,
//     deliveries_status_created on PostgreSQL and CockroachDB), so only
//     the counted statuses' entries are read, never the succeeded ones;
//   - subscriptions by health: the index on (state, failing_since)
//     (subscriptions_state_failing), which covers both conditions;
//   - scheduled retries by due bucket: ranges of the due-time index
//     (scheduled_retries_due), each bucket its own range.
//
// The statuses and states are literals (constants of the store package,
// so nothing a caller gives reaches the SQL text); the buckets' bounds are
// the parameters StatsArgs returns, written by param(n) for the n-th
// (1-based): "$n" for PostgreSQL, "?n" for SQLite.
func StatsQuery(param func(n int) string) string {
	var cols []string
	for _, st := range store.StatsDeliveryStatuses {
		cols = append(cols, fmt.Sprintf(`(SELECT count(*) FROM deliveries WHERE status = '%s')`, st))
	}
	for _, h := range store.SubscriptionHealths {
		var cond string
		switch h {
		case store.HealthHealthy:
			cond = fmt.Sprintf(`state = '%s' AND failing_since IS NULL`, store.SubscriptionEnabled)
		case store.HealthFailing:
			cond = fmt.Sprintf(`state = '%s' AND failing_since IS NOT NULL`, store.SubscriptionEnabled)
		case store.HealthDisabled:
			cond = fmt.Sprintf(`state = '%s'`, store.SubscriptionDisabled)
		default:
			panic(fmt.Sprintf("rowcodec: no condition for subscription health %q", h))
		}
		cols = append(cols, `(SELECT count(*) FROM subscriptions WHERE `+cond+`)`)
	}
	// Bucket i holds the due times in (bound i-1, bound i]: the first has
	// no lower bound, the last no upper one.
	for i := range store.RetryDueBuckets {
		var conds []string
		if i > 0 {
			conds = append(conds, `due_at > `+param(i))
		}
		if i < len(store.RetryDueBuckets)-1 {
			conds = append(conds, `due_at <= `+param(i+1))
		}
		cols = append(cols, `(SELECT count(*) FROM scheduled_retries WHERE `+strings.Join(conds, ` AND `)+`)`)
	}
	return "SELECT\n    " + strings.Join(cols, ",\n    ")
}

// StatsArgs are StatsQuery's parameters at now: the end of every due
// bucket but the last, in unix nanoseconds.
func StatsArgs(now time.Time) []any {
	var args []any
	for _, b := range store.RetryDueBuckets {
		if upTo, ok := b.UpTo(); ok {
			args = append(args, Nanos(now.Add(upTo)))
		}
	}
	return args
}

// StatsCounts is the number of columns StatsQuery returns.
var StatsCounts = len(store.StatsDeliveryStatuses) + len(store.SubscriptionHealths) + len(store.RetryDueBuckets)

// StatsFrom is the store.Stats of StatsQuery's columns, in their order.
func StatsFrom(counts []int64) (store.Stats, error) {
	if len(counts) != StatsCounts {
		return store.Stats{}, fmt.Errorf("stats: %d counts, want %d", len(counts), StatsCounts)
	}
	st := store.NewStats()
	i := 0
	for _, k := range store.StatsDeliveryStatuses {
		st.Deliveries[k] = counts[i]
		i++
	}
	for _, k := range store.SubscriptionHealths {
		st.Subscriptions[k] = counts[i]
		i++
	}
	for _, k := range store.RetryDueBuckets {
		st.ScheduledRetries[k] = counts[i]
		i++
	}
	return st, nil
}
