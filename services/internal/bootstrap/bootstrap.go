// Package bootstrap is the shared start-up of the service binaries: flags
// and HOOKLINE_* environment variables, logging, the store and broker
// connections, the /healthz and /readyz endpoint, and signal handling.
// Each binary's main only names its service.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/internal/deps"
)

// Config is what every service binary needs besides its own settings.
type Config struct {
	NATSURL   string
	Store     string
	OpsAddr   string
	LogLevel  string
	LogFormat string
}

// RegisterFlags registers the shared flags on fs.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.NATSURL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	fs.StringVar(&c.Store, "store", "", "store location: sqlite:PATH (CockroachDB arrives with the crdb store)")
	fs.StringVar(&c.OpsAddr, "ops-addr", ":9090", "address of /healthz and /readyz (empty: off)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
}

// Validate reports every problem with c, each naming its flag.
func (c Config) Validate() error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, errors.New("--nats-url: must not be empty"))
	}
	if !strings.HasPrefix(c.Store, "sqlite:") || len(c.Store) == len("sqlite:") {
		errs = append(errs, fmt.Errorf("--store %q: want sqlite:PATH", c.Store))
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

// Deps are the connections handed to a service constructor.
type Deps = deps.Deps

// Service is what a service constructor returns.
type Service interface {
	Run(ctx context.Context) error
	Ready(ctx context.Context) error
}

// Main parses args into fs (which holds the shared flags of boot and the
// service's own), applies HOOKLINE_* variables, validates everything with
// validate, connects, builds the service with build and runs it until
// SIGINT or SIGTERM. It exits the process with status 1 on failure.
func Main(name string, fs *pflag.FlagSet, boot *Config, validate func() error, build func(Deps) (Service, error)) {
	config.AnnotateUsage(fs)
	if err := run(name, fs, boot, validate, build); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name string, fs *pflag.FlagSet, boot *Config, validate func() error, build func(Deps) (Service, error)) error {
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if err := config.ApplyEnv(fs, nil); err != nil {
		return err
	}
	if err := errors.Join(boot.Validate(), validate()); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(boot.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, opts)
	if boot.LogFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, opts)
	}
	logger := slog.New(h).With("service", name)
	slog.SetDefault(logger)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	st, err := sqlite.Open(ctx, strings.TrimPrefix(boot.Store, "sqlite:"), logger)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	tr, err := natsjs.New(ctx, natsjs.Config{URL: boot.NATSURL, Name: name}, logger)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer tr.Close()
	svc, err := build(Deps{Store: st, Transport: tr, Logger: logger})
	if err != nil {
		return err
	}
	if boot.OpsAddr != "" {
		ops := &http.Server{Addr: boot.OpsAddr, Handler: OpsHandler(svc.Ready), ReadHeaderTimeout: 5 * time.Second}
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

// OpsHandler serves /healthz (the process is up) and /readyz (ready
// reports nil within two seconds).
func OpsHandler(ready func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
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
