// Package scheduler is Hookline's scheduler service: it turns failed
// attempts into durable due times and releases them back to the delivery
// service when they are due.
//
// It consumes the RETRIES stream (format documented in package delivery):
// for each failed attempt it looks up the subscription's retry schedule
// (or the default), and either stores the next attempt's due time
// (store.ScheduleRetries) or, when the schedule is exhausted or the
// subscription is gone, dead-letters the delivery. Writes are group
// committed and a RETRIES message is acknowledged only once its write is
// durable.
//
// Every PollInterval, and at the due time of each retry it scheduled
// itself, it redrives parked deliveries of enabled subscriptions
// (store.RedriveParked, on the polls) and claims due retries under a lease
// (store.ClaimDueRetries), publishes them to DELIVERIES in one call,
// and completes them (store.CompleteRetries), looping at once while full
// batches come back. Due times live in the store, so they survive
// restarts; the claim lease makes any number of replicas safe, and a
// replica that dies after claiming only delays its retries by the lease.
// A released retry's message ID is ids.AttemptMessage(delivery, attempt)
// + ".r" + the due time in base-36 Unix nanoseconds, so a retry published
// twice (lease expired mid-publish) deduplicates in the broker, while a
// later re-scheduling of the same attempt number (a redrive, an operator's
// redelivery) is a new message.
//
// Every RetentionInterval it purges rows older than Retention
// (store.Purge) in batches.
package scheduler

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/retry"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/settle"
	"github.com/hookline/hookline/services/internal/subcache"
)

// Group is the consumer group of the scheduler on RETRIES.
const Group = "scheduler"

// Deps are the service's collaborators (see deps.Deps); Store and
// Transport are required.
type Deps = deps.Deps

// Service schedules retries; create it with New and start it with Run.
type Service struct {
	cfg      Config
	deps     Deps
	store    store.Store
	tr       transport.Transport
	log      *slog.Logger
	cache    *subcache.Cache
	ownCache bool

	started atomic.Bool
	bg      context.Context
	batch   *groupcommit.Batcher[write]

	// dues holds the due times of retries this replica scheduled and has
	// not yet released (at most maxTrackedDues; the polls find the rest);
	// wake tells the release loop the earliest one moved.
	dueMu sync.Mutex
	dues  dueHeap
	wake  chan struct{}

	// The current yield episode (see deliveryBusy), owned by the release
	// loop: when it started (zero: none) and the largest backlog seen.
	yieldStart time.Time
	yieldPeak  int64
}

// maxTrackedDues bounds the due times a replica keeps in memory.
const maxTrackedDues = 4096

// minReleaseGap is the least time between two releases triggered by due
// times (polls aside): how late a tracked retry can be released.
const minReleaseGap = 20 * time.Millisecond

// dueHeap is a min-heap of due times.
type dueHeap []time.Time

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].Before(h[j]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(time.Time)) }
func (h *dueHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

// New validates cfg and builds the service. It starts no goroutines.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scheduler: invalid config: %w", err)
	}
	if err := d.Check("scheduler"); err != nil {
		return nil, err
	}
	d.WarnIfOutlastsDedup("scheduler-claim-lease", cfg.ClaimLease)
	s := &Service{cfg: cfg, deps: d, store: d.Store, tr: d.Transport, log: d.Logger, wake: make(chan struct{}, 1)}
	s.cache, s.ownCache = d.Cache(cfg.SubscriptionRefresh)
	return s, nil
}

// Ready reports whether the store and the broker answer.
func (s *Service) Ready(ctx context.Context) error { return s.deps.Ready(ctx) }

// Run consumes RETRIES and runs the release, redrive and retention loops
// until ctx is cancelled; then it stops consuming, lets the current
// release batch finish, writes pending schedules and returns nil. Run may
// be called once.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called more than once")
	}
	s.bg = context.WithoutCancel(ctx)
	s.batch = groupcommit.New(groupcommit.Config{
		MaxItems: s.cfg.BatchSize,
		Linger:   s.cfg.BatchLinger,
		Timeout:  30 * time.Second,
	}, s.flush)
	defer s.batch.Close()

	loops, stopLoops := context.WithCancel(ctx)
	defer stopLoops()
	var wg sync.WaitGroup
	if s.ownCache {
		wg.Go(func() { _ = s.cache.Run(loops) })
	}
	wg.Go(func() { s.releaseLoop(loops) })
	if s.cfg.Retention > 0 {
		wg.Go(func() { s.retentionLoop(loops) })
	}
	s.log.Info("scheduler consuming", "concurrency", s.cfg.Concurrency)
	err := s.tr.Consume(ctx, transport.Retries, transport.ConsumerConfig{
		Group:         Group,
		Concurrency:   s.cfg.Concurrency,
		AckWait:       s.cfg.AckWait,
		MaxAckPending: s.cfg.MaxAckPending,
	}, s.handle)
	if err != nil {
		err = fmt.Errorf("scheduler: consume %s: %w", transport.Retries, err)
	}
	// Consume returns on cancellation, or at once when setup failed: stop
	// the loops either way.
	stopLoops()
	wg.Wait()
	if err != nil {
		return err
	}
	s.log.Info("scheduler stopped")
	return nil
}

// write is one store write queued on the batcher: a retry to schedule, or
// a delivery to dead-letter with a reason.
type write struct {
	retry      store.ScheduledRetry
	deadReason string // non-empty: dead-letter retry.DeliveryID
}

// flush writes one ScheduleRetries call and one MarkDead call per reason.
func (s *Service) flush(ctx context.Context, ws []write, errs []error) {
	now := time.Now()
	var (
		rs   []store.ScheduledRetry
		dead map[string][]string
	)
	for _, w := range ws {
		if w.deadReason == "" {
			rs = append(rs, w.retry)
			continue
		}
		if dead == nil {
			dead = make(map[string][]string)
		}
		dead[w.deadReason] = append(dead[w.deadReason], w.retry.DeliveryID)
	}
	if len(rs) > 0 {
		if err := s.store.ScheduleRetries(ctx, rs); err != nil {
			s.log.Warn("scheduling retries failed; requests will be redelivered", "count", len(rs), "err", err)
			err = fmt.Errorf("schedule retries: %w", err)
			for i, w := range ws {
				if w.deadReason == "" {
					errs[i] = err
				}
			}
		} else {
			s.track(rs)
		}
	}
	for reason, ids := range dead {
		if err := s.store.MarkDead(ctx, ids, reason, now); err != nil {
			s.log.Warn("dead-lettering deliveries failed", "count", len(ids), "err", err)
			err = fmt.Errorf("mark dead: %w", err)
			for i, w := range ws {
				if w.deadReason == reason {
					errs[i] = err
				}
			}
			continue
		}
		// One line per batch and reason, not per delivery: a dead endpoint
		// dead-letters thousands a second. Each one is logged at debug level
		// and listed by the admin API.
		s.log.Info("deliveries dead-lettered", "count", len(ids), "reason", reason, "first_delivery_id", ids[0])
	}
}

// handle schedules the retry asked for by one RETRIES message.
func (s *Service) handle(_ context.Context, msg transport.Received) {
	m := msg.Message()
	r, err := delivery.ParseRetryMessage(m)
	if err != nil {
		if r.DeliveryID == "" {
			s.log.Error("dropping retry message without a delivery id", "msg_id", m.ID, "err", err)
			settle.Ack(s.log, msg)
			return
		}
		s.log.Warn("dead-lettering delivery with a malformed retry message", "delivery_id", r.DeliveryID, "err", err)
		settle.Commit(s.log, s.batch, msg, write{retry: store.ScheduledRetry{DeliveryID: r.DeliveryID}, deadReason: "malformed retry message: " + err.Error()}, s.cfg.ErrorBackoff)
		return
	}
	sub, err := s.cache.Get(s.bg, r.SubscriptionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		settle.Commit(s.log, s.batch, msg, write{retry: store.ScheduledRetry{DeliveryID: r.DeliveryID}, deadReason: delivery.ReasonSubscriptionDeleted}, s.cfg.ErrorBackoff)
		return
	case err != nil:
		s.log.Warn("loading subscription failed", "subscription_id", r.SubscriptionID, "err", err)
		settle.Nak(s.log, msg, s.cfg.ErrorBackoff)
		return
	}
	schedule := sub.RetrySchedule
	if schedule == nil {
		schedule = s.cfg.DefaultSchedule
	}
	delay, ok := retry.Delay(schedule, r.FailedAttempt, r.RetryAfter, s.cfg.Jitter, rand.Float64)
	if !ok {
		reason := fmt.Sprintf("retry schedule exhausted after %d attempts", r.FailedAttempt)
		if settle.Commit(s.log, s.batch, msg, write{retry: store.ScheduledRetry{DeliveryID: r.DeliveryID}, deadReason: reason}, s.cfg.ErrorBackoff) {
			s.log.Debug("delivery dead-lettered", "delivery_id", r.DeliveryID, "subscription_id", r.SubscriptionID,
				"tenant", sub.Tenant, "reason", reason)
		}
		return
	}
	settle.Commit(s.log, s.batch, msg, write{retry: store.ScheduledRetry{
		DeliveryID: r.DeliveryID,
		Attempt:    r.FailedAttempt + 1,
		DueAt:      time.Now().Add(delay),
	}}, s.cfg.ErrorBackoff)
}

// track remembers the due times of rs for the release loop.
func (s *Service) track(rs []store.ScheduledRetry) {
	s.dueMu.Lock()
	var before time.Time
	if len(s.dues) > 0 {
		before = s.dues[0]
	}
	for _, r := range rs {
		if len(s.dues) < maxTrackedDues {
			heap.Push(&s.dues, r.DueAt)
		}
	}
	moved := len(s.dues) > 0 && (before.IsZero() || s.dues[0].Before(before))
	s.dueMu.Unlock()
	if moved {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// popDue drops the tracked due times at or before now and reports whether
// there were any.
func (s *Service) popDue(now time.Time) bool {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	due := false
	for len(s.dues) > 0 && !now.Before(s.dues[0]) {
		heap.Pop(&s.dues)
		due = true
	}
	return due
}

// nextDue returns the earliest tracked due time (zero: none).
func (s *Service) nextDue() time.Time {
	s.dueMu.Lock()
	defer s.dueMu.Unlock()
	if len(s.dues) == 0 {
		return time.Time{}
	}
	return s.dues[0]
}

// releaseLoop redrives parked deliveries and releases due retries every
// PollInterval, and also at the due time of each retry this replica
// scheduled, so that a short retry delay is not stretched to the poll
// interval (retries that other replicas or services stored are found by
// the polls). It returns when ctx ends.
func (s *Service) releaseLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextPoll time.Time // zero: poll at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.wake:
		}
		now := time.Now()
		due := s.popDue(now)
		poll := !now.Before(nextPoll)
		if poll {
			s.redrive(ctx)
			nextPoll = now.Add(s.cfg.PollInterval)
		}
		yielded := false
		if poll || due || !s.yieldStart.IsZero() {
			yielded = s.release(ctx)
		}
		next := nextPoll
		if yielded {
			// Retries were held back for first attempts: look again soon.
			if soon := now.Add(yieldRecheck); soon.Before(next) {
				next = soon
			}
		}
		if tracked := s.nextDue(); !tracked.IsZero() && tracked.Before(next) {
			// Due-time releases are at least minReleaseGap apart, so that a
			// flood of retries (an endpoint's backlog coming back) is
			// released in batches rather than a claim per due time.
			next = tracked
			if gap := now.Add(minReleaseGap); next.Before(gap) {
				next = gap
			}
		}
		timer.Reset(max(time.Until(next), 0))
	}
}

// redrive turns parked deliveries of enabled subscriptions into retries
// due now (released by the next release).
func (s *Service) redrive(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := s.store.RedriveParked(ctx, time.Now(), s.cfg.RedriveLimit)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("redriving parked deliveries failed", "err", err)
			}
			return
		}
		if n > 0 {
			s.log.Info("redrove parked deliveries", "count", n)
		}
		if n < s.cfg.RedriveLimit {
			return
		}
	}
}

// releaseDepth is how many claimed batches may be on their way (publish,
// then complete) while the next one is claimed. Claiming, publishing and
// completing one batch after the other left the store and the broker
// waiting on each other; overlapped, the next claim and the previous
// batch's completion share a store transaction where the store combines
// writes.
const releaseDepth = 2

// release claims due retries batch after batch, until a batch is not
// full, ctx ends, or something fails (the lease then returns the failed
// batch to the pool). Each claimed batch is published and completed in
// the background, at most releaseDepth at a time; release returns once
// every batch it claimed is published and completed (or failed), so the
// next round claims only after this one's completions are written.
//
// Before each claim it asks the broker how many DELIVERIES messages wait
// for the delivery service; above YieldBacklog, only retries overdue by
// MaxYield are claimed, so that while delivery is saturated first attempts
// go first and a failing endpoint's retries take what capacity is left.
// It reports whether it held retries back that way.
func (s *Service) release(ctx context.Context) (yielded bool) {
	slots := make(chan struct{}, releaseDepth)
	var (
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	for ctx.Err() == nil && !failed.Load() {
		slots <- struct{}{}
		cutoff := time.Now()
		if s.deliveryBusy(ctx, cutoff) {
			yielded = true
			cutoff = cutoff.Add(-s.cfg.MaxYield)
		}
		bctx, cancel := context.WithTimeout(s.bg, s.cfg.ClaimLease)
		due, err := s.store.ClaimDueRetries(bctx, cutoff, s.cfg.ClaimLimit, s.cfg.ClaimLease)
		if err != nil || len(due) == 0 {
			cancel()
			<-slots
			if err != nil {
				s.log.Warn("releasing due retries failed", "err", fmt.Errorf("claim due retries: %w", err))
			}
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer cancel()
			if err := s.publishAndComplete(bctx, due); err != nil {
				failed.Store(true)
				s.log.Warn("releasing due retries failed", "err", err)
			}
		})
		if len(due) < s.cfg.ClaimLimit {
			break
		}
	}
	wg.Wait()
	return yielded
}

// yieldRecheck is how soon the release loop looks again after due
// retries yielded to first attempts: as often as due-time releases, so a
// queue that shortens under YieldBacklog does not leave delivery idle.
const yieldRecheck = minReleaseGap

// deliveryBusy reports whether more than YieldBacklog DELIVERIES messages
// wait for the delivery service. It fails open: when the broker cannot
// tell, retries are released. It logs a yield episode that lasted a
// second or more when it ends.
func (s *Service) deliveryBusy(ctx context.Context, now time.Time) bool {
	if s.cfg.YieldBacklog <= 0 {
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	n, err := s.tr.Backlog(qctx, transport.Deliveries, delivery.Group)
	cancel()
	if err != nil {
		s.log.Debug("reading the delivery backlog failed; releasing due retries", "err", err)
		n = 0
	}
	busy := n > int64(s.cfg.YieldBacklog)
	switch {
	case busy && s.yieldStart.IsZero():
		s.yieldStart, s.yieldPeak = now, n
		s.log.Debug("due retries yielding to first attempts", "delivery_backlog", n)
	case busy:
		s.yieldPeak = max(s.yieldPeak, n)
	case !s.yieldStart.IsZero():
		lvl := slog.LevelDebug
		if now.Sub(s.yieldStart) >= time.Second {
			lvl = slog.LevelInfo
		}
		s.log.Log(ctx, lvl, "due retries yielded to first attempts", "for", now.Sub(s.yieldStart).Round(time.Millisecond),
			"peak_delivery_backlog", s.yieldPeak, "threshold", s.cfg.YieldBacklog)
		s.yieldStart, s.yieldPeak = time.Time{}, 0
	}
	return busy
}

// publishAndComplete publishes one claimed batch to DELIVERIES and
// completes it. Once claimed, a batch is carried through even if Run's
// context is cancelled, bounded by the lease (ctx).
func (s *Service) publishAndComplete(ctx context.Context, due []store.DueRetry) error {
	msgs := make([]transport.Message, len(due))
	done := make([]store.ScheduledRetry, len(due))
	for i := range due {
		msgs[i] = ReleaseMessage(&due[i])
		done[i] = due[i].ScheduledRetry
	}
	if _, err := s.tr.Publish(ctx, transport.Deliveries, msgs...); err != nil {
		return fmt.Errorf("publish %d due retries: %w", len(msgs), err)
	}
	if err := s.store.CompleteRetries(ctx, done); err != nil {
		return fmt.Errorf("complete %d released retries: %w", len(done), err)
	}
	s.log.Debug("released due retries", "count", len(due))
	return nil
}

// ReleaseMessage is the DELIVERIES message that releases a due retry:
// delivery.NewMessage for attempt r.Attempt, with an ID that also names
// the due time (see the package documentation).
func ReleaseMessage(r *store.DueRetry) transport.Message {
	m := delivery.NewMessage(&r.Delivery, &r.Event, r.Attempt)
	m.ID += ".r" + strconv.FormatInt(r.DueAt.UnixNano(), 36)
	return m
}

// retentionLoop purges expired rows now and then every RetentionInterval.
func (s *Service) retentionLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		s.purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purge deletes rows older than Retention, PurgeBatch at a time, until a
// call deletes fewer than PurgeBatch.
func (s *Service) purge(ctx context.Context) {
	before := time.Now().Add(-s.cfg.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := s.store.Purge(ctx, before, s.cfg.PurgeBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("purging expired rows failed", "err", err)
			}
			break
		}
		if n < s.cfg.PurgeBatch {
			break
		}
	}
	if total > 0 {
		s.log.Info("purged expired rows", "count", total, "before", before)
	}
}
