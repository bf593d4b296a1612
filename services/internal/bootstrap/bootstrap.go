// Package bootstrap is the shared start-up of the service binaries: flags
// and HOOKLINE_* environment variables, logging, the store and broker
// connections, telemetry (package telemetry: OTEL_* variables), the
// /healthz, /readyz and /metrics endpoints, and signal handling.
// Each binary's main only names its service in the service table
// (package servicetable).
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/pkg/telemetry"
	"github.com/hookline/hookline/services/internal/broker"
	"github.com/hookline/hookline/services/internal/profiling"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// Config is what every service binary needs besides its own settings.
type Config struct {
	// Broker is the transport (--transport) and its connection and
	// stream settings: --nats-* or --kafka-*.
	Broker broker.Config
	// Store is where the store is: a postgres:// or postgresql:// URL, for
	// CockroachDB or PostgreSQL (see ParseStore). The service binaries do
	// not take SQLite, and do not link it.
	Store string
	// StoreMaxConns caps the store's connection pool; 0 means the pool's
	// default.
	StoreMaxConns int32
	// SecretKeys are the keys sealing signing secrets in the store.
	SecretKeys SecretKeys
	// StoreMigrate applies the store's pending migrations at start.
	// When false, start-up fails if the schema is behind.
	StoreMigrate bool
	// OpsAddr is where /healthz, /readyz and /metrics listen; empty turns
	// them off.
	OpsAddr string
	// Pprof also serves the runtime profiles (/debug/pprof/) on OpsAddr.
	Pprof bool
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is json or text.
	LogFormat string
}

// RegisterFlags registers the shared flags on fs.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	c.Broker.RegisterFlags(fs)
	fs.StringVar(&c.Store, "store", "", StoreUsage)
	c.SecretKeys.RegisterFlags(fs)
	fs.Int32Var(&c.StoreMaxConns, "store-max-conns", 0, "connection pool size of the store (0: the pool's default)")
	fs.BoolVar(&c.StoreMigrate, "store-migrate", false, "apply pending schema migrations of the store at start; when off, start-up fails on an outdated schema (run hookline migrate first, e.g. as a Job)")
	fs.StringVar(&c.OpsAddr, "ops-addr", ":9090", "address of /healthz, /readyz and /metrics (Prometheus) (empty: off)")
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve Go's runtime profiles (/debug/pprof/) on --ops-addr; they reveal internals, keep the address private")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
}

// Validate reports every problem with c, each naming its flag.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Broker.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := ParseStore(c.Store); err != nil {
		errs = append(errs, err)
	}
	if err := c.SecretKeys.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.StoreMaxConns < 0 {
		errs = append(errs, fmt.Errorf("--store-max-conns %d: must not be negative", c.StoreMaxConns))
	}
	if c.StoreMaxConns == 1 && c.StoreMigrate {
		// Migrating holds two connections: statements and lease renewal.
		errs = append(errs, errors.New("--store-max-conns 1: --store-migrate needs at least 2 connections"))
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: %w", c.LogLevel, err))
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format %q: must be json or text", c.LogFormat))
	}
	return errors.Join(errs...)
}

// FlagSet returns the flags of the service binary name, as its main parses
// them and docs/configuration.md documents them: the shared flags bound to
// boot, then the service's own, registered by svc (its configuration),
// each usage followed by its HOOKLINE_* variable. A bad flag exits with
// status 2; --help prints the usage and exits 0.
func FlagSet(name string, boot *Config, svc servicetable.Config) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ExitOnError)
	boot.RegisterFlags(fs)
	svc.RegisterFlags(fs)
	config.AnnotateUsage(fs)
	fs.Usage = func() { PrintUsage(fs.Output(), fs) }
	return fs
}

// PrintUsage writes the --help text of a service binary's flag set to w.
func PrintUsage(w io.Writer, fs *pflag.FlagSet) {
	fmt.Fprintf(w, `Usage: %s [flags]

Every flag can also be set with the HOOKLINE_* environment variable shown
beside it; a flag given on the command line wins over its variable, which
wins over the default. Durations use Go syntax (30s, 2m, 1h30m); lists are
comma-separated. Every invalid setting is reported at once, before start.
docs/configuration.md lists the same flags.

Flags:
%s`, fs.Name(), fs.FlagUsages())
}

// Main runs the service binary of svc: it parses the command line into the
// shared flags and the service's own, applies HOOKLINE_* variables,
// validates everything, connects, builds the service and runs it until
// SIGINT or SIGTERM. It exits the process with status 1 on failure.
func Main(svc servicetable.Service) {
	name := svc.Binary()
	var boot Config
	inst := svc.New()
	fs := FlagSet(name, &boot, inst.Config)
	if err := run(name, fs, &boot, inst); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Configure parses args into fs, sets the flags not given in args from
// their HOOKLINE_* variables (read with lookup, os.LookupEnv when nil), and
// validates boot and the service's configuration svc. Every variable that
// does not parse and every invalid setting is reported, joined.
func Configure(fs *pflag.FlagSet, args []string, lookup func(string) (string, bool), boot *Config, svc servicetable.Config) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	// A variable that does not parse leaves its flag at the default; it is
	// reported together with every invalid setting.
	if err := errors.Join(config.ApplyEnv(fs, lookup), boot.Validate(), svc.Validate()); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

func run(name string, fs *pflag.FlagSet, boot *Config, inst *servicetable.Instance) error {
	if err := Configure(fs, os.Args[1:], nil, boot, inst.Config); err != nil {
		return err
	}
	logger := newLogger(boot, name)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	loc, err := ParseStore(boot.Store)
	if err != nil {
		return err // Validate has reported it already.
	}
	ring, err := boot.SecretKeys.Load()
	if err != nil {
		return err // Validate has reported it already.
	}
	st, err := OpenStore(ctx, loc, StoreOptions{MaxConns: boot.StoreMaxConns, Migrate: boot.StoreMigrate, Keyring: ring}, logger)
	if err != nil {
		return fmt.Errorf("open store %s: %w", loc, err)
	}
	defer st.Close()
	logger.Info("store open", "store", loc.String())
	tel, err := telemetry.New(ctx, telemetry.Options{ServiceName: name, ServiceVersion: version()})
	if err != nil {
		return err
	}
	defer func() {
		// Spans not yet exported are flushed, within a bound: a collector
		// that does not answer must not hold the exit up.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			logger.Warn("flushing telemetry", "err", err)
		}
	}()
	tr, err := boot.Broker.Open(ctx, name, logger)
	if err != nil {
		return err
	}
	defer tr.Close()
	svc, err := inst.Build(servicetable.Deps{Store: st, Transport: tr, Logger: logger})
	if err != nil {
		return err
	}
	if boot.OpsAddr != "" {
		ops := &http.Server{Addr: boot.OpsAddr, Handler: OpsHandler(svc.Ready, boot.Pprof, tel.MetricsHandler()), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := ops.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("ops endpoint", "err", err)
			}
		}()
		defer ops.Close()
	}
	logger.Info("starting")
	return svc.Run(ctx)
}

// version is the module version the binary was built from ("(devel)"
// for a build from a work tree).
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// newLogger returns the process's logger as boot configures it, tagged with
// the binary's name (deps.Check adds the service's), and makes it the
// default. A line written in a traced context carries trace_id and span_id
// (telemetry.LogHandler).
func newLogger(boot *Config, name string) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(boot.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if boot.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	logger := slog.New(telemetry.LogHandler(h)).With("binary", name)
	slog.SetDefault(logger)
	return logger
}

// OpsHandler serves /healthz (the process is up) and /readyz (ready
// reports nil within two seconds), /metrics when metrics is not nil (the
// Prometheus text format, package telemetry), and with pprof the runtime
// profiles under /debug/pprof/.
func OpsHandler(ready func(context.Context) error, pprof bool, metrics http.Handler) http.Handler {
	mux := http.NewServeMux()
	if pprof {
		profiling.Register(mux)
	}
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}
