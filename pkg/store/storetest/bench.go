package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// BenchRecordAttempts measures RecordAttempts, the hot path of the delivery
// service, on the stores open returns (a fresh store each, with a
// subscription of tenant acme): batches of 1 and 100 results, each
// advancing its delivery. Most attempts succeed (outcome=succeeded);
// outcome=retrying also schedules each delivery's next attempt, and
// outcome=mixed has one result in ten retrying. It reports rows/s.
func BenchRecordAttempts(b *testing.B, open func(b *testing.B) (store.Store, *store.Subscription)) {
	for _, outcome := range []string{"succeeded", "mixed", "retrying"} {
		for _, batch := range []int{1, 100} {
			b.Run(fmt.Sprintf("outcome=%s/batch=%d", outcome, batch), func(b *testing.B) {
				s, sub := open(b)
				ctx := b.Context()
				const pool = 1000
				ds := make([]store.Delivery, pool)
				evs := make([]store.Event, pool)
				for i := range ds {
					evs[i] = NewEvent("acme", "order.created", Base)
					ds[i] = NewDelivery(evs[i], sub, Base)
				}
				if err := s.InsertFanout(ctx, evs, ds); err != nil {
					b.Fatal(err)
				}
				results := make([]store.AttemptResult, batch)
				rows := 0
				for b.Loop() {
					for j := range results {
						results[j] = benchResult(ds[rows%pool], rows/pool+1, rows, outcome)
						rows++
					}
					if err := s.RecordAttempts(ctx, results); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// benchResult is the result of attempt number of d, the row-th of the
// benchmark: a success, or (for outcome retrying, and one row in ten for
// outcome mixed) a failure whose next attempt is due in an hour.
func benchResult(d store.Delivery, number, row int, outcome string) store.AttemptResult {
	a := NewAttempt(d, number, Base.Add(time.Duration(row)))
	if outcome == "retrying" || (outcome == "mixed" && row%10 == 0) {
		return store.AttemptResult{Attempt: a, Status: store.DeliveryRetrying, NextAttemptAt: a.StartedAt.Add(time.Hour)}
	}
	a.StatusCode, a.ResponseBody = 200, []byte("ok")
	return store.AttemptResult{Attempt: a, Status: store.DeliverySucceeded}
}
