package delivery

import (
	"context"
	"fmt"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/wire"
)

// recordKind says what a record writes.
type recordKind uint8

const (
	recAttempt recordKind = iota // an attempt and what it leads to
	recPark                      // park a delivery without an attempt
	recDead                      // dead-letter a delivery without an attempt
	recDefer                     // put off an attempt through the store
)

// record is one write queued on the group-commit batcher.
type record struct {
	kind       recordKind
	result     store.AttemptResult  // recAttempt
	deliveryID string               // recPark, recDead
	reason     string               // recDead
	deferral   store.ScheduledRetry // recDefer
}

// due is when the record schedules an attempt (zero: it schedules none).
func (r *record) due() time.Time {
	switch {
	case r.kind == recDefer:
		return r.deferral.DueAt
	case r.kind == recAttempt && r.result.Status == store.DeliveryRetrying:
		return r.result.NextAttemptAt
	}
	return time.Time{}
}

// batchWrites are a batch's records grouped by the store call that writes
// them.
type batchWrites struct {
	results []store.AttemptResult
	parks   []string
	defers  []store.ScheduledRetry
	dead    map[string][]string // delivery ids by reason
}

func groupRecords(recs []record) batchWrites {
	var w batchWrites
	for i := range recs {
		switch r := &recs[i]; r.kind {
		case recAttempt:
			w.results = append(w.results, r.result)
		case recPark:
			w.parks = append(w.parks, r.deliveryID)
		case recDefer:
			w.defers = append(w.defers, r.deferral)
		case recDead:
			if w.dead == nil {
				w.dead = make(map[string][]string)
			}
			w.dead[r.reason] = append(w.dead[r.reason], r.deliveryID)
		}
	}
	return w
}

// flush writes a batch of records: attempts with their consequences in one
// RecordAttempts call (one transaction), parks in one ParkDeliveries call,
// put-off attempts in one ScheduleRetries call and dead letters in one
// MarkDead call per reason. A failed call fails only its own records. Then
// it tells the schedulers the earliest due time it wrote (see announceDue).
func (s *Service) flush(ctx context.Context, recs []record, errs []error) {
	w := groupRecords(recs)
	now := s.now()
	fail := func(kind recordKind, reason string, err error) {
		for i := range recs {
			if recs[i].kind == kind && (kind != recDead || recs[i].reason == reason) {
				errs[i] = err
			}
		}
	}
	if len(w.results) > 0 {
		if err := s.store.RecordAttempts(ctx, w.results); err != nil {
			s.log.Warn("recording attempts failed; deliveries will be retried", "count", len(w.results), "err", err)
			fail(recAttempt, "", fmt.Errorf("record attempts: %w", err))
			if s.breaker.failed(now, s.cfg.ErrorBackoff) {
				s.log.Warn("attempts held back until the store records them again (one probe per error backoff)", "backoff", s.cfg.ErrorBackoff)
			}
		} else {
			if s.breaker.recorded() {
				s.log.Info("the store records attempts again: attempts resume")
			}
			s.logExhausted(w.results)
		}
	}
	if len(w.parks) > 0 {
		if err := s.store.ParkDeliveries(ctx, w.parks, now); err != nil {
			s.log.Warn("parking deliveries failed", "count", len(w.parks), "err", err)
			fail(recPark, "", fmt.Errorf("park deliveries: %w", err))
		}
	}
	if len(w.defers) > 0 {
		if err := s.store.ScheduleRetries(ctx, w.defers); err != nil {
			s.log.Warn("putting off deliveries failed", "count", len(w.defers), "err", err)
			fail(recDefer, "", fmt.Errorf("put off deliveries: %w", err))
		}
	}
	for reason, ids := range w.dead {
		if err := s.store.MarkDead(ctx, ids, reason, now); err != nil {
			s.log.Warn("dead-lettering deliveries failed", "count", len(ids), "err", err)
			fail(recDead, reason, fmt.Errorf("mark dead: %w", err))
			continue
		}
		s.log.Info("deliveries dead-lettered", "count", len(ids), "reason", reason, "first_delivery_id", ids[0])
	}
	s.announceDue(ctx, recs, errs)
}

// logExhausted logs, once per batch, the deliveries a batch of attempts
// dead-lettered because their retry schedule ran out: a dead endpoint
// dead-letters thousands a second. Each one is listed by the admin API.
func (s *Service) logExhausted(results []store.AttemptResult) {
	n, first := 0, ""
	for i := range results {
		if results[i].Status == store.DeliveryDead {
			if n == 0 {
				first = results[i].Attempt.DeliveryID
			}
			n++
		}
	}
	if n > 0 {
		s.log.Info("deliveries dead-lettered", "count", n, "reason", "retry schedule exhausted", "first_delivery_id", first)
	}
}

// announceDue tells the schedulers the earliest due time this batch wrote
// durably (a retry, a put-off attempt), with one signal: a scheduler then
// releases it on time instead of at its next poll. The signal is best
// effort; the poll finds what a lost one announced.
func (s *Service) announceDue(ctx context.Context, recs []record, errs []error) {
	var earliest time.Time
	for i := range recs {
		if due := recs[i].due(); errs[i] == nil && !due.IsZero() && (earliest.IsZero() || due.Before(earliest)) {
			earliest = due
		}
	}
	if earliest.IsZero() {
		return
	}
	if err := s.tr.Notify(ctx, wire.TopicDue, wire.WakeSignal(earliest)); err != nil {
		s.log.Debug("announcing a due time failed; the scheduler's poll will find it", "err", err)
	}
}
