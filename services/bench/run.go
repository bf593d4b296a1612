package bench

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"time"
)

// Run runs the baseline, every configured scenario in order, and the
// baseline again, and returns the report. An error means the harness
// itself could not run (a missing binary, a port it could not bind); a
// scenario whose ledger does not balance is reported as FAILED in the
// report, which is then Failed too.
func Run(ctx context.Context, cfg Config, logger *slog.Logger) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	rep := &Report{Started: time.Now().UTC(), Machine: ReadMachine(), Settings: cfg.settings()}
	var kfake string
	if cfg.Transport == TransportKafka {
		var err error
		if kfake, err = cfg.kfakeServerPath(); err != nil {
			return nil, err
		}
		rep.Settings.KfakeServer = kfake
		logger.Info("transport: kafka on kfake-server, a Kafka-protocol test broker in one process (not Kafka)", "kfake_server", kfake)
	}
	pprof, err := DevSupportsPprof(ctx, cfg.Hookline)
	if err != nil {
		return nil, err
	}
	rep.Settings.Pprof = pprof
	if !pprof {
		rep.Notes = append(rep.Notes, fmt.Sprintf("goroutine counts skipped: %s dev has no %s flag", cfg.Hookline, PprofFlag))
	}
	if err := rep.runBaseline(ctx, cfg, logger, "before"); err != nil {
		return nil, err
	}
	if cfg.FloorMessages > 0 && (cfg.Stack == StackDev || cfg.Transport == TransportKafka) {
		fc := FloorConfig{Dir: cfg.WorkDir, Messages: cfg.FloorMessages, Transport: cfg.Transport, KfakeServer: kfake,
			SkipStore: cfg.Stack == StackMultiprocess}
		logger.Info("floor: the pipeline's parts alone", "messages", cfg.FloorMessages, "transport", cfg.Transport, "store", !fc.SkipStore)
		if rep.Floor, err = RunFloor(ctx, fc, logger); err != nil {
			return nil, err
		}
	}
	var halfRate10 float64
	for _, name := range AllScenarios {
		if !slices.Contains(cfg.Scenarios, name) {
			continue
		}
		logger.Info("scenario", "name", name)
		half := 0.0
		if name == ScenarioSlow || name == ScenarioFailing {
			half = halfRate10
		}
		host, err := hostSpeed(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: host speed: %w", name, err)
		}
		res, err := runScenario(ctx, cfg, pprof, name, half, logger)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		res.HostPOSTsPerSec = host
		if name == ScenarioFanout1to10 && res.Latency != nil {
			halfRate10 = res.Latency.EventsPerSec
		}
		logger.Info("scenario done", "name", name, "status", res.Status, "seconds", round(res.Seconds))
		rep.Scenarios = append(rep.Scenarios, *res)
	}
	if err := rep.runBaseline(ctx, cfg, logger, "after"); err != nil {
		return nil, err
	}
	rep.derive()
	rep.Harness = ProcUsage{CPUSeconds: round3(selfCPU()), PeakRSSBytes: selfPeakRSS()}
	rep.Seconds = round(time.Since(rep.Started).Seconds())
	return rep, nil
}

// runBaseline runs the baseline and records it as the report's run when.
func (r *Report) runBaseline(ctx context.Context, cfg Config, logger *slog.Logger, when string) error {
	res, err := baselineOnOwnReceiver(ctx, cfg.BaselinePosts, cfg.BaselineWorkers)
	if err != nil {
		return err
	}
	res.PerSecond = round(res.PerSecond)
	res.Seconds = round3(res.Seconds)
	res.CPUSeconds = round3(res.CPUSeconds)
	logger.Info("baseline", "when", when, "posts", res.Posts, "per_s", res.PerSecond)
	r.Baseline.Runs = append(r.Baseline.Runs, res)
	r.Baseline.PerSecond = math.Max(r.Baseline.PerSecond, res.PerSecond)
	return nil
}

// baselineOnOwnReceiver runs RunBaseline against a receiver started for it
// and stopped afterwards.
func baselineOnOwnReceiver(ctx context.Context, posts, workers int) (BaselineResult, error) {
	rcv, err := NewReceiver(nil)
	if err != nil {
		return BaselineResult{}, err
	}
	if err := rcv.Up(); err != nil {
		return BaselineResult{}, err
	}
	defer func() { _ = rcv.Down() }()
	return RunBaseline(ctx, rcv, posts, workers)
}

// hostSpeed runs cfg.HostCheckPosts POSTs of the baseline and returns
// their rate (0 when HostCheckPosts is 0).
func hostSpeed(ctx context.Context, cfg Config) (float64, error) {
	if cfg.HostCheckPosts == 0 {
		return 0, nil
	}
	res, err := baselineOnOwnReceiver(ctx, cfg.HostCheckPosts, cfg.BaselineWorkers)
	return round(res.PerSecond), err
}

// derive computes the ratios, the comparisons with fan-out 1→10 and the
// overall status.
func (r *Report) derive() {
	base := r.Baseline.PerSecond
	if r.Floor != nil {
		r.Floor.derive(r.Baseline, r.Machine.Cores)
	}
	var ref, one *ScenarioResult
	for i := range r.Scenarios {
		switch r.Scenarios[i].Name {
		case ScenarioFanout1to10:
			ref = &r.Scenarios[i]
		case ScenarioFanout1to1:
			one = &r.Scenarios[i]
		}
	}
	for i := range r.Scenarios {
		s := &r.Scenarios[i]
		if s.Status != StatusOK {
			r.Failed = true
		}
		s.Transport = r.transportCheck(s)
		if s.Max != nil && base > 0 {
			s.Max.Ratio = round3(s.Max.HealthyPerSec / base)
		}
		if s.Backlog != nil && base > 0 {
			s.Backlog.Ratio = round3(s.Backlog.DrainPerSec / base)
		}
		if s.Backlog != nil && one != nil && one.HostPOSTsPerSec > 0 && s.HostPOSTsPerSec > 0 {
			s.Backlog.HostSpeedChange = round3(s.HostPOSTsPerSec/one.HostPOSTsPerSec - 1)
		}
		if (s.Name == ScenarioSlow || s.Name == ScenarioFailing) && ref != nil {
			c := &Comparison{Against: ref.Name}
			if s.Latency != nil && ref.Latency != nil && ref.Latency.Latency.P99Ms > 0 {
				c.P99Ratio = round3(s.Latency.Latency.P99Ms / ref.Latency.Latency.P99Ms)
			}
			if s.Max != nil && ref.Max != nil && ref.Max.EventsPerSec > 0 {
				c.ThroughputChange = round3(s.Max.EventsPerSec/ref.Max.EventsPerSec - 1)
			} else if ref.Max != nil {
				c.ThroughputChange = -1
			}
			if s.HostPOSTsPerSec > 0 && ref.HostPOSTsPerSec > 0 {
				c.HostSpeedChange = round3(s.HostPOSTsPerSec/ref.HostPOSTsPerSec - 1)
			}
			c.StepEventsPerSec, c.StepP99Ratio = stepComparison(s.Steps, ref.Steps)
			s.Compare = c
		}
	}
}

// TransportBottleneckRatio is the share of the broker hops' rate alone
// (the floor's) from which a scenario's rate counts the transport as its
// bottleneck: the transport alone would carry little more than the whole
// pipeline did.
const TransportBottleneckRatio = 0.7

// Bottleneck verdicts of a TransportCheck.
const (
	BottleneckYes     = "yes"
	BottleneckNo      = "no"
	BottleneckUnknown = "unknown"
)

// transportCheck relates scenario s to the floor's broker hops and to its
// broker process's CPU time; nil for a failed scenario or one with no
// figure to relate.
func (r *Report) transportCheck(s *ScenarioResult) *TransportCheck {
	if s.Status != StatusOK {
		return nil
	}
	c := &TransportCheck{Broker: r.Settings.Broker, Bottleneck: BottleneckUnknown}
	switch {
	case s.Backlog != nil:
		c.Path, c.PerSec = "retry", s.Backlog.DrainPerSec
	case s.Max != nil:
		c.Path, c.PerSec = "1→"+strconv.Itoa(s.Fanout), s.Max.DeliveriesPerSec
	default:
		return nil
	}
	if f := r.Floor; f != nil {
		c.HopsPerSec = map[string]float64{"1→1": f.Hops1to1, "1→10": f.Hops1to10, "retry": f.HopsRetry}[c.Path]
	}
	if m := s.Max; m != nil {
		c.BrokerCPUUs, c.BrokerCores = m.BrokerCPUPerDeliveryUs, m.BrokerCores
		if m.CPUPerDeliveryUs > 0 {
			c.BrokerShare = round3(m.BrokerCPUPerDeliveryUs / m.CPUPerDeliveryUs)
		}
	}
	for _, st := range s.Steps {
		c.PeakBrokerCores = math.Max(c.PeakBrokerCores, st.BrokerCores)
	}
	if c.HopsPerSec == 0 && c.BrokerCPUUs == 0 {
		return nil
	}
	if c.HopsPerSec > 0 && c.PerSec > 0 {
		c.Ratio = round3(c.PerSec / c.HopsPerSec)
		c.Bottleneck = BottleneckNo
		if c.Ratio >= TransportBottleneckRatio {
			c.Bottleneck = BottleneckYes
		}
	}
	return c
}

// settings returns the report's view of c.
func (c Config) settings() Settings {
	return Settings{
		Stack: c.stackDescription(), StackName: c.Stack, Transport: cmp.Or(c.Transport, TransportNATS), Broker: c.brokerDescription(),
		Hookline: c.Hookline, DevArgs: c.DevArgs, Subscriptions: subscriptions, PayloadBytes: PayloadSize,
		StartRate: c.StartRate, RateFactor: c.RateFactor, StepSeconds: c.StepDuration.Seconds(), MaxSteps: c.MaxSteps,
		Refine: c.Refine, LatencySeconds: c.LatencyDuration.Seconds(), P99LimitMs: ms(c.P99Limit), GrowthLimit: c.GrowthLimit,
		DrainTimeoutSec: c.DrainTimeout.Seconds(), WarmupEvents: c.WarmupEvents, BacklogDeliveries: c.BacklogDeliveries,
		BacklogRetryDelay: c.BacklogRetryDelay.String(), Publishers: c.Publishers, Conns: c.Conns, MaxBatch: c.MaxBatch,
		IdempotencyKeys: c.IdempotencyKeys, BaselinePosts: c.BaselinePosts, BaselineWorkers: c.BaselineWorkers,
	}
}

// stackDescription says what Hookline ran as, on which broker.
func (c Config) stackDescription() string {
	switch {
	case c.Stack == StackMultiprocess && c.Transport == TransportKafka:
		return "the four service binaries as separate processes on a kfake-server process and PostgreSQL, fresh ones per scenario (kfake: " + kfakeIs + ")"
	case c.Stack == StackMultiprocess:
		return "the four service binaries as separate processes on nats-server (JetStream) and PostgreSQL, fresh ones per scenario"
	case c.Transport == TransportKafka:
		return "hookline dev --transport kafka (SQLite) on a kfake-server process, a fresh pair per scenario (kfake: " + kfakeIs + ")"
	}
	return "hookline dev (embedded NATS JetStream + SQLite), one fresh process per scenario"
}

// brokerDescription names the broker Hookline ran on.
func (c Config) brokerDescription() string {
	switch {
	case c.Transport == TransportKafka:
		return "kfake-server: " + kfakeIs
	case c.Stack == StackMultiprocess:
		return "nats-server (NATS JetStream)"
	}
	return "NATS JetStream embedded in hookline dev"
}

// stepComparison finds the highest rate at which both step series passed
// and returns it with the ratio of their p99 latencies there.
func stepComparison(steps, ref []StepResult) (rate, p99Ratio float64) {
	for _, a := range steps {
		if a.Verdict == nil || !a.Verdict.Pass || a.EventsPerSec <= rate {
			continue
		}
		for _, b := range ref {
			if b.Verdict != nil && b.Verdict.Pass && b.EventsPerSec == a.EventsPerSec && b.Latency.P99Ms > 0 {
				rate, p99Ratio = a.EventsPerSec, round3(a.Latency.P99Ms/b.Latency.P99Ms)
			}
		}
	}
	return rate, p99Ratio
}
