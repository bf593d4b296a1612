package ingest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/ssrf"
	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/services/internal/apikey"
	"github.com/hookline/hookline/services/internal/tenantlimit"
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
	// OperatorKeys are API keys with the operator scope given by
	// configuration, so an installation can act before any key is stored:
	// each the key itself or "sha256:" + the hex of its SHA-256.
	OperatorKeys []string
	// OperatorKeysFile names a file of more operator keys, one per line
	// (blank lines and # comments skipped), read at start.
	OperatorKeysFile string
	// AuthTokens are the plain bearer tokens of releases before API keys;
	// each is accepted as an operator key. Deprecated: use OperatorKeys.
	AuthTokens []string
	// InsecureNoAuth lets requests without credentials act as an operator.
	// For hookline dev on loopback only; a request that does present a key
	// is held to that key.
	InsecureNoAuth bool
	// KeyCacheTTL is how long a replica trusts what it read of a stored
	// API key: a revocation takes effect on every replica within it.
	KeyCacheTTL time.Duration
	// KeyLookupRate bounds, per second, the store lookups of API keys a
	// replica has not cached, so that a flood of made-up keys costs the
	// store a bounded number of queries; 0 means unbounded.
	KeyLookupRate float64
	// AllowCIDRs lists address ranges that subscription URLs may point into
	// even though they are special-purpose (loopback, private...).
	AllowCIDRs []string
	// TLS is the certificate, key and optional client CA bundle (mutual
	// TLS) of both API listeners; zero means plaintext.
	TLS tlsfiles.ServerConfig
	// Limits are the per-tenant publish rate and subscription limits.
	Limits tenantlimit.Config
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
		KeyCacheTTL:      5 * time.Second,
		KeyLookupRate:    200,
		Limits:           tenantlimit.DefaultConfig(),
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
	fs.StringSliceVar(&c.OperatorKeys, "ingest-operator-keys", nil, "operator API keys (every scope, every tenant), comma-separated: each the key or sha256:<hex of its SHA-256> (hookline keys new-operator makes one)")
	fs.StringVar(&c.OperatorKeysFile, "ingest-operator-keys-file", "", "file of operator API keys, one per line, in the form of --ingest-operator-keys")
	fs.StringSliceVar(&c.AuthTokens, "ingest-auth-tokens", nil, "deprecated: plain bearer tokens from before API keys, each accepted as an operator key; move them to --ingest-operator-keys")
	fs.BoolVar(&c.InsecureNoAuth, "ingest-insecure-no-auth", false, "let requests without credentials act as an operator (hookline dev on loopback only; never in production)")
	fs.StringVar(&c.TLS.CertFile, "ingest-tls-cert-file", "", "PEM certificate (chain) of the gRPC and HTTP listeners, re-read when it changes (empty: plaintext)")
	fs.StringVar(&c.TLS.KeyFile, "ingest-tls-key-file", "", "PEM private key of --ingest-tls-cert-file, re-read when it changes")
	fs.StringVar(&c.TLS.ClientCAFile, "ingest-tls-client-ca-file", "", "PEM CA bundle: clients must present a certificate it signed (mutual TLS); re-read when it changes")
	c.Limits.RegisterFlags(fs)
	fs.Float64Var(&c.KeyLookupRate, "ingest-key-lookup-rate", d.KeyLookupRate, "store lookups per second of API keys this replica has not cached (made-up keys included; beyond it such calls are Unavailable); 0: unbounded")
	fs.DurationVar(&c.KeyCacheTTL, "ingest-key-cache-ttl", d.KeyCacheTTL, "how long a replica trusts a stored API key it has read; a revocation takes effect everywhere within it")
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
		if len(tok) < apikey.MinLegacyLength {
			errs = append(errs, fmt.Errorf("--ingest-auth-tokens[%d]: shorter than %d characters", i, apikey.MinLegacyLength))
		}
	}
	if _, err := c.operatorHashes(); err != nil {
		errs = append(errs, err)
	}
	if err := c.TLS.Validate("ingest-tls-"); err != nil {
		errs = append(errs, err)
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.KeyLookupRate < 0 {
		errs = append(errs, fmt.Errorf("--ingest-key-lookup-rate %v: must not be negative", c.KeyLookupRate))
	}
	if c.KeyCacheTTL < 0 || c.KeyCacheTTL > time.Hour {
		errs = append(errs, fmt.Errorf("--ingest-key-cache-ttl %v: must be between 0s and 1h", c.KeyCacheTTL))
	}
	if _, err := ssrf.ParsePrefixes(c.AllowCIDRs); err != nil {
		errs = append(errs, fmt.Errorf("--ingest-allow-cidrs: %w", err))
	}
	if c.DefaultSecretTTL < 0 {
		errs = append(errs, fmt.Errorf("--ingest-previous-secret-ttl %v: must not be negative", c.DefaultSecretTTL))
	}
	return errors.Join(errs...)
}

// operatorHashes reads the configured operator keys (flag, file and
// deprecated tokens) into the hashes requests are compared with. Errors
// name the flag and entry but never echo a key.
func (c *Config) operatorHashes() ([][]byte, error) {
	var out [][]byte
	var errs []error
	for i, k := range c.OperatorKeys {
		h, err := apikey.ParseConfigured(k)
		if err != nil {
			errs = append(errs, fmt.Errorf("--ingest-operator-keys[%d]: %w", i, err))
			continue
		}
		out = append(out, h)
	}
	for _, tok := range c.AuthTokens {
		out = append(out, apikey.Hash(tok))
	}
	if c.OperatorKeysFile != "" {
		b, err := os.ReadFile(c.OperatorKeysFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--ingest-operator-keys-file: %w", err))
		}
		for n, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			h, err := apikey.ParseConfigured(line)
			if err != nil {
				errs = append(errs, fmt.Errorf("--ingest-operator-keys-file %s line %d: %w", c.OperatorKeysFile, n+1, err))
				continue
			}
			out = append(out, h)
		}
	}
	return out, errors.Join(errs...)
}

// maxHeaderBytes bounds the headers of one request, gRPC metadata and
// HTTP headers alike.
const maxHeaderBytes = 64 << 10

// maxMessageBytes bounds one gRPC request message: a full batch of full
// payloads and 1 MiB for the other fields, at most 64 MiB.
func (c *Config) maxMessageBytes() int {
	return min(c.MaxPayloadBytes*c.MaxBatchEvents+1<<20, 64<<20)
}

// maxHTTPBodyBytes bounds one HTTP/JSON request body: the gRPC bound with
// payloads in base64 (4 bytes for 3) and 64 KiB for names and escapes.
func (c *Config) maxHTTPBodyBytes() int64 {
	return int64(c.maxMessageBytes())*4/3 + 64<<10
}
