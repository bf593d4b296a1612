// Package scheduler is Hookline's scheduler service: it releases due
// attempts from the store to the delivery service, redrives parked
// deliveries, and purges expired rows.
//
// The delivery service records every failed attempt together with the due
// time of the next one (store.RecordAttempts), and puts off attempts its
// endpoint cannot take yet (store.ScheduleRetries); the admin API schedules
// test events and redeliveries the same way. The scheduler claims due rows
// under a lease (store.ClaimDueRetries), publishes them to DELIVERIES in
// one call (wire.ReleaseMessage), and completes them
// (store.CompleteRetries), looping at once while full batches come back.
// Due times live in the store, so they survive restarts; the claim lease
// makes any number of replicas safe, and a replica that dies after
// claiming only delays its retries by the lease.
//
// It looks for due rows every PollInterval, and also at each due time that
// a writer announced with a wire.TopicDue signal (up to 60 poll intervals
// ahead), so a 100 ms retry is not stretched to the poll interval. A lost
// signal only delays a release to the next poll.
//
// On every poll it redrives parked deliveries of enabled subscriptions
// (store.RedriveParked). Every RetentionInterval it purges rows older than
// Retention (store.Purge) in batches.
package scheduler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/wire"
)

// Store is what the scheduler needs of the store. Every store.Store is
// one.
type Store interface {
	ClaimDueRetries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.DueRetry, error)
	CompleteRetries(ctx context.Context, rs []store.ScheduledRetry) error
	RedriveParked(ctx context.Context, now time.Time, limit int) (int, error)
	Purge(ctx context.Context, before time.Time, limit int) (int, error)
	Ready(ctx context.Context) error
}

var _ Store = store.Store(nil)

// Service releases due attempts; create it with New and start it with Run.
type Service struct {
	cfg  Config
	deps deps.Deps[Store] // store, broker, logger, clock

	started atomic.Bool
	bg      context.Context

	// dues are the announced due times not yet released.
	dues dueTimes

	// The current yield episode (see deliveryBusy), owned by the release
	// loop: when it started (zero: none) and the largest backlog seen.
	yieldStart time.Time
	yieldPeak  int64
}

// New validates cfg and builds the service. It starts no goroutines.
func New(cfg Config, d deps.Deps[Store]) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("scheduler: invalid config: %w", err)
	}
	if err := d.Check("scheduler"); err != nil {
		return nil, err
	}
	d.WarnIfOutlastsDedup("scheduler-claim-lease", cfg.ClaimLease)
	s := &Service{cfg: cfg, deps: d}
	s.dues.init()
	return s, nil
}

// Ready reports whether the store and the broker answer.
func (s *Service) Ready(ctx context.Context) error { return s.deps.Ready(ctx) }

// Run releases due attempts, redrives parked deliveries and purges expired
// rows until ctx is cancelled; then it lets the current release batch
// finish and returns nil. Run may be called once.
func (s *Service) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("scheduler: Run called more than once")
	}
	s.bg = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.listenLoop(ctx) })
	wg.Go(func() { s.releaseLoop(ctx) })
	if s.cfg.Retention > 0 {
		wg.Go(func() { s.retentionLoop(ctx) })
	}
	s.deps.Logger.Info("scheduler running", "poll_interval", s.cfg.PollInterval)
	wg.Wait()
	s.deps.Logger.Info("scheduler stopped")
	return nil
}

// listenLoop listens for announced due times until ctx ends, retrying
// (every PollInterval) while the broker cannot register the listener: the
// polls release everything meanwhile, only later.
func (s *Service) listenLoop(ctx context.Context) {
	for {
		stop, err := s.deps.Transport.Listen(ctx, wire.TopicDue, s.onDue)
		if err == nil {
			<-ctx.Done()
			stop()
			return
		}
		if ctx.Err() != nil {
			return
		}
		s.deps.Logger.Warn("listening for due times failed; releasing at each poll only until it works", "err", err)
		t := time.NewTimer(s.cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// dueHorizonPolls is how many poll intervals ahead an announced due time
// may lie and still be tracked. One further ahead is released by the first
// poll after it, at most one poll interval late: a sixtieth of its wait or
// less.
const dueHorizonPolls = 60

// onDue tracks an announced due time, unless it lies beyond the horizon
// (dueHorizonPolls poll intervals ahead), where the poll's lateness is
// small next to the wait.
func (s *Service) onDue(data []byte) {
	due, err := wire.ParseWake(data)
	if err != nil {
		s.deps.Logger.Debug("ignoring a malformed due signal", "err", err)
		return
	}
	if due.Sub(s.deps.Now()) > dueHorizonPolls*s.cfg.PollInterval {
		return
	}
	s.dues.add(due)
}

// releaseLoop redrives parked deliveries and releases due attempts every
// PollInterval, and also at each tracked due time (onDue), so that a short
// delay is not stretched to the poll interval. It returns when ctx ends.
func (s *Service) releaseLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var nextPoll time.Time // zero: poll at once
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.dues.wake:
		}
		now := s.deps.Now()
		due := s.dues.popDue(now)
		poll := !now.Before(nextPoll)
		if poll {
			s.redrive(ctx)
			nextPoll = now.Add(s.cfg.PollInterval)
		}
		yielded := false
		if poll || due || !s.yieldStart.IsZero() {
			yielded = s.release(ctx)
		}
		timer.Reset(max(s.nextWake(now, nextPoll, yielded).Sub(now), 0))
	}
}

// nextWake is when the release loop looks again: at the next poll, sooner
// while retries yield to first attempts (yieldRecheck), and at the
// earliest tracked due time — at least minReleaseGap from now, so that a
// flood of due times (an endpoint's backlog coming back) is released in
// batches rather than a claim per due time.
func (s *Service) nextWake(now, nextPoll time.Time, yielded bool) time.Time {
	next := nextPoll
	if soon := now.Add(yieldRecheck); yielded && soon.Before(next) {
		next = soon
	}
	if tracked := s.dues.earliest(); !tracked.IsZero() && tracked.Before(next) {
		next = tracked
		if gap := now.Add(minReleaseGap); next.Before(gap) {
			next = gap
		}
	}
	return next
}

// redrive turns parked deliveries of enabled subscriptions into retries
// due now (released by the next release).
func (s *Service) redrive(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := s.deps.Store.RedriveParked(ctx, s.deps.Now(), s.cfg.RedriveLimit)
		if err != nil {
			if ctx.Err() == nil {
				s.deps.Logger.Warn("redriving parked deliveries failed", "err", err)
			}
			return
		}
		if n > 0 {
			s.deps.Logger.Info("redrove parked deliveries", "count", n)
		}
		if n < s.cfg.RedriveLimit {
			return
		}
	}
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
	before := s.deps.Now().Add(-s.cfg.Retention)
	total := 0
	for ctx.Err() == nil {
		n, err := s.deps.Store.Purge(ctx, before, s.cfg.PurgeBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				s.deps.Logger.Warn("purging expired rows failed", "err", err)
			}
			break
		}
		if n < s.cfg.PurgeBatch {
			break
		}
	}
	if total > 0 {
		s.deps.Logger.Info("purged expired rows", "count", total, "before", before)
	}
}
