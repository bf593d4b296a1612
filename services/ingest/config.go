package ingest

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/ssrf"
)

// Config is everything the ingest service needs to know at start-up.
type Config struct {
	// GRPCAddr is where the gRPC API (ingest + admin, health, reflection)
	// listens. Port 0 picks a free port.
	GRPCAddr string
	// HTTPAddr is where the JSON/HTTP API, /healthz, /readyz and
	// /openapi.json listen. Empty disables the HTTP listener.
	HTTPAddr string
	// MaxPayloadBytes caps an event's payload.
	MaxPayloadBytes int
	// MaxBatchEvents caps the events of one PublishBatch call.
	MaxBatchEvents int
	// AuthTokens are the bearer tokens accepted; empty disables
	// authentication (for local development only).
	AuthTokens []string
	// AllowCIDRs lists address ranges that subscription URLs may point into
	// even though they are special-purpose (loopback, private...).
	AllowCIDRs []string
	// DefaultSecretTTL is how long a rotated-out secret keeps signing when
	// the request does not say.
	DefaultSecretTTL time.Duration
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		GRPCAddr:         ":7070",
		HTTPAddr:         ":7080",
		MaxPayloadBytes:  256 << 10,
		MaxBatchEvents:   500,
		DefaultSecretTTL: 24 * time.Hour,
	}
}

// RegisterFlags registers the ingest flags on fs with the defaults of
// DefaultConfig.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.StringVar(&c.GRPCAddr, "ingest-grpc-addr", d.GRPCAddr, "address of the gRPC API (ingest, admin, health, reflection)")
	fs.StringVar(&c.HTTPAddr, "ingest-http-addr", d.HTTPAddr, "address of the JSON/HTTP API, /healthz, /readyz and /openapi.json (empty: off)")
	fs.IntVar(&c.MaxPayloadBytes, "ingest-max-payload-bytes", d.MaxPayloadBytes, "largest event payload accepted, in bytes")
	fs.IntVar(&c.MaxBatchEvents, "ingest-max-batch-events", d.MaxBatchEvents, "most events accepted in one PublishBatch call")
	fs.StringSliceVar(&c.AuthTokens, "ingest-auth-tokens", nil, "bearer tokens accepted by the API, comma-separated (empty: no authentication)")
	fs.StringSliceVar(&c.AllowCIDRs, "ingest-allow-cidrs", nil, "address ranges subscription URLs may use although special-purpose (e.g. 127.0.0.0/8), comma-separated")
	fs.DurationVar(&c.DefaultSecretTTL, "ingest-previous-secret-ttl", d.DefaultSecretTTL, "how long a rotated-out signing secret keeps signing by default")
}

// Validate reports every problem with c, each naming its flag.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.GRPCAddr); err != nil {
		errs = append(errs, fmt.Errorf("--ingest-grpc-addr %q: %w", c.GRPCAddr, err))
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			errs = append(errs, fmt.Errorf("--ingest-http-addr %q: %w", c.HTTPAddr, err))
		}
	}
	if c.MaxPayloadBytes < 1 || c.MaxPayloadBytes > 16<<20 {
		errs = append(errs, fmt.Errorf("--ingest-max-payload-bytes %d: must be between 1 and %d", c.MaxPayloadBytes, 16<<20))
	}
	if c.MaxBatchEvents < 1 || c.MaxBatchEvents > 10000 {
		errs = append(errs, fmt.Errorf("--ingest-max-batch-events %d: must be between 1 and 10000", c.MaxBatchEvents))
	}
	for i, tok := range c.AuthTokens {
		if len(tok) < 16 {
			errs = append(errs, fmt.Errorf("--ingest-auth-tokens[%d]: shorter than 16 characters", i))
		}
	}
	if _, err := ssrf.ParsePrefixes(c.AllowCIDRs); err != nil {
		errs = append(errs, fmt.Errorf("--ingest-allow-cidrs: %w", err))
	}
	if c.DefaultSecretTTL < 0 {
		errs = append(errs, fmt.Errorf("--ingest-previous-secret-ttl %v: must not be negative", c.DefaultSecretTTL))
	}
	return errors.Join(errs...)
}
