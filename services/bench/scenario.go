package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// subscriptions is the number of subscriptions of every scenario.
const subscriptions = 10

// tenant owns every subscription and event of the benchmark.
const tenant = "bench"

// Statuses of a scenario result.
const (
	StatusOK     = "ok"
	StatusFailed = "FAILED"
)

// scenarioSpec describes a scenario: its endpoints and which events go
// where.
type scenarioSpec struct {
	name, title string
	behaviours  []Behaviour
	retry       []time.Duration // retry schedule of unhealthy endpoints (nil: Hookline's default)
	oneToOne    bool            // event seq has type bench.t<seq%10>, matched by subscription seq%10 only
	backlog     bool
}

// specFor returns the scenario called name.
func specFor(name string, cfg Config) scenarioSpec {
	healthy := slices.Repeat([]Behaviour{Healthy}, subscriptions)
	with := func(b Behaviour) []Behaviour {
		bs := slices.Clone(healthy)
		bs[0] = b
		return bs
	}
	switch name {
	case ScenarioFanout1to1:
		return scenarioSpec{name: name, title: "fan-out 1→1 (10 subscriptions, each event to one)", behaviours: healthy, oneToOne: true}
	case ScenarioFanout1to10:
		return scenarioSpec{name: name, title: "fan-out 1→10 (each event to all 10)", behaviours: healthy}
	case ScenarioSlow:
		return scenarioSpec{name: name, title: "one slow endpoint (200 after 2 s) among nine healthy, 1→10", behaviours: with(Slow)}
	case ScenarioFailing:
		return scenarioSpec{name: name, title: "one endpoint failing every attempt (500) among nine healthy, 1→10",
			behaviours: with(Failing), retry: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}}
	case ScenarioBacklog:
		return scenarioSpec{name: name, title: fmt.Sprintf("backlog of %d deliveries built while the receiver is down, then drained", cfg.BacklogDeliveries),
			behaviours: healthy, backlog: true}
	}
	panic("unknown scenario " + name)
}

// fanout is the number of subscriptions each event matches.
func (s scenarioSpec) fanout() int {
	if s.oneToOne {
		return 1
	}
	return len(s.behaviours)
}

// healthyFanout is the number of healthy subscriptions each event matches.
func (s scenarioSpec) healthyFanout() int {
	if s.oneToOne {
		return 1 // every endpoint of 1→1 is healthy
	}
	n := 0
	for _, b := range s.behaviours {
		if b == Healthy {
			n++
		}
	}
	return n
}

// eventType is the type of event seq.
func (s scenarioSpec) eventType(seq int64) string {
	if s.oneToOne {
		return "bench.t" + strconv.FormatInt(seq%int64(len(s.behaviours)), 10)
	}
	return "bench.all"
}

// targets returns the subscriptions event seq matches.
func (s scenarioSpec) targets(seq int64, all []int) []int {
	if s.oneToOne {
		i := int(seq % int64(len(all)))
		return all[i : i+1]
	}
	return all
}

// scenario is a running scenario: its receiver, its `hookline dev`, the
// API clients, the events published so far.
type scenario struct {
	cfg     Config
	spec    scenarioSpec
	logger  *slog.Logger
	dir     string
	rcv     *Receiver
	sys     system
	conns   []*grpc.ClientConn
	admin   hooklinev1.AdminServiceClient
	gen     *generator
	log     *eventLog
	subIDs  []string
	all     []int // 0..subscriptions-1
	res     *ScenarioResult
	started time.Time
	cpu0    float64
}

// isHealthy reports whether endpoint behaviour b counts in the figures.
func isHealthy(b Behaviour) bool { return b == Healthy }

// runScenario runs one scenario on a fresh `hookline dev`. halfRate10, when
// positive, is the events-per-second rate of fan-out 1→10's latency run,
// used by the slow and failing endpoint scenarios so they compare at the
// same rate. An error means the harness could not run the scenario; a
// scenario that ran but failed its checks is returned with StatusFailed.
func runScenario(ctx context.Context, cfg Config, pprof bool, name string, halfRate10 float64, logger *slog.Logger) (*ScenarioResult, error) {
	spec := specFor(name, cfg)
	res := &ScenarioResult{Name: name, Title: spec.title, Status: StatusOK, Fanout: spec.fanout(), Healthy: spec.healthyFanout()}
	s := &scenario{cfg: cfg, spec: spec, logger: logger.With("scenario", name), res: res, started: time.Now(), cpu0: selfCPU(), log: &eventLog{}}
	for i := range subscriptions {
		s.all = append(s.all, i)
	}
	defer s.close()
	if err := s.setUp(ctx, pprof); err != nil {
		return nil, err
	}
	var err error
	if spec.backlog {
		err = s.runBacklog(ctx)
	} else {
		err = s.runStepping(ctx, halfRate10)
	}
	if err != nil {
		return nil, err
	}
	if err := s.finish(ctx); err != nil {
		return nil, err
	}
	return res, nil
}

// setUp starts the receiver and `hookline dev`, connects, and creates the
// subscriptions.
func (s *scenario) setUp(ctx context.Context, pprof bool) error {
	var err error
	if s.dir, err = os.MkdirTemp(s.cfg.WorkDir, "hookline-bench-"+s.spec.name+"-"); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	if s.rcv, err = NewReceiver(s.spec.behaviours); err != nil {
		return err
	}
	if err := s.rcv.Up(); err != nil {
		return err
	}
	s.logger.Info("starting Hookline", "stack", s.cfg.Stack, "dir", s.dir)
	sys, err := startSystem(ctx, s.cfg, s.dir, pprof, s.logger)
	if err != nil {
		return err
	}
	s.sys = sys
	var clients []hooklinev1.IngestServiceClient
	for range s.cfg.Conns {
		conn, err := grpc.NewClient(s.sys.grpcAddress(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return fmt.Errorf("connect to ingest: %w", err)
		}
		s.conns = append(s.conns, conn)
		clients = append(clients, hooklinev1.NewIngestServiceClient(conn))
	}
	s.admin = hooklinev1.NewAdminServiceClient(s.conns[0])
	s.gen = &generator{
		clients: clients, log: s.log, tenant: tenant, eventType: s.spec.eventType,
		publishers: s.cfg.Publishers, maxBatch: s.cfg.MaxBatch, idemKeys: s.cfg.IdempotencyKeys, logger: s.logger,
	}
	return s.createSubscriptions(ctx)
}

// createSubscriptions creates subscription i at the receiver's endpoint i.
func (s *scenario) createSubscriptions(ctx context.Context) error {
	for i, b := range s.spec.behaviours {
		types := []string{"bench.all"}
		if s.spec.oneToOne {
			types = []string{"bench.t" + strconv.Itoa(i)}
		}
		var schedule []time.Duration
		switch {
		case s.spec.backlog:
			schedule = slices.Repeat([]time.Duration{s.cfg.BacklogRetryDelay}, 100)
		case b != Healthy:
			schedule = s.spec.retry
		}
		sub := &hooklinev1.Subscription{
			Tenant: tenant, Url: s.rcv.URL(i), EventTypes: types,
			Description: fmt.Sprintf("hookline-bench %s endpoint %d (%s)", s.spec.name, i, b),
		}
		for _, d := range schedule {
			sub.RetrySchedule = append(sub.RetrySchedule, durationpb.New(d))
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		created, err := s.admin.CreateSubscription(cctx, &hooklinev1.CreateSubscriptionRequest{Subscription: sub})
		cancel()
		if err != nil {
			return fmt.Errorf("create subscription %d: %w", i, err)
		}
		s.subIDs = append(s.subIDs, created.GetId())
	}
	return nil
}

// brokerUsage reads the CPU time and memory of the broker's own process
// (nats-server or kfake-server), nil when the broker is embedded.
func (s *scenario) brokerUsage() (*ProcUsage, error) {
	c := s.sys.brokerProcess()
	if c == nil {
		return nil, nil
	}
	u, err := readProcUsage(c.cmd.Process.Pid)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.name, err)
	}
	return &u, nil
}

// close stops everything the scenario started.
func (s *scenario) close() {
	for _, c := range s.conns {
		_ = c.Close()
	}
	if s.sys != nil {
		if err := s.sys.stop(); err != nil {
			s.logger.Warn("stopping Hookline", "err", err)
			s.res.Notes = append(s.res.Notes, "stopping Hookline: "+err.Error())
		}
	}
	if s.rcv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.rcv.Shutdown(sctx)
		cancel()
	}
	if s.dir != "" {
		if s.cfg.KeepData {
			s.logger.Info("kept the scenario's data and log", "dir", s.dir)
		} else if err := os.RemoveAll(s.dir); err != nil {
			s.logger.Warn("remove work directory", "dir", s.dir, "err", err)
		}
	}
}

// expectedHealthy is the number of healthy pairs of every accepted event.
func (s *scenario) expectedHealthy() int64 {
	return s.gen.accepted.Load() * int64(s.spec.healthyFanout())
}

// deliveredHealthy is the number of distinct healthy pairs delivered.
func (s *scenario) deliveredHealthy() int64 { return s.rcv.DeliveredTo(isHealthy) }

// waitFor polls cond every interval until it holds (true) or timeout
// passes (false).
func waitFor(ctx context.Context, timeout, interval time.Duration, cond func() bool) (bool, error) {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if cond() {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("waiting: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// drainHealthy waits until every healthy pair of every accepted event is
// delivered, up to timeout.
func (s *scenario) drainHealthy(ctx context.Context, timeout time.Duration) (bool, error) {
	return waitFor(ctx, timeout, 20*time.Millisecond, func() bool {
		if s.sys.alive() != nil {
			return false
		}
		return s.deliveredHealthy() >= s.expectedHealthy()
	})
}

// warmUp publishes the warm-up events at 100/s and waits for them.
func (s *scenario) warmUp(ctx context.Context) error {
	if s.cfg.WarmupEvents == 0 {
		return nil
	}
	first := s.log.append(s.cfg.WarmupEvents, time.Now(), 100)
	s.gen.run(ctx, first, s.log.len())
	ok, err := s.drainHealthy(ctx, s.cfg.DrainTimeout)
	if err != nil {
		return err
	}
	if !ok {
		s.fail("warm-up: %d of %d healthy deliveries within %v", s.deliveredHealthy(), s.expectedHealthy(), s.cfg.DrainTimeout)
		return nil
	}
	return s.settleFailing(ctx)
}

// fail marks the scenario failed with a problem.
func (s *scenario) fail(format string, args ...any) {
	s.res.Status = StatusFailed
	s.res.Problems = append(s.res.Problems, fmt.Sprintf(format, args...))
	s.logger.Warn("scenario problem", "problem", fmt.Sprintf(format, args...))
}

// note adds a remark to the scenario's result.
func (s *scenario) note(format string, args ...any) {
	s.res.Notes = append(s.res.Notes, fmt.Sprintf(format, args...))
}

// goroutines records the child's goroutine count at a named moment and
// returns the count per entry function (nil when not measured).
func (s *scenario) goroutines(ctx context.Context, at string) map[string]int {
	n, byEntry, err := s.sys.goroutines(ctx)
	switch {
	case err != nil:
		s.note("goroutine count %s: %v", at, err)
	case n >= 0:
		s.res.Goroutines = append(s.res.Goroutines, Sample{At: at, Value: int64(n)})
	}
	return byEntry
}

// finish waits for the last deliveries, settles the ledger and reads the
// child's usage.
func (s *scenario) finish(ctx context.Context) error {
	if !s.spec.backlog {
		if ok, err := s.drainHealthy(ctx, s.cfg.DrainTimeout); err != nil {
			return err
		} else if !ok {
			s.logger.Warn("healthy deliveries not drained", "delivered", s.deliveredHealthy(), "expected", s.expectedHealthy())
		}
		if slices.Contains(s.spec.behaviours, Failing) {
			if err := s.waitFailingSettled(ctx); err != nil {
				return err
			}
		}
	}
	if s.sys.alive() == nil {
		u, err := s.sys.usage()
		if err != nil {
			return err
		}
		s.res.Hookline = u
		if s.res.Broker, err = s.brokerUsage(); err != nil {
			return err
		}
		s.goroutines(ctx, "end")
	} else {
		s.fail("during the scenario: %v", s.sys.alive())
	}
	if err := s.settleLedger(ctx); err != nil {
		return err
	}
	for i, b := range s.spec.behaviours {
		ep := s.rcv.eps[i]
		s.res.Endpoints = append(s.res.Endpoints, EndpointStats{
			Index: i, Behaviour: b.String(), Requests: ep.requests.Load(), Delivered: ep.delivered.Load(), Duplicates: ep.duplicates.Load(),
		})
	}
	s.res.HarnessCPUSeconds = selfCPU() - s.cpu0
	s.res.Seconds = time.Since(s.started).Seconds()
	return nil
}

// waitFailingSettled waits until no delivery of a failing endpoint is
// pending or retrying any more (all dead-lettered), up to the drain
// timeout.
func (s *scenario) waitFailingSettled(ctx context.Context) error {
	var last int
	ok, err := waitFor(ctx, s.cfg.DrainTimeout, time.Second, func() bool {
		n, err := s.failingOutstanding(ctx)
		if err != nil {
			s.logger.Warn("count failing deliveries", "err", err)
			return false
		}
		last = n
		return n == 0
	})
	if err != nil {
		return err
	}
	if !ok {
		s.logger.Warn("failing endpoint's deliveries still retrying at the drain timeout", "at_least", last)
	}
	return nil
}

// failingOutstanding counts the failing endpoints' deliveries that are
// pending or retrying, one at most per endpoint and status (enough to
// tell whether any are).
func (s *scenario) failingOutstanding(ctx context.Context) (int, error) {
	n := 0
	for i, b := range s.spec.behaviours {
		if b != Failing {
			continue
		}
		for _, st := range []hooklinev1.DeliveryStatus{hooklinev1.DeliveryStatus_DELIVERY_STATUS_PENDING, hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING} {
			c, err := s.countDeliveries(ctx, st, s.subIDs[i], 1)
			if err != nil {
				return n, err
			}
			n += c
		}
	}
	return n, nil
}

// countDeliveries counts the tenant's deliveries with status (to subID
// when set), stopping once it has seen limit (0: no limit).
func (s *scenario) countDeliveries(ctx context.Context, status hooklinev1.DeliveryStatus, subID string, limit int) (int, error) {
	n := 0
	err := s.listDeliveries(ctx, status, subID, func(*hooklinev1.Delivery) bool {
		n++
		return limit == 0 || n < limit
	})
	return n, err
}

// listDeliveries calls fn for each of the tenant's deliveries with status
// (to subID when set), page by page, until fn returns false.
func (s *scenario) listDeliveries(ctx context.Context, status hooklinev1.DeliveryStatus, subID string, fn func(*hooklinev1.Delivery) bool) error {
	token := ""
	for {
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		page, err := s.admin.ListDeliveries(cctx, &hooklinev1.ListDeliveriesRequest{
			Tenant: tenant, SubscriptionId: subID, Status: status, PageSize: 1000, PageToken: token,
		})
		cancel()
		if err != nil {
			return fmt.Errorf("list %s deliveries: %w", status, err)
		}
		for _, d := range page.GetDeliveries() {
			if !fn(d) {
				return nil
			}
		}
		if token = page.GetNextPageToken(); token == "" {
			return nil
		}
	}
}

// pairKey is an (event, subscription) pair.
type pairKey struct {
	seq int64
	sub int
}

// storeStatuses returns the pairs the admin API lists with each of the
// given statuses.
func (s *scenario) storeStatuses(ctx context.Context, statuses ...hooklinev1.DeliveryStatus) (map[pairKey]bool, int, error) {
	seqOf := make(map[string]int64, len(s.log.ids))
	for seq, id := range s.log.ids {
		if id != "" {
			seqOf[id] = int64(seq)
		}
	}
	subOf := make(map[string]int, len(s.subIDs))
	for i, id := range s.subIDs {
		subOf[id] = i
	}
	out := map[pairKey]bool{}
	unknown := 0
	for _, st := range statuses {
		err := s.listDeliveries(ctx, st, "", func(d *hooklinev1.Delivery) bool {
			seq, ok1 := seqOf[d.GetEventId()]
			sub, ok2 := subOf[d.GetSubscriptionId()]
			if !ok1 || !ok2 {
				unknown++
				return true
			}
			out[pairKey{seq, sub}] = true
			return true
		})
		if err != nil {
			return nil, 0, err
		}
	}
	return out, unknown, nil
}

// settleLedger builds the scenario's ledger from the event log, the
// receiver and the admin API, and fails the scenario if it shows a
// problem.
func (s *scenario) settleLedger(ctx context.Context) error {
	l := &s.res.Ledger
	dead, err := s.deadPairs(ctx)
	if err != nil {
		return err
	}
	// Ask for queued pairs only when some pair is neither delivered nor dead.
	var queued map[pairKey]bool
	if s.anyUndelivered(dead) && s.sys.alive() == nil {
		queued, _, err = s.storeStatuses(ctx, hooklinev1.DeliveryStatus_DELIVERY_STATUS_PENDING,
			hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING, hooklinev1.DeliveryStatus_DELIVERY_STATUS_PARKED)
		if err != nil {
			return err
		}
	}
	expected := s.tallyPairs(l, dead, queued)
	s.tallyReceiver(l, expected)
	s.reportLedger(l)
	return nil
}

// deadPairs returns the pairs the admin API lists as dead, noting dead
// deliveries of events the harness did not publish; it is nil when
// Hookline is no longer running.
func (s *scenario) deadPairs(ctx context.Context) (map[pairKey]bool, error) {
	if s.sys.alive() != nil {
		return nil, nil
	}
	dead, unknown, err := s.storeStatuses(ctx, hooklinev1.DeliveryStatus_DELIVERY_STATUS_DEAD)
	if err != nil {
		return nil, err
	}
	if unknown > 0 {
		s.note("%d dead deliveries of events the harness did not publish", unknown)
	}
	return dead, nil
}

// anyUndelivered reports whether some pair of an accepted event was
// neither received nor listed in dead.
func (s *scenario) anyUndelivered(dead map[pairKey]bool) bool {
	for seq := range s.log.len() {
		if s.log.state[seq] != evAccepted {
			continue
		}
		for _, sub := range s.spec.targets(seq, s.all) {
			if recv, _ := s.rcv.Pair(sub, seq); recv == 0 && !dead[pairKey{seq, sub}] {
				return true
			}
		}
	}
	return false
}

// tallyPairs counts the events of the log in l, and gives each pair of an
// accepted event its outcome (delivered, else dead-lettered, queued or
// lost), counting pairs both delivered and dead, and receipts whose
// scheduled time is not the event's. It returns the pairs expected.
func (s *scenario) tallyPairs(l *Ledger, dead, queued map[pairKey]bool) map[pairKey]bool {
	expected := map[pairKey]bool{}
	for seq := range s.log.len() {
		switch s.log.state[seq] {
		case evAccepted:
			l.Events++
			l.Accepted++
		case evRejected:
			l.Events++
			l.Rejected++
			continue
		default:
			continue
		}
		for _, sub := range s.spec.targets(seq, s.all) {
			k := pairKey{seq, sub}
			expected[k] = true
			recv, sched := s.rcv.Pair(sub, seq)
			var o Outcome
			switch {
			case recv != 0:
				o = Delivered
				if dead[k] {
					l.DeadButDelivered++
				}
				if sched != s.log.sched[seq] {
					l.BadRequests++
				}
			case dead[k]:
				o = DeadLettered
			case queued[k]:
				o = Queued
			default:
				o = Lost
			}
			l.Add(s.spec.behaviours[sub], o)
		}
	}
	return expected
}

// tallyReceiver counts in l what the receiver saw beyond the pairs: pairs
// received that were not expected, duplicates, webhook-id changes and bad
// requests.
func (s *scenario) tallyReceiver(l *Ledger, expected map[pairKey]bool) {
	for i, ep := range s.rcv.eps[:len(s.spec.behaviours)] {
		ep.each(func(seq int64, sl slot) {
			if sl.ok > 0 && !expected[pairKey{seq, i}] {
				l.Unexpected++
			}
		})
		l.Duplicates += ep.duplicates.Load()
		l.IDMismatches += ep.idChanges.Load()
	}
	l.BadRequests += s.rcv.BadRequests()
}

// reportLedger fails the scenario with each of the ledger's problems and
// notes its remarkable but allowed counts.
func (s *scenario) reportLedger(l *Ledger) {
	for _, p := range l.Problems() {
		s.fail("%s", p)
	}
	if l.Unexpected > 0 {
		s.note("%d pairs received that were not expected (events rejected by ingest yet delivered, or a subscription the event type does not match)", l.Unexpected)
	}
	if l.Duplicates > 0 {
		s.note("%d duplicate deliveries (2xx answers beyond a pair's first)", l.Duplicates)
	}
	if l.DeadButDelivered > 0 {
		s.note("%d pairs delivered yet listed as dead", l.DeadButDelivered)
	}
	if l.SlowQueued > 0 {
		s.note("%d deliveries to the slow endpoint still queued in Hookline at the end (expected: it answers after %v)", l.SlowQueued, SlowDelay)
	}
}

// Delivery statuses the harness asks the admin API about.
const (
	statusPending  = hooklinev1.DeliveryStatus_DELIVERY_STATUS_PENDING
	statusRetrying = hooklinev1.DeliveryStatus_DELIVERY_STATUS_RETRYING
)
