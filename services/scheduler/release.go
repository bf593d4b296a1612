package scheduler

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/wire"
)

// releaseDepth is how many claimed batches may be on their way (publish,
// then complete) while the next one is claimed. Claiming, publishing and
// completing one batch after the other left the store and the broker
// waiting on each other; overlapped, the next claim and the previous
// batch's completion share a store transaction where the store combines
// writes.
const releaseDepth = 2

// minReleaseGap is the least time between two releases triggered by due
// times (polls aside): how late a tracked due time can be released.
const minReleaseGap = 20 * time.Millisecond

// yieldRecheck is how soon the release loop looks again after due
// retries yielded to first attempts: as often as due-time releases, so a
// queue that shortens under YieldBacklog does not leave delivery idle.
const yieldRecheck = minReleaseGap

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
		cutoff := s.deps.Now()
		if s.deliveryBusy(ctx, cutoff) {
			yielded = true
			cutoff = cutoff.Add(-s.cfg.MaxYield)
		}
		bctx, cancel := context.WithTimeout(s.bg, s.cfg.ClaimLease)
		due, err := s.deps.Store.ClaimDueRetries(bctx, cutoff, s.cfg.ClaimLimit, s.cfg.ClaimLease)
		if err != nil || len(due) == 0 {
			cancel()
			<-slots
			if err != nil {
				s.deps.Logger.Warn("releasing due retries failed", "err", fmt.Errorf("claim due retries: %w", err))
			}
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			defer cancel()
			if err := s.publishAndComplete(bctx, due); err != nil {
				failed.Store(true)
				s.deps.Logger.Warn("releasing due retries failed", "err", err)
			}
		})
		if len(due) < s.cfg.ClaimLimit {
			break
		}
	}
	wg.Wait()
	return yielded
}

// deliveryBusy reports whether more than YieldBacklog DELIVERIES messages
// wait for the delivery service. It fails open: when the broker cannot
// tell, retries are released. It logs a yield episode that lasted a
// second or more when it ends.
func (s *Service) deliveryBusy(ctx context.Context, now time.Time) bool {
	if s.cfg.YieldBacklog <= 0 {
		return false
	}
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	n, err := s.deps.Transport.Backlog(qctx, transport.Deliveries, wire.GroupDelivery)
	cancel()
	if err != nil {
		s.deps.Logger.Debug("reading the delivery backlog failed; releasing due retries", "err", err)
		n = 0
	}
	busy := n > int64(s.cfg.YieldBacklog)
	switch {
	case busy && s.yieldStart.IsZero():
		s.yieldStart, s.yieldPeak = now, n
		s.deps.Logger.Debug("due retries yielding to first attempts", "delivery_backlog", n)
	case busy:
		s.yieldPeak = max(s.yieldPeak, n)
	case !s.yieldStart.IsZero():
		lvl := slog.LevelDebug
		if now.Sub(s.yieldStart) >= time.Second {
			lvl = slog.LevelInfo
		}
		s.deps.Logger.Log(ctx, lvl, "due retries yielded to first attempts", "for", now.Sub(s.yieldStart).Round(time.Millisecond),
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
		msgs[i] = wire.ReleaseMessage(&due[i])
		done[i] = due[i].ScheduledRetry
	}
	if _, err := s.deps.Transport.Publish(ctx, transport.Deliveries, msgs...); err != nil {
		return fmt.Errorf("publish %d due retries: %w", len(msgs), err)
	}
	if err := s.deps.Store.CompleteRetries(ctx, done); err != nil {
		return fmt.Errorf("complete %d released retries: %w", len(done), err)
	}
	s.deps.Logger.Debug("released due retries", "count", len(due))
	return nil
}
