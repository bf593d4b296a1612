package delivery

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/retry"
	"github.com/hookline/hookline/pkg/ssrf"
)

// Config tunes the delivery service. The zero value is not valid; start
// from DefaultConfig or RegisterFlags.
type Config struct {
	// Concurrency is how many deliveries this replica works on at once.
	Concurrency int
	// AckWait is how long the broker waits for an acknowledgement before
	// redelivering; it must exceed MaxTimeout.
	AckWait time.Duration
	// MaxAckPending bounds unacknowledged messages across the consumer
	// group; 0 lets the transport choose.
	MaxAckPending int
	// Timeout bounds an attempt when the subscription sets none.
	Timeout time.Duration
	// MaxTimeout caps a subscription's own Timeout.
	MaxTimeout time.Duration
	// MaxResponseBody is how much of a response body is stored.
	MaxResponseBody int
	// MaxDrain is how much more of a response body is read and discarded
	// so the connection can be reused; longer bodies close it.
	MaxDrain int64
	// AllowCIDRs are destination prefixes allowed despite the SSRF guard
	// (CIDRs or bare IPs), e.g. 127.0.0.0/8 for local development.
	AllowCIDRs []string
	// MaxIdleConns bounds idle keep-alive connections in total.
	MaxIdleConns int
	// MaxIdleConnsPerHost bounds idle keep-alive connections per endpoint.
	MaxIdleConnsPerHost int
	// IdleConnTimeout closes keep-alive connections idle that long.
	IdleConnTimeout time.Duration
	// TLSHandshakeTimeout bounds a TLS handshake.
	TLSHandshakeTimeout time.Duration
	// MaxInFlightPerEndpoint caps concurrent requests to one subscription,
	// so a slow endpoint cannot take every worker.
	MaxInFlightPerEndpoint int
	// OverCapDelay is the least a delivery the endpoint cannot take now
	// (over the in-flight cap or the rate limit) waits before it is offered
	// again; it waits longer behind the endpoint's queue (see Postponing in
	// the package documentation).
	OverCapDelay time.Duration
	// OverCapMaxDelay is the furthest ahead such a delivery is scheduled,
	// however long the endpoint's queue.
	OverCapMaxDelay time.Duration
	// MaxHeldPerEndpoint is how many postponed deliveries of one endpoint
	// this replica holds until due (see holds); further ones
	// are put off through the store, so that an endpoint's backlog never
	// fills the consumer's MaxAckPending.
	MaxHeldPerEndpoint int
	// DisableAfter disables a subscription failing continuously for longer;
	// 0 means never.
	DisableAfter time.Duration
	// RetrySchedule is the delay before each retry of a subscription that
	// has no schedule of its own; its length is the number of retries.
	RetrySchedule []time.Duration
	// RetryJitter spreads each retry delay by up to this fraction either
	// way (0 to 1), so that deliveries failed together do not come back
	// together.
	RetryJitter float64
	// BatchSize is the most attempt results written in one store call.
	BatchSize int
	// BatchLinger is how long a batch waits for more results.
	BatchLinger time.Duration
	// BatchFlushers is how many batches may be written at once.
	BatchFlushers int
	// ErrorBackoff is the redelivery delay after the store or the broker
	// failed.
	ErrorBackoff time.Duration
	// SubscriptionRefresh is how often the subscription cache reloads.
	SubscriptionRefresh time.Duration
	// ShutdownGrace is how long in-flight attempts may finish after Run's
	// context is cancelled before they are abandoned (and redelivered).
	ShutdownGrace time.Duration
}

// DefaultConfig returns the defaults RegisterFlags sets.
func DefaultConfig() Config {
	return Config{
		Concurrency:            256,
		AckWait:                2 * time.Minute,
		Timeout:                15 * time.Second,
		MaxTimeout:             60 * time.Second,
		MaxResponseBody:        4 << 10,
		MaxDrain:               64 << 10,
		MaxIdleConns:           8192,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxInFlightPerEndpoint: 32,
		OverCapDelay:           50 * time.Millisecond,
		OverCapMaxDelay:        5 * time.Minute,
		MaxHeldPerEndpoint:     128,
		DisableAfter:           120 * time.Hour,
		RetrySchedule:          slices.Clone(retry.DefaultSchedule),
		RetryJitter:            0.2,
		BatchSize:              256,
		BatchLinger:            2 * time.Millisecond,
		BatchFlushers:          2,
		ErrorBackoff:           5 * time.Second,
		SubscriptionRefresh:    time.Second,
		ShutdownGrace:          10 * time.Second,
	}
}

// RegisterFlags registers every setting on fs as a delivery-* flag, with
// DefaultConfig's values as defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.IntVar(&c.Concurrency, "delivery-concurrency", d.Concurrency, "deliveries worked on at once by this replica")
	fs.DurationVar(&c.AckWait, "delivery-ack-wait", d.AckWait, "time before an unacknowledged delivery is redelivered; must exceed --delivery-max-timeout")
	fs.IntVar(&c.MaxAckPending, "delivery-max-ack-pending", d.MaxAckPending, "unacknowledged deliveries across all replicas (0: transport default)")
	fs.DurationVar(&c.Timeout, "delivery-timeout", d.Timeout, "per-attempt timeout when the subscription sets none")
	fs.DurationVar(&c.MaxTimeout, "delivery-max-timeout", d.MaxTimeout, "cap on a subscription's per-attempt timeout")
	fs.IntVar(&c.MaxResponseBody, "delivery-max-response-body", d.MaxResponseBody, "bytes of each response body stored with the attempt")
	fs.Int64Var(&c.MaxDrain, "delivery-max-drain", d.MaxDrain, "further response bytes read and discarded to reuse the connection")
	fs.StringSliceVar(&c.AllowCIDRs, "delivery-allow-cidrs", d.AllowCIDRs, "destination CIDRs or IPs allowed despite the SSRF guard (e.g. 127.0.0.0/8 for local receivers); empty denies every private and special range")
	fs.IntVar(&c.MaxIdleConns, "delivery-max-idle-conns", d.MaxIdleConns, "idle keep-alive connections kept in total")
	fs.IntVar(&c.MaxIdleConnsPerHost, "delivery-max-idle-conns-per-host", d.MaxIdleConnsPerHost, "idle keep-alive connections kept per endpoint host")
	fs.DurationVar(&c.IdleConnTimeout, "delivery-idle-conn-timeout", d.IdleConnTimeout, "close keep-alive connections idle this long")
	fs.DurationVar(&c.TLSHandshakeTimeout, "delivery-tls-handshake-timeout", d.TLSHandshakeTimeout, "TLS handshake timeout")
	fs.IntVar(&c.MaxInFlightPerEndpoint, "delivery-max-in-flight-per-endpoint", d.MaxInFlightPerEndpoint, "concurrent requests per subscription in this replica; more are postponed behind the endpoint's queue")
	fs.DurationVar(&c.OverCapDelay, "delivery-over-cap-delay", d.OverCapDelay, "least wait of a delivery postponed over the per-endpoint cap or rate limit")
	fs.DurationVar(&c.OverCapMaxDelay, "delivery-over-cap-max-delay", d.OverCapMaxDelay, "furthest ahead a postponed delivery is scheduled, however long its endpoint's queue")
	fs.IntVar(&c.MaxHeldPerEndpoint, "delivery-max-held-per-endpoint", d.MaxHeldPerEndpoint, "postponed deliveries per endpoint held by this replica until due; more are put off through the store")
	fs.DurationVar(&c.DisableAfter, "delivery-disable-after", d.DisableAfter, "disable a subscription failing continuously for longer than this (0: never)")
	c.RetrySchedule = d.RetrySchedule
	fs.Var(&scheduleValue{p: &c.RetrySchedule}, "delivery-retry-schedule", "comma-separated delays before each retry, for subscriptions without their own schedule; its length is the number of retries, after which a delivery is dead-lettered")
	fs.Float64Var(&c.RetryJitter, "delivery-retry-jitter", d.RetryJitter, "spread each retry delay by up to this fraction either way (0 to 1)")
	fs.IntVar(&c.BatchSize, "delivery-batch-size", d.BatchSize, "attempt results written per store call at most")
	fs.DurationVar(&c.BatchLinger, "delivery-batch-linger", d.BatchLinger, "how long a batch of attempt results waits to fill up")
	fs.IntVar(&c.BatchFlushers, "delivery-batch-flushers", d.BatchFlushers, "attempt batches written at once")
	fs.DurationVar(&c.ErrorBackoff, "delivery-error-backoff", d.ErrorBackoff, "redelivery delay when the store or broker fails")
	fs.DurationVar(&c.SubscriptionRefresh, "delivery-subscription-refresh", d.SubscriptionRefresh, "how often the subscription cache reloads")
	fs.DurationVar(&c.ShutdownGrace, "delivery-shutdown-grace", d.ShutdownGrace, "on shutdown, how long in-flight attempts may finish before they are abandoned and redelivered")
}

// scheduleValue adapts a retry schedule to pflag, parsed by
// retry.ParseSchedule.
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

// Validate reports every invalid setting, each naming its flag. It is one
// flat list of checks, a line or two per setting, and as long as the list
// of settings.
func (c *Config) Validate() error {
	var errs []error
	positive := func(name string, v int64) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("--%s: must be positive, got %d", name, v))
		}
	}
	positiveDur := func(name string, v time.Duration) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("--%s: must be positive, got %s", name, v))
		}
	}
	positive("delivery-concurrency", int64(c.Concurrency))
	positiveDur("delivery-ack-wait", c.AckWait)
	if c.MaxAckPending < 0 {
		errs = append(errs, fmt.Errorf("--delivery-max-ack-pending: must not be negative, got %d", c.MaxAckPending))
	}
	positiveDur("delivery-timeout", c.Timeout)
	positiveDur("delivery-max-timeout", c.MaxTimeout)
	if c.Timeout > c.MaxTimeout && c.MaxTimeout > 0 {
		errs = append(errs, fmt.Errorf("--delivery-timeout %s: exceeds --delivery-max-timeout %s", c.Timeout, c.MaxTimeout))
	}
	if c.AckWait > 0 && c.MaxTimeout > 0 && c.AckWait <= c.MaxTimeout+5*time.Second {
		errs = append(errs, fmt.Errorf("--delivery-ack-wait %s: must exceed --delivery-max-timeout %s by more than 5s", c.AckWait, c.MaxTimeout))
	}
	positive("delivery-max-response-body", int64(c.MaxResponseBody))
	if c.MaxDrain < 0 {
		errs = append(errs, fmt.Errorf("--delivery-max-drain: must not be negative, got %d", c.MaxDrain))
	}
	if _, err := ssrf.ParsePrefixes(c.AllowCIDRs); err != nil {
		errs = append(errs, fmt.Errorf("--delivery-allow-cidrs: %w", err))
	}
	positive("delivery-max-idle-conns", int64(c.MaxIdleConns))
	positive("delivery-max-idle-conns-per-host", int64(c.MaxIdleConnsPerHost))
	positiveDur("delivery-idle-conn-timeout", c.IdleConnTimeout)
	positiveDur("delivery-tls-handshake-timeout", c.TLSHandshakeTimeout)
	positive("delivery-max-in-flight-per-endpoint", int64(c.MaxInFlightPerEndpoint))
	positiveDur("delivery-over-cap-delay", c.OverCapDelay)
	positiveDur("delivery-over-cap-max-delay", c.OverCapMaxDelay)
	if c.OverCapDelay > c.OverCapMaxDelay && c.OverCapMaxDelay > 0 {
		errs = append(errs, fmt.Errorf("--delivery-over-cap-delay %s: exceeds --delivery-over-cap-max-delay %s", c.OverCapDelay, c.OverCapMaxDelay))
	}
	if c.MaxHeldPerEndpoint < 0 {
		errs = append(errs, fmt.Errorf("--delivery-max-held-per-endpoint: must not be negative, got %d", c.MaxHeldPerEndpoint))
	}
	if c.DisableAfter < 0 {
		errs = append(errs, fmt.Errorf("--delivery-disable-after: must not be negative, got %s", c.DisableAfter))
	}
	if _, err := retry.ParseSchedule(retry.FormatSchedule(c.RetrySchedule)); err != nil {
		errs = append(errs, fmt.Errorf("--delivery-retry-schedule: %w", err))
	}
	if !(c.RetryJitter >= 0 && c.RetryJitter <= 1) {
		errs = append(errs, fmt.Errorf("--delivery-retry-jitter: must be between 0 and 1, got %v", c.RetryJitter))
	}
	positive("delivery-batch-size", int64(c.BatchSize))
	positiveDur("delivery-batch-linger", c.BatchLinger)
	positive("delivery-batch-flushers", int64(c.BatchFlushers))
	positiveDur("delivery-error-backoff", c.ErrorBackoff)
	positiveDur("delivery-subscription-refresh", c.SubscriptionRefresh)
	if c.ShutdownGrace < 0 {
		errs = append(errs, fmt.Errorf("--delivery-shutdown-grace: must not be negative, got %s", c.ShutdownGrace))
	}
	return errors.Join(errs...)
}
