// Package devserver runs the whole Hookline pipeline in one process on
// embedded dependencies: a real NATS JetStream server and a SQLite file,
// both kept in a data directory so a restart resumes where it stopped.
// It builds the four services with the same constructors the separate
// binaries use. Loopback receivers are allowed, so webhooks can be sent to
// `hookline listen` on the same machine.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/profiling"
	"github.com/hookline/hookline/services/internal/subcache"
	"github.com/hookline/hookline/services/scheduler"
)

// LoopbackCIDRs are allow-listed in development so local receivers work.
var LoopbackCIDRs = []string{"127.0.0.0/8", "::1/128"}

// Config is the development server's configuration: where to keep data,
// the embedded NATS port, and each service's own configuration.
type Config struct {
	DataDir  string
	NATSHost string
	NATSPort int
	// PprofAddr, if set, is where Go's runtime profiles are served
	// (/debug/pprof/), for profiling the pipeline under load.
	PprofAddr string
	Ingest    ingest.Config
	Fanout    fanout.Config
	Delivery  delivery.Config
	Scheduler scheduler.Config
}

// DefaultConfig returns the development defaults: every service's
// defaults, loopback allowed, and a local data directory.
func DefaultConfig() Config {
	c := Config{
		DataDir:   ".hookline",
		NATSHost:  "127.0.0.1",
		NATSPort:  -1,
		Ingest:    ingest.DefaultConfig(),
		Fanout:    fanout.DefaultConfig(),
		Delivery:  delivery.DefaultConfig(),
		Scheduler: scheduler.DefaultConfig(),
	}
	c.applyDevDefaults()
	return c
}

func (c *Config) applyDevDefaults() {
	c.Ingest.GRPCAddr = "127.0.0.1:7070"
	c.Ingest.HTTPAddr = "127.0.0.1:7080"
	c.Ingest.AllowCIDRs = LoopbackCIDRs
	c.Delivery.AllowCIDRs = LoopbackCIDRs
}

// RegisterFlags registers the development server's flags and every
// service's flags on fs, with development defaults.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", ".hookline", "directory holding the embedded NATS store and the SQLite database")
	fs.StringVar(&c.NATSHost, "nats-host", "127.0.0.1", "address the embedded NATS server listens on")
	fs.IntVar(&c.NATSPort, "nats-port", -1, "port of the embedded NATS server (-1: any free port)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "address to serve Go's runtime profiles (/debug/pprof/) on, e.g. 127.0.0.1:6060 (empty: off)")
	c.Ingest.RegisterFlags(fs)
	c.Fanout.RegisterFlags(fs)
	c.Delivery.RegisterFlags(fs)
	c.Scheduler.RegisterFlags(fs)
	// Development defaults differ from production ones.
	c.applyDevDefaults()
	for name, v := range map[string]string{
		"ingest-grpc-addr":     c.Ingest.GRPCAddr,
		"ingest-http-addr":     c.Ingest.HTTPAddr,
		"ingest-allow-cidrs":   "127.0.0.0/8,::1/128",
		"delivery-allow-cidrs": "127.0.0.0/8,::1/128",
	} {
		if f := fs.Lookup(name); f != nil {
			_ = f.Value.Set(v)
			f.DefValue = v
		}
	}
}

// Validate reports every problem with c and its services' configs.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: must not be empty"))
	}
	if c.NATSPort < -1 || c.NATSPort > 65535 {
		errs = append(errs, fmt.Errorf("--nats-port %d: must be -1 or a port number", c.NATSPort))
	}
	errs = append(errs, c.Ingest.Validate(), c.Fanout.Validate(), c.Delivery.Validate(), c.Scheduler.Validate())
	return errors.Join(errs...)
}

// Server is a running development pipeline.
type Server struct {
	cfg       Config
	logger    *slog.Logger
	nats      *natsembed.Server
	store     *sqlite.Store
	transport *natsjs.Transport
	ingest    *ingest.Service
	fanout    *fanout.Service
	delivery  *delivery.Service
	scheduler *scheduler.Service
	subs      *subcache.Cache
	pprof     net.Listener // nil unless PprofAddr is set
	closeOnce sync.Once
}

// New starts the embedded dependencies and builds the services; Run
// starts them. On error everything started is stopped again.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	s := &Server{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	s.nats, err = natsembed.Start(natsembed.Options{Host: cfg.NATSHost, Port: cfg.NATSPort, StoreDir: filepath.Join(cfg.DataDir, "nats"), Logger: logger.With("component", "nats")})
	if err != nil {
		return nil, fmt.Errorf("start embedded NATS: %w", err)
	}
	s.store, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hookline.db"), logger.With("component", "sqlite"))
	if err != nil {
		return nil, fmt.Errorf("open SQLite store: %w", err)
	}
	// The services reach the embedded server over an in-memory pipe: every
	// publish, delivery and ack would otherwise cross a loopback socket
	// (system calls were the largest item in the CPU profile).
	s.transport, err = natsjs.New(ctx, natsjs.Config{
		URL:     s.nats.ClientURL(),
		Name:    "hookline-dev",
		Options: []nats.Option{nats.InProcessServer(s.nats)},
	}, logger.With("component", "natsjs"))
	if err != nil {
		return nil, fmt.Errorf("connect to embedded NATS: %w", err)
	}
	s.subs = subcache.New(s.store, cfg.Fanout.SubscriptionRefresh, logger)
	if err := s.subs.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("load subscriptions: %w", err)
	}
	if s.ingest, err = ingest.New(cfg.Ingest, ingest.Deps{Store: s.store, Transport: s.transport, Logger: logger, Subscriptions: s.subs}); err != nil {
		return nil, err
	}
	if s.fanout, err = fanout.New(cfg.Fanout, fanout.Deps{Store: s.store, Transport: s.transport, Logger: logger, Subscriptions: s.subs}); err != nil {
		return nil, err
	}
	if s.delivery, err = delivery.New(cfg.Delivery, delivery.Deps{Store: s.store, Transport: s.transport, Logger: logger, Subscriptions: s.subs}); err != nil {
		return nil, err
	}
	if s.scheduler, err = scheduler.New(cfg.Scheduler, scheduler.Deps{Store: s.store, Transport: s.transport, Logger: logger, Subscriptions: s.subs}); err != nil {
		return nil, err
	}
	if cfg.PprofAddr != "" {
		if s.pprof, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			return nil, fmt.Errorf("--pprof-addr: %w", err)
		}
	}
	return s, nil
}

// PprofAddr is the address the runtime profiles are served on, or "" when
// they are off.
func (s *Server) PprofAddr() string {
	if s.pprof == nil {
		return ""
	}
	return s.pprof.Addr().String()
}

// serveProfiles serves the runtime profiles until ctx is cancelled.
func (s *Server) serveProfiles(ctx context.Context) error {
	srv := &http.Server{Handler: profiling.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(s.pprof); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve profiles: %w", err)
	}
	return nil
}

// GRPCAddr is the address of the gRPC API.
func (s *Server) GRPCAddr() string { return s.ingest.GRPCAddr() }

// HTTPAddr is the address of the JSON/HTTP API.
func (s *Server) HTTPAddr() string { return s.ingest.HTTPAddr() }

// NATSURL is the client URL of the embedded NATS server.
func (s *Server) NATSURL() string { return s.nats.ClientURL() }

// Run runs the four services until ctx is cancelled or one fails, then
// stops them all, and the embedded dependencies after them.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 5)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				s.logger.Error("service failed; stopping the others", "service", name, "err", err)
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("subscriptions", s.subs.Run)
	if s.pprof != nil {
		run("pprof", s.serveProfiles)
	}
	run("scheduler", s.scheduler.Run)
	run("delivery", s.delivery.Run)
	run("fanout", s.fanout.Run)
	run("ingest", s.ingest.Run)
	<-ctx.Done()
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (s *Server) close() {
	s.closeOnce.Do(func() {
		if s.pprof != nil {
			_ = s.pprof.Close()
		}
		if s.transport != nil {
			_ = s.transport.Close()
		}
		if s.store != nil {
			_ = s.store.Close()
		}
		if s.nats != nil {
			s.nats.Shutdown()
		}
	})
}

// Close stops the embedded dependencies of a server that was built but
// never run. Run closes them itself.
func (s *Server) Close() { s.close() }
