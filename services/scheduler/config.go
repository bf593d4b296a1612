package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/retry"
)

// Config tunes the scheduler service. The zero value is not valid; start
// from DefaultConfig or RegisterFlags.
type Config struct {
	// Concurrency is how many RETRIES messages this replica handles at once.
	Concurrency int
	// AckWait is how long the broker waits for an acknowledgement before
	// redelivering a RETRIES message.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged RETRIES messages across the group;
	// 0 lets the transport choose.
	MaxAckPending int
	// DefaultSchedule is the retry schedule of subscriptions without one.
	DefaultSchedule []time.Duration
	// Jitter spreads each delay by ±this fraction (0 to 1).
	Jitter float64
	// PollInterval is how often due retries are released and parked
	// deliveries redriven.
	PollInterval time.Duration
	// ClaimLimit is how many due retries one claim takes.
	ClaimLimit int
	// ClaimLease is how long claimed retries stay with this replica before
	// another may take them (should it die before publishing them).
	ClaimLease time.Duration
	// YieldBacklog makes due retries yield to first attempts: while more
	// than this many DELIVERIES messages wait for the delivery service
	// (transport.Transport.Backlog), only retries overdue by MaxYield are
	// released. 0 releases every due retry at once.
	YieldBacklog int
	// MaxYield is the longest a due retry waits for the delivery queue to
	// shorten.
	MaxYield time.Duration
	// RedriveLimit is how many parked deliveries one poll redrives.
	RedriveLimit int
	// Retention is how long events, deliveries and attempts are kept; 0
	// disables purging.
	Retention time.Duration
	// RetentionInterval is how often the purge runs.
	RetentionInterval time.Duration
	// PurgeBatch is how many rows one purge call deletes at most.
	PurgeBatch int
	// BatchSize is the most schedule/dead-letter writes in one store call.
	BatchSize int
	// BatchLinger is how long a batch waits for more writes.
	BatchLinger time.Duration
	// ErrorBackoff is the redelivery delay after the store or the broker
	// failed.
	ErrorBackoff time.Duration
	// SubscriptionRefresh is how often the subscription cache reloads.
	SubscriptionRefresh time.Duration
}

// DefaultConfig returns the defaults RegisterFlags sets.
func DefaultConfig() Config {
	return Config{
		Concurrency:         64,
		AckWait:             30 * time.Second,
		DefaultSchedule:     slices.Clone(retry.DefaultSchedule),
		Jitter:              0.2,
		PollInterval:        time.Second,
		ClaimLimit:          500,
		ClaimLease:          20 * time.Second,
		YieldBacklog:        500,
		MaxYield:            time.Minute,
		RedriveLimit:        500,
		Retention:           720 * time.Hour,
		RetentionInterval:   10 * time.Minute,
		PurgeBatch:          1000,
		BatchSize:           256,
		BatchLinger:         2 * time.Millisecond,
		ErrorBackoff:        5 * time.Second,
		SubscriptionRefresh: time.Second,
	}
}

// scheduleValue adapts a schedule to pflag, parsed by retry.ParseSchedule.
type scheduleValue struct{ p *[]time.Duration }

func (v *scheduleValue) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return retry.FormatSchedule(*v.p)
}

func (v *scheduleValue) Set(s string) error {
	d, err := retry.ParseSchedule(s)
	if err != nil {
		return err
	}
	*v.p = d
	return nil
}

func (v *scheduleValue) Type() string { return "durations" }

// RegisterFlags registers every setting on fs as a scheduler-* flag, with
// DefaultConfig's values as defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.Concurrency, "scheduler-concurrency", d.Concurrency, "retry requests handled at once by this replica")
	fs.DurationVar(&c.AckWait, "scheduler-ack-wait", d.AckWait, "time before an unacknowledged retry request is redelivered")
	fs.IntVar(&c.MaxAckPending, "scheduler-max-ack-pending", d.MaxAckPending, "unacknowledged retry requests across all replicas (0: transport default)")
	c.DefaultSchedule = d.DefaultSchedule
	fs.Var(&scheduleValue{p: &c.DefaultSchedule}, "scheduler-default-schedule", "comma-separated delays before each retry, for subscriptions without their own schedule; its length is the number of retries")
	fs.Float64Var(&c.Jitter, "scheduler-jitter", d.Jitter, "spread each retry delay by up to this fraction either way (0 to 1)")
	fs.DurationVar(&c.PollInterval, "scheduler-poll-interval", d.PollInterval, "how often due retries are released and parked deliveries redriven")
	fs.IntVar(&c.ClaimLimit, "scheduler-claim-limit", d.ClaimLimit, "due retries claimed and published per batch")
	fs.DurationVar(&c.ClaimLease, "scheduler-claim-lease", d.ClaimLease, "how long claimed retries are held before another replica may take them (keep it below the broker's 30 s duplicate window)")
	fs.IntVar(&c.YieldBacklog, "scheduler-yield-backlog", d.YieldBacklog, "while more DELIVERIES messages than this wait for the delivery service, due retries yield to first attempts (up to --scheduler-max-yield); 0: never yield")
	fs.DurationVar(&c.MaxYield, "scheduler-max-yield", d.MaxYield, "longest a due retry yields to first attempts")
	fs.IntVar(&c.RedriveLimit, "scheduler-redrive-limit", d.RedriveLimit, "parked deliveries of enabled subscriptions redriven per poll")
	fs.DurationVar(&c.Retention, "scheduler-retention", d.Retention, "keep events, deliveries and attempts this long (0: keep forever)")
	fs.DurationVar(&c.RetentionInterval, "scheduler-retention-interval", d.RetentionInterval, "how often expired rows are purged")
	fs.IntVar(&c.PurgeBatch, "scheduler-purge-batch", d.PurgeBatch, "rows deleted per purge call")
	fs.IntVar(&c.BatchSize, "scheduler-batch-size", d.BatchSize, "retry schedules written per store call at most")
	fs.DurationVar(&c.BatchLinger, "scheduler-batch-linger", d.BatchLinger, "how long a batch of retry schedules waits to fill up")
	fs.DurationVar(&c.ErrorBackoff, "scheduler-error-backoff", d.ErrorBackoff, "redelivery delay when the store or broker fails")
	fs.DurationVar(&c.SubscriptionRefresh, "scheduler-subscription-refresh", d.SubscriptionRefresh, "how often the subscription cache reloads")
}

// Validate reports every invalid setting, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("--%s: must be positive, got %d", name, v))
		}
	}
	positiveDur := func(name string, v time.Duration) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("--%s: must be positive, got %s", name, v))
		}
	}
	positive("scheduler-concurrency", c.Concurrency)
	positiveDur("scheduler-ack-wait", c.AckWait)
	if c.MaxAckPending < 0 {
		errs = append(errs, fmt.Errorf("--scheduler-max-ack-pending: must not be negative, got %d", c.MaxAckPending))
	}
	if _, err := retry.ParseSchedule(retry.FormatSchedule(c.DefaultSchedule)); err != nil {
		errs = append(errs, fmt.Errorf("--scheduler-default-schedule: %w", err))
	}
	if !(c.Jitter >= 0 && c.Jitter <= 1) {
		errs = append(errs, fmt.Errorf("--scheduler-jitter: must be between 0 and 1, got %v", c.Jitter))
	}
	positiveDur("scheduler-poll-interval", c.PollInterval)
	positive("scheduler-claim-limit", c.ClaimLimit)
	positiveDur("scheduler-claim-lease", c.ClaimLease)
	if c.YieldBacklog < 0 {
		errs = append(errs, fmt.Errorf("--scheduler-yield-backlog: must not be negative, got %d", c.YieldBacklog))
	}
	if c.YieldBacklog > 0 {
		positiveDur("scheduler-max-yield", c.MaxYield)
	}
	positive("scheduler-redrive-limit", c.RedriveLimit)
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("--scheduler-retention: must not be negative, got %s", c.Retention))
	}
	if c.Retention > 0 {
		positiveDur("scheduler-retention-interval", c.RetentionInterval)
	}
	positive("scheduler-purge-batch", c.PurgeBatch)
	positive("scheduler-batch-size", c.BatchSize)
	positiveDur("scheduler-batch-linger", c.BatchLinger)
	positiveDur("scheduler-error-backoff", c.ErrorBackoff)
	positiveDur("scheduler-subscription-refresh", c.SubscriptionRefresh)
	return errors.Join(errs...)
}
