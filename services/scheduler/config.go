package scheduler

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"
)

// Config tunes the scheduler service. The zero value is not valid; start
// from DefaultConfig or RegisterFlags.
type Config struct {
	// PollInterval is how often due retries are looked for and parked
	// deliveries redriven. A due time announced by a signal is released at
	// its time; one whose signal was lost, at the next poll.
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
}

// DefaultConfig returns the defaults RegisterFlags sets.
func DefaultConfig() Config {
	return Config{
		PollInterval:      time.Second,
		ClaimLimit:        500,
		ClaimLease:        20 * time.Second,
		YieldBacklog:      500,
		MaxYield:          time.Minute,
		RedriveLimit:      500,
		Retention:         720 * time.Hour,
		RetentionInterval: 10 * time.Minute,
		PurgeBatch:        1000,
	}
}

// RegisterFlags registers every setting on fs as a scheduler-* flag, with
// DefaultConfig's values as defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.DurationVar(&c.PollInterval, "scheduler-poll-interval", d.PollInterval, "how often due retries are looked for and parked deliveries redriven (announced due times are released on time in between)")
	fs.IntVar(&c.ClaimLimit, "scheduler-claim-limit", d.ClaimLimit, "due retries claimed and published per batch")
	fs.DurationVar(&c.ClaimLease, "scheduler-claim-lease", d.ClaimLease, "how long claimed retries are held before another replica may take them (keep it below the broker's 30 s duplicate window)")
	fs.IntVar(&c.YieldBacklog, "scheduler-yield-backlog", d.YieldBacklog, "while more DELIVERIES messages than this wait for the delivery service, due retries yield to first attempts (up to --scheduler-max-yield); 0: never yield")
	fs.DurationVar(&c.MaxYield, "scheduler-max-yield", d.MaxYield, "longest a due retry yields to first attempts")
	fs.IntVar(&c.RedriveLimit, "scheduler-redrive-limit", d.RedriveLimit, "parked deliveries of enabled subscriptions redriven per poll")
	fs.DurationVar(&c.Retention, "scheduler-retention", d.Retention, "keep events, deliveries and attempts this long (0: keep forever)")
	fs.DurationVar(&c.RetentionInterval, "scheduler-retention-interval", d.RetentionInterval, "how often expired rows are purged")
	fs.IntVar(&c.PurgeBatch, "scheduler-purge-batch", d.PurgeBatch, "rows deleted per purge call")
}

// Validate reports every invalid setting, each naming its flag.
func (c *Config) Validate() error {
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
	return errors.Join(errs...)
}
