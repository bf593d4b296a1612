package sqlite

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
)

// BenchmarkDeliveryIDOrder compares the store's write path (events,
// deliveries, attempts in batches of 50) with delivery ids that are pure
// hashes, as they once were, and with ids.Delivery's time-ordered ones.
// Random keys scatter every insert over the whole primary-key index.
func BenchmarkDeliveryIDOrder(b *testing.B) {
	for _, ordered := range []bool{false, true} {
		b.Run(map[bool]string{false: "random", true: "ordered"}[ordered], func(b *testing.B) {
			s, sub := benchStore(b)
			const batch = 50
			rows := 0
			now := time.Now()
			for b.Loop() {
				evs := make([]store.Event, batch)
				ds := make([]store.Delivery, batch)
				rs := make([]store.AttemptResult, batch)
				for i := range evs {
					now = now.Add(time.Microsecond)
					evs[i] = storetest.NewEvent("acme", "order.created", now)
					evs[i].ID = ids.NewEvent(now)
					evs[i].Payload = []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
					ds[i] = storetest.NewDelivery(evs[i], sub, now)
					ds[i].ID = ids.Delivery(evs[i].ID, sub.ID)
					if !ordered {
						sum := sha256.Sum256([]byte(ds[i].ID))
						ds[i].ID = ids.PrefixDelivery + hex.EncodeToString(sum[:16])
					}
					rs[i] = store.AttemptResult{Attempt: storetest.NewAttempt(ds[i], 1, now), Status: store.DeliverySucceeded}
				}
				if err := s.InsertFanout(b.Context(), evs, ds); err != nil {
					b.Fatal(err)
				}
				if err := s.RecordAttempts(b.Context(), rs); err != nil {
					b.Fatal(err)
				}
				rows += batch
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkConcurrentWritePath runs the store's write path (events,
// deliveries, attempts in batches of 10) from 16 goroutines at once, as
// the services of `hookline dev` do, so the writer combines their
// operations into shared transactions, one savepoint per operation.
func BenchmarkConcurrentWritePath(b *testing.B) {
	s, sub := benchStore(b)
	const batch = 10
	var rows atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]store.Event, batch)
		ds := make([]store.Delivery, batch)
		rs := make([]store.AttemptResult, batch)
		for pb.Next() {
			now := time.Now()
			for i := range evs {
				evs[i] = storetest.NewEvent("acme", "order.created", now)
				evs[i].ID = ids.NewEvent(now)
				evs[i].Payload = []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
				ds[i] = storetest.NewDelivery(evs[i], sub, now)
				ds[i].ID = ids.Delivery(evs[i].ID, sub.ID)
				rs[i] = store.AttemptResult{Attempt: storetest.NewAttempt(ds[i], 1, now), Status: store.DeliverySucceeded}
			}
			if err := s.InsertFanout(b.Context(), evs, ds); err != nil {
				b.Error(err)
				return
			}
			if err := s.RecordAttempts(b.Context(), rs); err != nil {
				b.Error(err)
				return
			}
			rows.Add(batch)
		}
	})
	b.ReportMetric(float64(rows.Load())/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkRetryPath runs the retry path of small batches, as the
// scheduler and delivery's put-off deliveries do: schedule 10 retries,
// claim them, complete them.
func BenchmarkRetryPath(b *testing.B) {
	s, sub := benchStore(b)
	const batch = 10
	now := time.Now()
	evs := make([]store.Event, batch)
	ds := make([]store.Delivery, batch)
	for i := range evs {
		evs[i] = storetest.NewEvent("acme", "order.created", now)
		evs[i].ID = ids.NewEvent(now.Add(time.Duration(i)))
		ds[i] = storetest.NewDelivery(evs[i], sub, now)
		ds[i].ID = ids.Delivery(evs[i].ID, sub.ID)
	}
	if err := s.InsertFanout(b.Context(), evs, ds); err != nil {
		b.Fatal(err)
	}
	rs := make([]store.ScheduledRetry, batch)
	rows := 0
	for b.Loop() {
		due := now.Add(time.Duration(rows))
		for i := range rs {
			rs[i] = store.ScheduledRetry{DeliveryID: ds[i].ID, Attempt: 1, DueAt: due}
		}
		if err := s.ScheduleRetries(b.Context(), rs); err != nil {
			b.Fatal(err)
		}
		claimed, err := s.ClaimDueRetries(b.Context(), due.Add(time.Second), batch, time.Minute)
		if err != nil || len(claimed) != batch {
			b.Fatalf("claimed %d of %d: %v", len(claimed), batch, err)
		}
		if err := s.CompleteRetries(b.Context(), rs); err != nil {
			b.Fatal(err)
		}
		rows += batch
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "retries/s")
}
