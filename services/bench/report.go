package bench

import "time"

// Report is the result of one harness run, written as JSON and rendered
// as a table and a markdown section.
type Report struct {
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	// Baseline holds the baseline runs (before and after the scenarios)
	// and the rate every ratio is taken against: the higher of them, so a
	// slower neighbour during one run cannot flatter Hookline.
	Baseline Baseline `json:"baseline"`
	// Floor is the pipeline's mandatory parts measured alone, and the
	// rate they would allow (nil when skipped).
	Floor     *FloorResult     `json:"floor,omitempty"`
	Scenarios []ScenarioResult `json:"scenarios"`
	// Harness is the harness process's own CPU time and peak RSS over the
	// whole run (load generator, receiver and baseline client).
	Harness ProcUsage `json:"harness"`
	Failed  bool      `json:"failed"`
	Notes   []string  `json:"notes,omitempty"`
}

// Baseline is the same-run reference rate.
type Baseline struct {
	Runs      []BaselineResult `json:"runs"`
	PerSecond float64          `json:"per_second"`
}

// Settings are the configuration figures a report depends on.
type Settings struct {
	Stack     string `json:"stack"`
	StackName string `json:"stack_name"`
	// Transport is TransportNATS or TransportKafka; Broker says which
	// broker ran (on Kafka: kfake, a Kafka-protocol test broker, not
	// Kafka), KfakeServer which kfake-server executable.
	Transport         string   `json:"transport"`
	Broker            string   `json:"broker"`
	KfakeServer       string   `json:"kfake_server,omitempty"`
	Hookline          string   `json:"hookline"`
	DevArgs           []string `json:"dev_args,omitempty"`
	Pprof             bool     `json:"pprof"`
	Subscriptions     int      `json:"subscriptions"`
	PayloadBytes      int      `json:"payload_bytes"`
	StartRate         float64  `json:"start_rate"`
	RateFactor        float64  `json:"rate_factor"`
	StepSeconds       float64  `json:"step_seconds"`
	MaxSteps          int      `json:"max_steps"`
	Refine            int      `json:"refine"`
	LatencySeconds    float64  `json:"latency_seconds"`
	P99LimitMs        float64  `json:"p99_limit_ms"`
	GrowthLimit       float64  `json:"growth_limit"`
	DrainTimeoutSec   float64  `json:"drain_timeout_seconds"`
	WarmupEvents      int      `json:"warmup_events"`
	BacklogDeliveries int      `json:"backlog_deliveries"`
	BacklogRetryDelay string   `json:"backlog_retry_delay"`
	Publishers        int      `json:"publishers"`
	Conns             int      `json:"conns"`
	MaxBatch          int      `json:"max_batch"`
	IdempotencyKeys   bool     `json:"idempotency_keys"`
	BaselinePosts     int      `json:"baseline_posts"`
	BaselineWorkers   int      `json:"baseline_workers"`
}

// ScenarioResult is one scenario, run on its own fresh `hookline dev`.
type ScenarioResult struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	// Status is "ok" or "FAILED"; Problems says why it failed.
	Status   string   `json:"status"`
	Problems []string `json:"problems,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Seconds  float64  `json:"seconds"`

	// Fanout is the subscriptions each event matches; Healthy those of
	// them that answer at once (the figures are about them).
	Fanout  int `json:"fanout"`
	Healthy int `json:"healthy_fanout"`

	Steps []StepResult `json:"steps,omitempty"`
	// Max is the maximum sustainable rate: the last passing step.
	Max *MaxRate `json:"max,omitempty"`
	// Latency is the run at half the maximum sustainable rate (for the
	// slow and failing endpoint scenarios, half of fan-out 1→10's).
	Latency *StepResult `json:"latency,omitempty"`
	// Compare relates the healthy endpoints' figures to fan-out 1→10's.
	Compare *Comparison `json:"compare,omitempty"`
	// Backlog is the backlog scenario's result.
	Backlog *BacklogResult `json:"backlog,omitempty"`

	Ledger    Ledger          `json:"ledger"`
	Endpoints []EndpointStats `json:"endpoints"`
	// Hookline is the `hookline dev` process (or the multiprocess stack's
	// processes, broker included; on Kafka with kfake-server's) at the
	// scenario's end; Harness the harness's CPU time during the scenario.
	// HostPOSTsPerSec is the rate of a short baseline run right before
	// the scenario: the host's speed at the time (0: not measured).
	HostPOSTsPerSec float64   `json:"host_posts_per_second,omitempty"`
	Hookline        ProcUsage `json:"hookline"`
	// Broker is the broker's own process (nats-server or kfake-server) at
	// the scenario's end, already counted in Hookline; nil when the broker
	// is embedded in Hookline.
	Broker            *ProcUsage `json:"broker,omitempty"`
	HarnessCPUSeconds float64    `json:"harness_cpu_seconds"`
	Goroutines        []Sample   `json:"goroutines,omitempty"`
	// Transport tells whether the transport was the scenario's
	// bottleneck (nil when there is nothing to tell it by).
	Transport *TransportCheck `json:"transport_check,omitempty"`
}

// TransportCheck relates a scenario's rate to what its transport carries
// alone: the floor's broker hops at the scenario's fan-out, measured in
// the same run, and what the broker's own process spent in the scenario's
// fastest passing step.
type TransportCheck struct {
	// Broker names the broker (see Settings.Broker).
	Broker string `json:"broker"`
	// Path is which of the floor's hop rates applies: "1→1", "1→10" or
	// "retry" (the backlog drains through the DELIVERIES hop alone).
	Path string `json:"path"`
	// PerSec is the scenario's maximum sustainable deliveries per second
	// (all its deliveries, unhealthy endpoints' included, since they all
	// go through the broker), or the backlog's drain rate.
	PerSec float64 `json:"deliveries_per_second"`
	// HopsPerSec is the floor's broker hops alone on Path (0: no floor);
	// Ratio is PerSec over it.
	HopsPerSec float64 `json:"broker_hops_alone_per_second,omitempty"`
	Ratio      float64 `json:"ratio_to_hops,omitempty"`
	// BrokerCPUUs is the broker process's CPU time per delivery in the
	// fastest passing step, BrokerShare its share of the stack's, and
	// BrokerCores the cores it kept busy then (0: embedded or not
	// measured); PeakBrokerCores is the most of any step.
	BrokerCPUUs     float64 `json:"broker_cpu_us_per_delivery,omitempty"`
	BrokerShare     float64 `json:"broker_cpu_share,omitempty"`
	BrokerCores     float64 `json:"broker_cores,omitempty"`
	PeakBrokerCores float64 `json:"peak_broker_cores,omitempty"`
	// Bottleneck is "yes" when PerSec reached TransportBottleneckRatio of
	// HopsPerSec (the transport alone carries little more than the whole
	// pipeline did), "no" below it, "unknown" without a floor.
	Bottleneck string `json:"bottleneck"`
}

// Sample is a named measurement, such as a goroutine count at a moment.
type Sample struct {
	At    string `json:"at"`
	Value int64  `json:"value"`
}

// MaxRate is a scenario's maximum sustainable rate.
type MaxRate struct {
	EventsPerSec     float64 `json:"events_per_second"`
	DeliveriesPerSec float64 `json:"deliveries_per_second"`
	HealthyPerSec    float64 `json:"healthy_deliveries_per_second"`
	// Ratio is DeliveriesPerSec (HealthyPerSec when some endpoints are
	// unhealthy) over the baseline's rate.
	Ratio float64 `json:"ratio_to_baseline"`
	// Saturated is false when no step failed, so the figure is a lower
	// bound set by the step count, not by Hookline.
	Saturated bool `json:"saturated"`
	// CPUPerDelivery is Hookline's CPU time per delivery in the last
	// passing step, in microseconds.
	CPUPerDeliveryUs float64 `json:"hookline_cpu_us_per_delivery"`
	// BrokerCPUPerDeliveryUs is the part of it the broker's own process
	// spent (0: embedded), and BrokerCores the cores that process kept
	// busy in that step.
	BrokerCPUPerDeliveryUs float64 `json:"broker_cpu_us_per_delivery,omitempty"`
	BrokerCores            float64 `json:"broker_cores,omitempty"`
}

// StepResult is one load period at a fixed offered rate.
type StepResult struct {
	Kind             string  `json:"kind"` // "step" or "latency"
	EventsPerSec     float64 `json:"events_per_second"`
	DeliveriesPerSec float64 `json:"deliveries_per_second"`
	HealthyPerSec    float64 `json:"healthy_deliveries_per_second"`
	Seconds          float64 `json:"seconds"`
	Events           int     `json:"events"`
	Accepted         int64   `json:"accepted"`
	Rejected         int64   `json:"rejected"`
	PublishCalls     int64   `json:"publish_calls"`
	// PublishLagMs is how long after the last event's scheduled time the
	// last publish call returned.
	PublishLagMs float64 `json:"publish_lag_ms"`
	// DeliveredPerSec counts healthy pairs received during the load
	// period, per second of it.
	DeliveredPerSec float64 `json:"delivered_per_second"`
	// Latency of the healthy pairs, scheduled time to first 2xx receipt.
	Latency    LatencySummary `json:"latency"`
	BacklogMax float64        `json:"backlog_max"`
	Verdict    *Verdict       `json:"verdict,omitempty"`
	// FailingOutstandingAtStart says that a failing endpoint still had
	// deliveries pending or retrying when the load began; the harness
	// waits for them to be dead-lettered first, so it is a defect of the
	// run (and noted as a problem).
	FailingOutstandingAtStart bool `json:"failing_outstanding_at_start,omitempty"`

	HooklineCPUSeconds float64 `json:"hookline_cpu_seconds"`
	HarnessCPUSeconds  float64 `json:"harness_cpu_seconds"`
	HooklineRSSBytes   int64   `json:"hookline_rss_bytes"`
	// BrokerCPUSeconds is the part of HooklineCPUSeconds the broker's own
	// process spent (0: embedded), BrokerCores the cores it kept busy over
	// the step and its wait for deliveries.
	BrokerCPUSeconds float64 `json:"broker_cpu_seconds,omitempty"`
	BrokerCores      float64 `json:"broker_cores,omitempty"`
}

// Comparison relates a scenario's healthy endpoints to fan-out 1→10.
type Comparison struct {
	Against string `json:"against"`
	// P99Ratio is the healthy p99 at the same offered rate over 1→10's.
	P99Ratio float64 `json:"p99_ratio"`
	// ThroughputChange is the maximum sustainable events per second over
	// 1→10's, minus one (-0.1: 10% fewer).
	ThroughputChange float64 `json:"throughput_change"`
	// HostSpeedChange is the host's speed before this scenario over its
	// speed before 1→10's, minus one: context for ThroughputChange, not a
	// correction of it (a short baseline tracks the host over a scenario
	// too loosely to correct by).
	HostSpeedChange float64 `json:"host_speed_change,omitempty"`
	// StepEventsPerSec is the highest rate at which both passed a step,
	// and StepP99Ratio the healthy p99 of that step over 1→10's.
	StepEventsPerSec float64 `json:"step_events_per_second,omitempty"`
	StepP99Ratio     float64 `json:"step_p99_ratio,omitempty"`
}

// BacklogResult is the backlog scenario's figures.
type BacklogResult struct {
	Deliveries     int64   `json:"deliveries"`
	PublishSeconds float64 `json:"publish_seconds"`
	// BuildSeconds runs from the first publish until every delivery had
	// failed at least once (the admin API lists them all as retrying).
	BuildSeconds float64 `json:"build_seconds"`
	// DrainSeconds runs from the receiver coming back until the last
	// backlog delivery arrived; DrainPerSec is Deliveries over it.
	FirstReceiptMs float64 `json:"first_receipt_ms"`
	DrainSeconds   float64 `json:"drain_seconds"`
	DrainPerSec    float64 `json:"drain_per_second"`
	Ratio          float64 `json:"ratio_to_baseline"`
	// HostSpeedChange is the host's speed before the backlog scenario
	// over its speed before fan-out 1→1's, minus one (context, as in
	// Comparison).
	HostSpeedChange float64 `json:"host_speed_change_vs_1to1,omitempty"`
	// PeakRSSBytes is Hookline's VmHWM at the end; RSS samples taken while
	// the backlog built and drained.
	PeakRSSBytes      int64 `json:"peak_rss_bytes"`
	RSSAtBuiltBytes   int64 `json:"rss_when_built_bytes"`
	RSSAfterDrainByte int64 `json:"rss_after_drain_bytes"`
	Drained           bool  `json:"drained"`
	// GoroutineGrowth lists the largest changes of Hookline's goroutines
	// per entry function from before the load to after the drain.
	GoroutineGrowth string `json:"goroutine_growth,omitempty"`
}

// EndpointStats are one endpoint's receiver counts over a scenario.
type EndpointStats struct {
	Index      int    `json:"index"`
	Behaviour  string `json:"behaviour"`
	Requests   int64  `json:"requests"`
	Delivered  int64  `json:"delivered"`
	Duplicates int64  `json:"duplicates"`
}
