// Package devserver runs the whole Hookline pipeline in one process on
// embedded dependencies: a real NATS JetStream server and a SQLite file,
// both kept in a data directory so a restart resumes where it stopped.
// The NATS server opens no port: only this process reaches it, in
// process, with credentials generated at each start.
// It builds the services of the service table with the same constructors
// the separate binaries use. Loopback receivers are allowed, so webhooks can be sent to
// `hookline listen` on the same machine.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/internal/broker"
	"github.com/hookline/hookline/services/internal/profiling"
	"github.com/hookline/hookline/services/internal/servicetable"
	"github.com/hookline/hookline/services/internal/subcache"
)

// LoopbackCIDRs are allow-listed in development so local receivers work.
var LoopbackCIDRs = []string{"127.0.0.0/8", "::1/128"}

// devDefaults are the flags whose development default differs from the
// production one: loopback addresses, loopback receivers allowed.
var devDefaults = map[string]string{
	"ingest-grpc-addr":     "127.0.0.1:7070",
	"ingest-http-addr":     "127.0.0.1:7080",
	"ingest-allow-cidrs":   strings.Join(LoopbackCIDRs, ","),
	"delivery-allow-cidrs": strings.Join(LoopbackCIDRs, ","),
	// On loopback, calls without a key act as an operator, so the
	// quickstart needs no key; a call that presents one is held to it.
	"ingest-insecure-no-auth": "true",
}

// Config is the development server's configuration: where to keep data,
// and every service of the service table with its own configuration.
type Config struct {
	DataDir string
	// SecretKeysFile is the keyring sealing signing secrets in the SQLite
	// store (package keyring's text form); empty means
	// DataDir/secret-keys, created with a new key on first start.
	SecretKeysFile string
	// PprofAddr, if set, is where Go's runtime profiles are served
	// (/debug/pprof/), for profiling the pipeline under load.
	PprofAddr string
	// Broker is the transport: broker.NATS (the default) is an embedded
	// NATS server keeping its streams in DataDir; broker.Kafka connects to
	// Broker.Kafka's brokers instead.
	Broker broker.Config
	// Services are the pipeline's services, one instance per entry of the
	// service table, in its order; servicetable.ConfigOf reaches one's
	// configuration.
	Services []*servicetable.Instance
}

// DefaultConfig returns the development defaults: every service's
// defaults, loopback addresses and receivers allowed, and a local data
// directory.
func DefaultConfig() Config {
	var c Config
	c.RegisterFlags(pflag.NewFlagSet("hookline dev", pflag.ContinueOnError))
	return c
}

// RegisterFlags registers the development server's flags and every
// service's flags on fs, with development defaults, binding them to c.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.DataDir, "data-dir", ".hookline", "directory holding the embedded NATS store and the SQLite database")
	fs.StringVar(&c.SecretKeysFile, "secret-keys-file", "", "keys sealing signing secrets in the store, one id:base64 entry per line, the first sealing new writes (empty: DATA_DIR/secret-keys, made on first start)")
	fs.StringVar(&c.PprofAddr, "pprof-addr", "", "address to serve Go's runtime profiles (/debug/pprof/) on, e.g. 127.0.0.1:6060 (empty: off)")
	c.Broker.RegisterTransportFlag(fs, "message broker: nats (an embedded server keeping its streams in --data-dir) or kafka (the brokers of --kafka-brokers)")
	c.Broker.Kafka.RegisterFlags(fs)
	if c.Services == nil {
		for _, svc := range servicetable.All() {
			c.Services = append(c.Services, svc.New())
		}
	}
	for _, in := range c.Services {
		in.Config.RegisterFlags(fs)
	}
	for name, v := range devDefaults {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		// A list default is replaced, not Set: Set would mark the list as
		// given, and a value from the command line or the environment
		// would then be appended to the default instead of replacing it.
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			_ = sv.Replace(strings.Split(v, ","))
		} else {
			_ = f.Value.Set(v)
		}
		f.DefValue = v
	}
}

// Validate reports every problem with c and its services' configs.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir: must not be empty"))
	}
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("no services: start from DefaultConfig or RegisterFlags"))
	}
	switch c.Broker.Transport {
	case broker.NATS: // embedded: nothing to check
	case broker.Kafka:
		errs = append(errs, c.Broker.Kafka.Validate())
	default:
		errs = append(errs, fmt.Errorf("--transport %q: must be %s or %s", c.Broker.Transport, broker.NATS, broker.Kafka))
	}
	for _, in := range c.Services {
		errs = append(errs, in.Config.Validate())
	}
	return errors.Join(errs...)
}

// api is what the ingest service tells of its listeners.
type api interface {
	GRPCAddr() string
	HTTPAddr() string
}

// Server is a running development pipeline.
type Server struct {
	cfg       Config
	logger    *slog.Logger
	nats      *natsembed.Server // nil on Kafka
	store     *sqlite.Store
	transport transport.Transport // as the services see it
	services  []namedRunner
	api       api
	subs      *subcache.Cache
	pprof     net.Listener // nil unless PprofAddr is set
	closeOnce sync.Once
}

// namedRunner is a built service and its name.
type namedRunner struct {
	name string
	servicetable.Runner
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
	if err := s.startDependencies(ctx); err != nil {
		return nil, err
	}
	d := servicetable.Deps{Store: s.store, Transport: s.transport, Logger: logger, Subscriptions: s.subs}
	for _, in := range cfg.Services {
		r, err := in.Build(d)
		if err != nil {
			return nil, err
		}
		s.services = append(s.services, namedRunner{in.Name, r})
		if a, ok := r.(api); ok {
			s.api = a
		}
	}
	if s.api == nil {
		return nil, errors.New("devserver: no service serves the API")
	}
	if cfg.PprofAddr != "" {
		if s.pprof, err = net.Listen("tcp", cfg.PprofAddr); err != nil {
			return nil, fmt.Errorf("--pprof-addr: %w", err)
		}
	}
	return s, nil
}

// startDependencies starts the embedded NATS server (or connects to
// Kafka), opens the SQLite store, connects the transport and loads the
// shared subscription cache.
func (s *Server) startDependencies(ctx context.Context) error {
	cfg, logger := s.cfg, s.logger
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	ring, err := devKeyring(cfg)
	if err != nil {
		return err
	}
	s.store, err = sqlite.Open(ctx, filepath.Join(cfg.DataDir, "hookline.db"), sqlite.Options{Keyring: ring}, logger.With("component", "sqlite"))
	if err != nil {
		return fmt.Errorf("open SQLite store: %w", err)
	}
	if cfg.Broker.Transport == broker.Kafka {
		if s.transport, err = cfg.Broker.Open(ctx, "hookline-dev", logger); err != nil {
			return err
		}
	} else if err := s.startNATS(ctx); err != nil {
		return err
	}
	refresh := time.Second
	if f := servicetable.ConfigOf[fanout.Config](cfg.Services); f != nil {
		refresh = f.SubscriptionRefresh // the cache's most demanding reader
	}
	s.subs = subcache.New(s.store, refresh, logger)
	if err := s.subs.Refresh(ctx); err != nil {
		return fmt.Errorf("load subscriptions: %w", err)
	}
	return nil
}

// startNATS starts the embedded NATS server in DataDir and connects the
// transport to it.
func (s *Server) startNATS(ctx context.Context) error {
	var err error
	// No port: nothing outside this process has any business with the
	// broker, and the server refuses clients without the credentials it
	// generated (never logged or printed).
	s.nats, err = natsembed.Start(natsembed.Options{InProcessOnly: true, StoreDir: filepath.Join(s.cfg.DataDir, "nats"), Logger: s.logger.With("component", "nats")})
	if err != nil {
		return fmt.Errorf("start embedded NATS: %w", err)
	}
	// The services reach the embedded server over an in-memory pipe
	// (ConnectOptions: nats.InProcessServer and the credentials): every
	// publish, delivery and ack would otherwise cross a loopback socket
	// (system calls were the largest item in the CPU profile).
	tr, err := natsjs.New(ctx, natsjs.Config{
		URL:     s.nats.ClientURL(),
		Name:    "hookline-dev",
		Options: s.nats.ConnectOptions(),
	}, s.logger.With("component", "natsjs"))
	if err != nil {
		return fmt.Errorf("connect to embedded NATS: %w", err)
	}
	s.transport = storageAware{tr, s.nats}
	return nil
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
func (s *Server) GRPCAddr() string { return s.api.GRPCAddr() }

// HTTPAddr is the address of the JSON/HTTP API.
func (s *Server) HTTPAddr() string { return s.api.HTTPAddr() }

// Run runs every service until ctx is cancelled or one fails, then stops
// them all, and the embedded dependencies after them.
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(s.services)+2)
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
	for _, svc := range s.services {
		run(svc.name, svc.Run)
	}
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

// SecretKeysFileName is the keyring file hookline dev keeps beside its
// SQLite database when --secret-keys-file is not given.
const SecretKeysFileName = "secret-keys"

// devKeyring loads the keyring of cfg.SecretKeysFile or, when that is not
// set, of DataDir/secret-keys, which it creates (mode 0600) with a new key
// on first start.
func devKeyring(cfg Config) (*keyring.Keyring, error) {
	if cfg.SecretKeysFile != "" {
		k, err := keyring.Load(cfg.SecretKeysFile)
		if err != nil {
			return nil, fmt.Errorf("--secret-keys-file: %w", err)
		}
		return k, nil
	}
	path := filepath.Join(cfg.DataDir, SecretKeysFileName)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		entry, err := keyring.Generate("dev-1")
		if err != nil {
			return nil, err
		}
		text := "# Keys sealing the signing secrets in hookline.db; the first seals new writes.\n" + entry + "\n"
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		_, werr := f.WriteString(text)
		if err := errors.Join(werr, f.Close()); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return keyring.Load(path)
}

// storageAware is the development transport as the services see it: while
// the embedded server's JetStream cannot write (a full disk), a publish
// fails at once naming the cause instead of waiting for an ack that will
// not come — a publish already waiting stops waiting when the fault is
// noticed — and Ready says so; the server restarts JetStream by itself
// once the disk has room (natsembed.Server.Healthy).
type storageAware struct {
	*natsjs.Transport
	broker *natsembed.Server
}

// Publish refuses while the broker's storage has failed, and publishes
// otherwise, giving up with the fault if one occurs meanwhile.
func (t storageAware) Publish(ctx context.Context, stream transport.Stream, msgs ...transport.Message) ([]transport.PublishResult, error) {
	fault := t.broker.FaultContext()
	if fault.Err() != nil {
		if err := t.broker.Healthy(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(fault, func() { cancel(t.broker.Healthy()) })
	defer stop()
	res, err := t.Transport.Publish(ctx, stream, msgs...)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, natsembed.ErrStorage) {
			return nil, cause
		}
	}
	return res, err
}

// Ready reports the broker's storage fault as well as the connection.
func (t storageAware) Ready(ctx context.Context) error {
	return errors.Join(t.broker.Healthy(), t.Transport.Ready(ctx))
}
