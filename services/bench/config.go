package bench

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/internal/broker"
)

// Transports the harness can run Hookline on (--transport).
const (
	// TransportNATS is NATS JetStream: the embedded server of `hookline
	// dev`, or a nats-server process on the multiprocess stack.
	TransportNATS = broker.NATS
	// TransportKafka is Hookline's Kafka transport on a kfake-server
	// process of its own per scenario: kfake is a Kafka-protocol test
	// broker in one process, NOT Kafka, and the figures say so.
	TransportKafka = broker.Kafka
)

// Scenario names, in the order they run.
const (
	ScenarioFanout1to1  = "fanout-1to1"
	ScenarioFanout1to10 = "fanout-1to10"
	ScenarioSlow        = "slow-endpoint"
	ScenarioFailing     = "failing-endpoint"
	ScenarioBacklog     = "backlog"
)

// AllScenarios lists every scenario in run order.
var AllScenarios = []string{ScenarioFanout1to1, ScenarioFanout1to10, ScenarioSlow, ScenarioFailing, ScenarioBacklog}

// Config is the harness's configuration. DefaultConfig gives the full run
// of `make bench`.
type Config struct {
	// Hookline is the path of the hookline binary to run as `hookline dev`.
	Hookline string
	// Stack is StackDev or StackMultiprocess. The multiprocess stack runs
	// the service binaries found beside Hookline on NATSServer and a fresh
	// database (one per scenario) of the PostgreSQL server at PostgresURL.
	Stack       string
	NATSServer  string
	PostgresURL string
	// Transport is TransportNATS ("" too) or TransportKafka. On Kafka each
	// scenario starts a kfake-server process (KfakeServer; "": the one
	// beside Hookline) on a free loopback port before Hookline and stops
	// it after, and the floor's broker hops run through package kafka
	// against a kfake-server process of their own.
	Transport   string
	KfakeServer string
	// Scenarios to run, a subset of AllScenarios (run in that order).
	Scenarios []string

	// StartRate is the first step's offered rate in deliveries per second
	// (events per second times the fan-out).
	StartRate float64
	// RateFactor multiplies the rate after each passing step.
	RateFactor float64
	// StepDuration is each step's load time.
	StepDuration time.Duration
	// MaxSteps bounds the steps of one scenario, refinement included.
	MaxSteps int
	// Refine is how many steps bisect between the last passing and the
	// first failing rate.
	Refine int
	// LatencyDuration is the load time of the latency run at half the
	// maximum sustainable rate.
	LatencyDuration time.Duration
	// P99Limit and GrowthLimit are the step criteria (see Criteria).
	P99Limit    time.Duration
	GrowthLimit float64
	// DrainTimeout bounds each wait for outstanding deliveries: between
	// steps and at the end of a scenario.
	DrainTimeout time.Duration
	// WarmupEvents are published (at 100/s) and delivered before a
	// scenario's first step; they count in its ledger, not its figures.
	WarmupEvents int

	// BaselinePosts and BaselineWorkers configure the baseline, run before
	// and after the scenarios.
	BaselinePosts   int
	BaselineWorkers int
	// HostCheckPosts are the POSTs of a short baseline run right before
	// each scenario, so that the slow and failing endpoints are compared
	// with fan-out 1→10 at equal host speed (0: compare the raw maxima).
	HostCheckPosts int
	// FloorMessages are the messages per stream, and the deliveries per
	// store shape, of the floor: the pipeline's mandatory parts measured
	// alone after the first baseline (dev stack only, and on Kafka the
	// multiprocess stack too, broker hops only; 0 skips it).
	FloorMessages int

	// BacklogDeliveries is the backlog built while the receiver is down
	// (events fanned out to all subscriptions, so BacklogDeliveries/10
	// events); BacklogRetryDelay is every entry of the backlog
	// subscriptions' 100-retry schedule; BacklogTimeout bounds building
	// and draining it, each.
	BacklogDeliveries int
	BacklogRetryDelay time.Duration
	BacklogTimeout    time.Duration
	// GoroutineSettle is how long after the drain the backlog scenario
	// counts Hookline's goroutines a second time: by default longer than
	// hookline dev's --delivery-idle-conn-timeout (90 s), so that idle
	// keep-alive connections to the receiver (two goroutines each) have
	// closed and what remains is growth.
	GoroutineSettle time.Duration

	// Publishers are concurrent PublishBatch callers over Conns gRPC
	// connections, each call carrying at most MaxBatch events.
	Publishers int
	Conns      int
	MaxBatch   int
	// IdempotencyKeys gives every event an idempotency key.
	IdempotencyKeys bool

	// DevArgs are extra arguments of `hookline dev`, after the harness's.
	DevArgs []string
	// DevLogLevel is `hookline dev --log-level`.
	DevLogLevel string
	// WorkDir holds each scenario's data directory and log ("": the
	// system's temporary directory); KeepData keeps them.
	WorkDir  string
	KeepData bool

	// ResultsDir gets <timestamp>.json of every run (""; none); JSONPath
	// and MarkdownPath, when set, get the last run's JSON and the
	// generated section of the benchmark document.
	ResultsDir   string
	JSONPath     string
	MarkdownPath string
}

// DefaultConfig returns the settings of the full run.
func DefaultConfig() Config {
	return Config{
		Hookline:          "bin/hookline",
		Stack:             StackDev,
		NATSServer:        "nats-server",
		Transport:         TransportNATS,
		PostgresURL:       "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		Scenarios:         slices.Clone(AllScenarios),
		StartRate:         500,
		RateFactor:        1.5,
		StepDuration:      10 * time.Second,
		MaxSteps:          12,
		Refine:            3,
		LatencyDuration:   15 * time.Second,
		P99Limit:          time.Second,
		GrowthLimit:       0.05,
		DrainTimeout:      60 * time.Second,
		WarmupEvents:      200,
		BaselinePosts:     100_000,
		BaselineWorkers:   64,
		FloorMessages:     50_000,
		HostCheckPosts:    50_000,
		BacklogDeliveries: 100_000,
		BacklogRetryDelay: time.Second,
		BacklogTimeout:    5 * time.Minute,
		GoroutineSettle:   100 * time.Second,
		Publishers:        32,
		Conns:             4,
		MaxBatch:          100,
		DevLogLevel:       "info",
	}
}

// RegisterFlags registers every setting on fs, with c's values as
// defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Hookline, "hookline", c.Hookline, "path of the hookline binary run as 'hookline dev'")
	fs.StringVar(&c.Stack, "stack", c.Stack, "Hookline under test: dev ('hookline dev': embedded NATS + SQLite) or multiprocess (the four service binaries beside --hookline, on nats-server, or kfake-server with --transport kafka, and PostgreSQL)")
	fs.StringVar(&c.NATSServer, "nats-server", c.NATSServer, "nats-server executable of the multiprocess stack")
	fs.StringVar(&c.Transport, "transport", c.Transport, "Hookline's transport: nats (embedded in hookline dev, or nats-server on the multiprocess stack) or kafka (a kfake-server process per scenario: a Kafka-protocol test broker in one process, NOT Kafka; figures are labelled kfake)")
	fs.StringVar(&c.KfakeServer, "kfake-server", c.KfakeServer, "kfake-server executable of --transport kafka (default: kfake-server beside --hookline)")
	fs.StringVar(&c.PostgresURL, "postgres-url", c.PostgresURL, "PostgreSQL server of the multiprocess stack, where each scenario creates (and drops) a database of its own")
	fs.StringSliceVar(&c.Scenarios, "scenarios", c.Scenarios, "scenarios to run: "+strings.Join(AllScenarios, ","))
	fs.Float64Var(&c.StartRate, "start-rate", c.StartRate, "first step's offered deliveries per second")
	fs.Float64Var(&c.RateFactor, "rate-factor", c.RateFactor, "rate multiplier after each passing step")
	fs.DurationVar(&c.StepDuration, "step-duration", c.StepDuration, "load time of each step")
	fs.IntVar(&c.MaxSteps, "max-steps", c.MaxSteps, "most steps per scenario, refinement included")
	fs.IntVar(&c.Refine, "refine", c.Refine, "steps bisecting between the last passing and the first failing rate")
	fs.DurationVar(&c.LatencyDuration, "latency-duration", c.LatencyDuration, "load time of the latency run at half the maximum sustainable rate")
	fs.DurationVar(&c.P99Limit, "p99-limit", c.P99Limit, "a step whose p99 latency exceeds this fails")
	fs.Float64Var(&c.GrowthLimit, "growth-limit", c.GrowthLimit, "a step fails when its backlog grows faster than this fraction of the offered rate")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "longest wait for outstanding deliveries between steps and at a scenario's end")
	fs.IntVar(&c.WarmupEvents, "warmup-events", c.WarmupEvents, "events delivered before a scenario's first step (in its ledger, not its figures)")
	fs.IntVar(&c.BaselinePosts, "baseline-posts", c.BaselinePosts, "POSTs of each baseline run")
	fs.IntVar(&c.BaselineWorkers, "baseline-workers", c.BaselineWorkers, "concurrent workers of the baseline client")
	fs.IntVar(&c.HostCheckPosts, "host-check-posts", c.HostCheckPosts, "POSTs of the short baseline before each scenario that measures the host's speed at the time (0: none)")
	fs.IntVar(&c.FloorMessages, "floor-messages", c.FloorMessages, "messages per stream and deliveries per store shape of the floor, the pipeline's parts measured alone (dev stack; on kafka also the multiprocess stack, broker hops only; 0: skip)")
	fs.IntVar(&c.BacklogDeliveries, "backlog-deliveries", c.BacklogDeliveries, "deliveries queued while the receiver is down in the backlog scenario (a multiple of 10)")
	fs.DurationVar(&c.BacklogRetryDelay, "backlog-retry-delay", c.BacklogRetryDelay, "every delay of the backlog subscriptions' 100-retry schedule")
	fs.DurationVar(&c.BacklogTimeout, "backlog-timeout", c.BacklogTimeout, "longest time to build, and to drain, the backlog")
	fs.DurationVar(&c.GoroutineSettle, "goroutine-settle", c.GoroutineSettle, "wait after the backlog drained before counting goroutines again")
	fs.IntVar(&c.Publishers, "publishers", c.Publishers, "concurrent PublishBatch calls")
	fs.IntVar(&c.Conns, "conns", c.Conns, "gRPC connections to ingest")
	fs.IntVar(&c.MaxBatch, "max-batch", c.MaxBatch, "most events per PublishBatch call")
	fs.BoolVar(&c.IdempotencyKeys, "idempotency-keys", c.IdempotencyKeys, "give every event an idempotency key")
	fs.StringArrayVar(&c.DevArgs, "dev-arg", c.DevArgs, "extra argument of 'hookline dev' (repeatable), e.g. --dev-arg=--delivery-concurrency=512")
	fs.StringVar(&c.DevLogLevel, "dev-log-level", c.DevLogLevel, "log level of 'hookline dev'")
	fs.StringVar(&c.WorkDir, "work-dir", c.WorkDir, "directory for the scenarios' data and logs (default: the system's temporary directory)")
	fs.BoolVar(&c.KeepData, "keep-data", c.KeepData, "keep the scenarios' data directories and logs")
	fs.StringVar(&c.ResultsDir, "results-dir", c.ResultsDir, "directory receiving <timestamp>.json of each run (empty: none)")
	fs.StringVar(&c.JSONPath, "json", c.JSONPath, "file receiving the run's JSON (empty: none)")
	fs.StringVar(&c.MarkdownPath, "markdown", c.MarkdownPath, "markdown file whose generated section is rewritten (empty: none)")
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Hookline == "" {
		bad("--hookline: must not be empty")
	}
	if c.Stack != StackDev && c.Stack != StackMultiprocess {
		bad("--stack %q: want %s or %s", c.Stack, StackDev, StackMultiprocess)
	}
	if c.Transport != TransportNATS && c.Transport != TransportKafka && c.Transport != "" {
		bad("--transport %q: want %s or %s", c.Transport, TransportNATS, TransportKafka)
	}
	if c.KfakeServer != "" && c.Transport != TransportKafka {
		bad("--kfake-server: applies to --transport %s only", TransportKafka)
	}
	if c.Stack == StackMultiprocess && len(c.DevArgs) > 0 {
		bad("--dev-arg: applies to the dev stack only")
	}
	if len(c.Scenarios) == 0 {
		bad("--scenarios: name at least one of %s", strings.Join(AllScenarios, ","))
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			bad("--scenarios: unknown scenario %q (known: %s)", s, strings.Join(AllScenarios, ","))
		}
	}
	if c.StartRate <= 0 {
		bad("--start-rate: must be positive")
	}
	if c.RateFactor <= 1 {
		bad("--rate-factor: must exceed 1")
	}
	for name, d := range map[string]time.Duration{
		"--step-duration": c.StepDuration, "--latency-duration": c.LatencyDuration, "--p99-limit": c.P99Limit,
		"--drain-timeout": c.DrainTimeout, "--goroutine-settle": c.GoroutineSettle, "--backlog-retry-delay": c.BacklogRetryDelay, "--backlog-timeout": c.BacklogTimeout,
	} {
		if d <= 0 {
			bad("%s: must be positive", name)
		}
	}
	if c.MaxSteps < 1 {
		bad("--max-steps: must be at least 1")
	}
	if c.Refine < 0 || c.WarmupEvents < 0 {
		bad("--refine and --warmup-events: must not be negative")
	}
	if c.GrowthLimit <= 0 {
		bad("--growth-limit: must be positive")
	}
	if c.BaselinePosts < 1 || c.BaselineWorkers < 1 {
		bad("--baseline-posts and --baseline-workers: must be positive")
	}
	if c.FloorMessages < 0 || c.HostCheckPosts < 0 {
		bad("--floor-messages and --host-check-posts: must not be negative")
	}
	if c.BacklogDeliveries < subscriptions || c.BacklogDeliveries%subscriptions != 0 {
		bad("--backlog-deliveries: must be a positive multiple of %d", subscriptions)
	}
	if c.Publishers < 1 || c.Conns < 1 || c.MaxBatch < 1 {
		bad("--publishers, --conns and --max-batch: must be positive")
	}
	return errors.Join(errs...)
}
