package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// sampleEvery is the backlog sampling interval during a step.
const sampleEvery = 250 * time.Millisecond

// runStepping finds the maximum sustainable rate, then measures latency
// at half of it, or at halfRate10 events per second when positive: the
// slow and failing endpoint scenarios go through the very steps of fan-out
// 1→10 and then measure latency at 1→10's latency rate, so that the only
// difference from 1→10 is the unhealthy endpoint.
func (s *scenario) runStepping(ctx context.Context, halfRate10 float64) error {
	if err := s.warmUp(ctx); err != nil {
		return err
	}
	s.goroutines(ctx, "before load")
	st := Stepper{Start: s.cfg.StartRate / float64(s.spec.fanout()), Factor: s.cfg.RateFactor, MaxSteps: s.cfg.MaxSteps, Refine: s.cfg.Refine}
	best, drained, died, err := s.climb(ctx, &st)
	if err != nil || died {
		return err
	}
	s.recordMax(best, st.Saturated())
	half := s.latencyRate(halfRate10, best, st.Start)
	if !drained {
		// One more chance for the last step's deliveries, so that the
		// latency run does not start on top of them.
		if err := s.drainBetween(ctx, "the last step"); err != nil || s.sys.alive() != nil {
			return err
		}
	}
	return s.latencyRun(ctx, half)
}

// climb runs the steps st proposes, each after the previous one's healthy
// deliveries drained and its failing ones settled, and records them in the
// result. It stops when st does, when a step does not drain within the
// drain timeout (drained false, noted), or when Hookline dies during a step
// (died true, the scenario failed). best is the fastest passing step, nil
// when none passed.
func (s *scenario) climb(ctx context.Context, st *Stepper) (best *StepResult, drained, died bool, err error) {
	drained = true
	for drained {
		rate, ok := st.Next()
		if !ok {
			break
		}
		step, err := s.step(ctx, rate, s.cfg.StepDuration, true)
		if err != nil {
			return best, drained, false, err
		}
		st.Record(rate, step.Verdict.Pass)
		s.res.Steps = append(s.res.Steps, step)
		if step.Verdict.Pass && (best == nil || rate > best.EventsPerSec) {
			b := step
			best = &b
		}
		s.logger.Info("step", "events_per_s", round(rate), "deliveries_per_s", round(step.DeliveriesPerSec),
			"pass", step.Verdict.Pass, "reason", step.Verdict.Reason, "p50_ms", step.Latency.P50Ms, "p99_ms", step.Latency.P99Ms)
		if s.sys.alive() != nil {
			s.fail("during a step: %v", s.sys.alive())
			return best, drained, true, nil
		}
		if drained, err = s.drainHealthy(ctx, s.cfg.DrainTimeout); err != nil {
			return best, drained, false, err
		}
		if !drained {
			s.note("after the step at %.0f events/s the healthy deliveries did not drain within %v (%d of %d delivered); stepping stopped there",
				rate, s.cfg.DrainTimeout, s.deliveredHealthy(), s.expectedHealthy())
			continue
		}
		if err := s.settleFailing(ctx); err != nil {
			return best, drained, false, err
		}
	}
	return best, drained, false, nil
}

// recordMax records the fastest passing step as the scenario's maximum
// sustainable rate, with the CPU time Hookline spent per delivery in it, or
// notes that no step passed.
func (s *scenario) recordMax(best *StepResult, saturated bool) {
	if best == nil {
		s.note("no step passed, not even %.0f deliveries/s", s.cfg.StartRate)
		return
	}
	s.res.Max = &MaxRate{
		EventsPerSec: best.EventsPerSec, DeliveriesPerSec: best.DeliveriesPerSec, HealthyPerSec: best.HealthyPerSec,
		Saturated: saturated,
	}
	if n := float64(best.Events) * float64(s.spec.fanout()); n > 0 {
		s.res.Max.CPUPerDeliveryUs = round(best.HooklineCPUSeconds / n * 1e6)
		if best.BrokerCPUSeconds > 0 {
			s.res.Max.BrokerCPUPerDeliveryUs = round(best.BrokerCPUSeconds / n * 1e6)
			s.res.Max.BrokerCores = best.BrokerCores
		}
	}
}

// latencyRate is the events-per-second rate of the latency run: halfRate10
// when positive, else half the fastest passing step's, else (noted) half
// the first step's rate start.
func (s *scenario) latencyRate(halfRate10 float64, best *StepResult, start float64) float64 {
	switch {
	case halfRate10 > 0:
		return halfRate10
	case best != nil:
		return best.EventsPerSec / 2
	}
	half := start / 2
	s.note("latency measured at half the first step's rate, %.0f events/s, since no step passed", half)
	return half
}

// drainBetween waits up to the drain timeout for every healthy delivery,
// and then for a failing endpoint's deliveries to be dead-lettered, so
// that every step starts from the same settled pipeline (as fan-out 1→10's
// steps do) instead of on top of an overloaded step's retries. It notes
// how many healthy deliveries were still outstanding if they did not all
// arrive.
func (s *scenario) drainBetween(ctx context.Context, after string) error {
	ok, err := s.drainHealthy(ctx, s.cfg.DrainTimeout)
	if err != nil {
		return err
	}
	if !ok {
		s.note("%d healthy deliveries still outstanding after another %v of waiting after %s; the next load started on top of them",
			s.expectedHealthy()-s.deliveredHealthy(), s.cfg.DrainTimeout, after)
	}
	return s.settleFailing(ctx)
}

// settleFailing waits, in a scenario with a failing endpoint, for that
// endpoint's deliveries to be dead-lettered (see waitFailingSettled).
func (s *scenario) settleFailing(ctx context.Context) error {
	if !slices.Contains(s.spec.behaviours, Failing) {
		return nil
	}
	return s.waitFailingSettled(ctx)
}

// latencyRun measures latency at rate events per second.
func (s *scenario) latencyRun(ctx context.Context, rate float64) error {
	lat, err := s.step(ctx, rate, s.cfg.LatencyDuration, false)
	if err != nil {
		return err
	}
	s.res.Latency = &lat
	s.logger.Info("latency run", "events_per_s", round(rate), "p50_ms", lat.Latency.P50Ms, "p99_ms", lat.Latency.P99Ms, "max_ms", lat.Latency.MaxMs)
	return nil
}

// step offers rate events per second for d and measures the healthy
// pairs' latency; judge decides the step (a latency run is not judged and
// waits up to the drain timeout for its deliveries instead of the p99
// limit).
func (s *scenario) step(ctx context.Context, rate float64, d time.Duration, judge bool) (StepResult, error) {
	n := max(int(math.Round(rate*d.Seconds())), 1)
	fan, hfan := s.spec.fanout(), s.spec.healthyFanout()
	kind := "latency"
	if judge {
		kind = "step"
	}
	res := StepResult{
		Kind: kind, EventsPerSec: round(rate), DeliveriesPerSec: round(rate * float64(fan)), HealthyPerSec: round(rate * float64(hfan)),
		Seconds: d.Seconds(), Events: n,
	}
	if err := s.checkFailingAtStart(ctx, &res, rate); err != nil {
		return res, err
	}
	devCPU0, err := s.sys.usage()
	if err != nil {
		return res, err
	}
	broker0, err := s.brokerUsage()
	if err != nil {
		return res, err
	}
	selfCPU0, usage0 := selfCPU(), time.Now()
	load := s.offer(ctx, rate, d, n, &res)

	// Wait for this step's healthy pairs: up to the p99 limit after the
	// load when judging (later ones are censored and fail the step anyway),
	// up to the drain timeout for a latency run.
	wait := s.cfg.P99Limit
	if !judge {
		wait = s.cfg.DrainTimeout
	}
	if _, err := waitFor(ctx, wait, 10*time.Millisecond, func() bool { return s.deliveredHealthy() >= s.expectedHealthy() }); err != nil {
		return res, err
	}
	h := s.measureStep(load, time.Now().UnixNano(), d, &res)
	if judge {
		v := Judge(Criteria{P99Limit: s.cfg.P99Limit, GrowthLimit: s.cfg.GrowthLimit, MinGrowth: 10},
			rate*float64(hfan), h.Percentile(99), load.samples, res.Rejected)
		res.Verdict = &v
	}
	devCPU1, err := s.sys.usage()
	if err != nil {
		return res, err
	}
	broker1, err := s.brokerUsage()
	if err != nil {
		return res, err
	}
	if broker0 != nil && broker1 != nil {
		res.BrokerCPUSeconds = round3(broker1.CPUSeconds - broker0.CPUSeconds)
		res.BrokerCores = round3(res.BrokerCPUSeconds / time.Since(usage0).Seconds())
	}
	res.HooklineCPUSeconds = round3(devCPU1.CPUSeconds - devCPU0.CPUSeconds)
	res.HooklineRSSBytes = devCPU1.RSSBytes
	res.HarnessCPUSeconds = round3(selfCPU() - selfCPU0)
	return res, nil
}

// checkFailingAtStart records in res, in a scenario with a failing
// endpoint, whether that endpoint's deliveries were still pending or
// retrying as the step at rate started, and notes it when they were.
func (s *scenario) checkFailingAtStart(ctx context.Context, res *StepResult, rate float64) error {
	if !slices.Contains(s.spec.behaviours, Failing) {
		return nil
	}
	n, err := s.failingOutstanding(ctx)
	if err != nil {
		return fmt.Errorf("count failing deliveries: %w", err)
	}
	if res.FailingOutstandingAtStart = n > 0; n > 0 {
		s.note("the %s at %.0f events/s started while the failing endpoint's deliveries were still retrying", res.Kind, rate)
	}
	return nil
}

// stepLoad is the load a step offered: its events and when it ran.
type stepLoad struct {
	first, end     int64     // the step's events are first..end-1
	start, loadEnd time.Time // the first event's scheduled time; start plus the step's duration
	samples        []BacklogSample
}

// offer schedules n events at rate per second from 10 ms from now,
// publishes them while sampling the backlog, and returns once d has passed
// since the first one was due and every publish call has returned. It
// records the publishing figures (lag, accepted, rejected, calls) in res
// and notes rejections.
func (s *scenario) offer(ctx context.Context, rate float64, d time.Duration, n int, res *StepResult) stepLoad {
	acc0, rej0, calls0 := s.gen.accepted.Load(), s.gen.rejected.Load(), s.gen.calls.Load()
	start := time.Now().Add(10 * time.Millisecond)
	first := s.log.append(n, start, rate)
	end := s.log.len()
	stopSampling := s.sampleBacklog(start, rate, n)
	s.gen.run(ctx, first, end)
	publishDone := time.Now()
	loadEnd := start.Add(d)
	if wait := time.Until(loadEnd); wait > 0 {
		time.Sleep(wait) // the last event is scheduled (n-1)/rate after start
	}
	samples := stopSampling()
	res.PublishLagMs = ms(publishDone.Sub(time.Unix(0, s.log.sched[end-1])))
	res.Accepted = s.gen.accepted.Load() - acc0
	res.Rejected = s.gen.rejected.Load() - rej0
	res.PublishCalls = s.gen.calls.Load() - calls0
	if res.Rejected > 0 {
		s.note("step at %.0f events/s: %d events rejected: %v", rate, res.Rejected, s.gen.rejections())
	}
	return stepLoad{first: first, end: end, start: start, loadEnd: loadEnd, samples: samples}
}

// sampleBacklog samples, every sampleEvery until the returned function is
// called, the healthy pairs due and not delivered: those outstanding now,
// plus those of the n events scheduled at rate from start that are due by
// then. The returned function stops the sampling and returns the samples.
func (s *scenario) sampleBacklog(start time.Time, rate float64, n int) func() []BacklogSample {
	hfan := s.spec.healthyFanout()
	delivered0 := s.deliveredHealthy()
	backlog0 := s.expectedHealthy() - delivered0 // left over from before; ~0 after a drain
	var samples []BacklogSample
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				el := now.Sub(start)
				due := min(max(math.Floor(el.Seconds()*rate)+1, 0), float64(n))
				b := float64(backlog0) + due*float64(hfan) - float64(s.deliveredHealthy()-delivered0)
				samples = append(samples, BacklogSample{At: el, Backlog: b})
			}
		}
	})
	return func() []BacklogSample {
		close(stop)
		wg.Wait()
		return samples
	}
}

// measureStep records in res the latency of the step's healthy pairs, each
// from its event's scheduled time to its first receipt (to cutoff, as a
// censored sample, when it has not arrived), the rate of those received
// within the load's window of length d, and the highest backlog sampled.
// It returns the latency histogram.
func (s *scenario) measureStep(load stepLoad, cutoff int64, d time.Duration, res *StepResult) *Histogram {
	h := &Histogram{}
	var inWindow int64
	winStart, winEnd := load.start.UnixNano(), load.loadEnd.UnixNano()
	for seq := load.first; seq < load.end; seq++ {
		if s.log.state[seq] != evAccepted {
			continue
		}
		sched := s.log.sched[seq]
		for _, sub := range s.spec.targets(seq, s.all) {
			if s.spec.behaviours[sub] != Healthy {
				continue
			}
			recv, _ := s.rcv.Pair(sub, seq)
			if recv == 0 {
				h.RecordCensored(time.Duration(cutoff - sched))
				continue
			}
			h.Record(time.Duration(recv - sched))
			if recv >= winStart && recv <= winEnd {
				inWindow++
			}
		}
	}
	res.Latency = h.Summary()
	res.DeliveredPerSec = round(float64(inWindow) / d.Seconds())
	for _, smp := range load.samples {
		res.BacklogMax = max(res.BacklogMax, smp.Backlog)
	}
	return h
}

// runBacklog builds a backlog while the receiver is down, then brings the
// receiver up and measures the drain.
func (s *scenario) runBacklog(ctx context.Context) error {
	if err := s.warmUp(ctx); err != nil {
		return err
	}
	before := s.goroutines(ctx, "before load")
	b := &BacklogResult{}
	s.res.Backlog = b
	if err := s.rcv.Down(); err != nil {
		return err
	}
	delivered0 := s.rcv.DeliveredTo(isHealthy)
	first, t0 := s.publishBacklog(ctx, b)
	want := int(b.Deliveries)
	if err := s.awaitBacklogBuilt(ctx, t0, want, b); err != nil {
		return err
	}
	s.goroutines(ctx, "backlog built")
	if err := s.drainBacklog(ctx, first, delivered0, want, b); err != nil {
		return err
	}
	s.goroutines(ctx, "drained")
	return s.checkGoroutineGrowth(ctx, before, b)
}

// publishBacklog publishes the backlog's events, all due at once so that
// they go as fast as the publishers do, and records in b how long that
// took and how many deliveries the accepted events make. It returns the
// first event's sequence number and when publishing began.
func (s *scenario) publishBacklog(ctx context.Context, b *BacklogResult) (int64, time.Time) {
	events := s.cfg.BacklogDeliveries / s.spec.fanout()
	acc0 := s.gen.accepted.Load()
	t0 := time.Now()
	first := s.log.append(events, t0, 0) // all due now: published as fast as the publishers go
	s.gen.run(ctx, first, s.log.len())
	b.PublishSeconds = round3(time.Since(t0).Seconds())
	b.Deliveries = (s.gen.accepted.Load() - acc0) * int64(s.spec.fanout())
	s.logger.Info("backlog published", "events", events, "seconds", b.PublishSeconds)
	return first, t0
}

// awaitBacklogBuilt waits up to the backlog timeout for the backlog to be
// built: nothing pending, and want deliveries listed as retrying (each
// failed at least once against the closed port). It records in b the time
// since t0 and Hookline's RSS, and fails the scenario when the backlog was
// not built in time.
func (s *scenario) awaitBacklogBuilt(ctx context.Context, t0 time.Time, want int, b *BacklogResult) error {
	var retrying int
	built, err := waitFor(ctx, s.cfg.BacklogTimeout, 2*time.Second, func() bool {
		pending, err := s.countDeliveries(ctx, statusPending, "", 1)
		if err != nil || pending > 0 || s.sys.alive() != nil {
			return false
		}
		// Warm-up deliveries succeeded; every other one must be retrying.
		if retrying, err = s.countDeliveries(ctx, statusRetrying, "", 0); err != nil {
			return false
		}
		s.logger.Info("backlog building", "retrying", retrying, "want", want)
		return retrying >= want
	})
	if err != nil {
		return err
	}
	b.BuildSeconds = round3(time.Since(t0).Seconds())
	if !built {
		s.fail("backlog: only %d of %d deliveries had failed once within %v", retrying, want, s.cfg.BacklogTimeout)
	}
	if u, err := s.sys.usage(); err == nil {
		b.RSSAtBuiltBytes = u.RSSBytes
	}
	return nil
}

// drainBacklog brings the receiver up and waits up to the backlog timeout
// for the want backlog deliveries to arrive on top of the delivered0
// healthy deliveries received before the backlog. It records in b whether
// they did, the first receipt of the backlog (events first onwards), the
// drain's duration and rate (failing the scenario when it did not drain),
// and Hookline's memory after it.
func (s *scenario) drainBacklog(ctx context.Context, first, delivered0 int64, want int, b *BacklogResult) error {
	up := time.Now()
	if err := s.rcv.Up(); err != nil {
		return err
	}
	target := delivered0 + int64(want)
	var err error
	b.Drained, err = waitFor(ctx, s.cfg.BacklogTimeout, 20*time.Millisecond, func() bool {
		return s.rcv.DeliveredTo(isHealthy) >= target || s.sys.alive() != nil
	})
	if err != nil {
		return err
	}
	b.Drained = b.Drained && s.rcv.DeliveredTo(isHealthy) >= target
	firstRecv, lastRecv := s.receiptSpan(first)
	if firstRecv != 0 {
		b.FirstReceiptMs = ms(time.Duration(firstRecv - up.UnixNano()))
	}
	if b.Drained && lastRecv > up.UnixNano() {
		b.DrainSeconds = round3(float64(lastRecv-up.UnixNano()) / 1e9)
		b.DrainPerSec = round(float64(want) / b.DrainSeconds)
	} else {
		s.fail("backlog: %d of %d deliveries arrived within %v of the receiver coming back", s.rcv.DeliveredTo(isHealthy)-delivered0, want, s.cfg.BacklogTimeout)
	}
	s.logger.Info("backlog drained", "seconds", b.DrainSeconds, "per_s", b.DrainPerSec)
	if u, err := s.sys.usage(); err == nil {
		b.RSSAfterDrainByte = u.RSSBytes
		b.PeakRSSBytes = u.PeakRSSBytes
	}
	return nil
}

// receiptSpan returns the earliest and latest first receipts (Unix
// nanoseconds) of the pairs of events first onwards, 0 and 0 when none
// arrived.
func (s *scenario) receiptSpan(first int64) (firstRecv, lastRecv int64) {
	for seq := first; seq < s.log.len(); seq++ {
		for _, sub := range s.spec.targets(seq, s.all) {
			if recv, _ := s.rcv.Pair(sub, seq); recv != 0 {
				if firstRecv == 0 || recv < firstRecv {
					firstRecv = recv
				}
				lastRecv = max(lastRecv, recv)
			}
		}
	}
	return firstRecv, lastRecv
}

// checkGoroutineGrowth counts Hookline's goroutines again once the
// goroutine settle time has passed after the drain (idle keep-alive
// connections and timers wind down over a while, and a later count tells
// lasting growth from that) and records and notes any growth by entry
// function against before the load.
func (s *scenario) checkGoroutineGrowth(ctx context.Context, before map[string]int, b *BacklogResult) error {
	settle := time.NewTimer(s.cfg.GoroutineSettle)
	select {
	case <-ctx.Done():
		settle.Stop()
		return fmt.Errorf("backlog: %w", ctx.Err())
	case <-settle.C:
	}
	after := s.goroutines(ctx, "drained + "+s.cfg.GoroutineSettle.String())
	if growth := GoroutineGrowth(before, after, 5); growth != "" {
		b.GoroutineGrowth = growth
		s.note("goroutines by entry function, after the drain against before the load: %s", growth)
	}
	return nil
}

func round(f float64) float64  { return math.Round(f*10) / 10 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }
