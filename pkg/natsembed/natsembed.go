// Package natsembed runs a real NATS server with JetStream inside the
// current process, for `hookline dev` and for tests.
//
// The server admits only clients holding its Credentials, an NKey user
// generated at Start unless given: an anonymous client is refused, over the
// client port and in process alike. ConnectOptions gives a client what it
// needs. A server started InProcessOnly opens no port at all.
//
// Production binaries connect to an external NATS cluster and must not
// import this package.
package natsembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// readyTimeout bounds how long Start waits for the server to accept clients.
const readyTimeout = 15 * time.Second

// InProcessURL is the ClientURL of a server started InProcessOnly: a
// placeholder no socket answers (the .invalid domain never resolves). A
// client connects with it and ConnectOptions, which reach the server
// through nats.InProcessServer.
const InProcessURL = "nats://in-process.invalid:4222"

// Options configures an embedded server.
type Options struct {
	// Host is the interface to listen on. Empty means 127.0.0.1, so an
	// embedded server is never exposed beyond the machine by accident.
	Host string
	// Port is the client port. -1 picks a free random port; 0 means the
	// NATS default (4222).
	Port int
	// InProcessOnly opens no client port (Host and Port are ignored):
	// only code in this process reaches the server, through
	// nats.InProcessServer, as ConnectOptions arranges.
	InProcessOnly bool
	// StoreDir is where JetStream keeps its files. Required: the embedded
	// server is only useful with durable streams.
	StoreDir string
	// Logger receives the server's log lines. Nil discards them.
	Logger *slog.Logger
	// RecoverInterval is how often, after a storage fault, the server
	// checks whether its store has room again; zero means
	// DefaultRecoverInterval.
	RecoverInterval time.Duration
	// MinFreeBytes is the free space the store's file system needs before
	// JetStream is restarted after a storage fault; zero means
	// DefaultMinFreeBytes.
	MinFreeBytes uint64
	// Credentials are what every client must present. The zero value
	// has Start generate new ones; starting again with a running
	// server's Options keeps its credentials, so its clients reconnect.
	Credentials Credentials
}

// Credentials are the one NKey user an embedded server admits: an Ed25519
// key pair whose seed is 32 bytes from crypto/rand. A client proves it
// holds the seed by signing the nonce the server sends with each
// connection, so the seed itself never crosses a connection (and no
// password reaches the server's logs). The seed is never printed: fmt and
// slog show the public key only.
type Credentials struct {
	kp  nkeys.KeyPair
	pub string // the user's public key, "U..."
}

// NewCredentials generates new credentials.
func NewCredentials() (Credentials, error) {
	kp, err := nkeys.CreateUser() // 32 bytes of crypto/rand
	if err != nil {
		return Credentials{}, fmt.Errorf("natsembed: generate credentials: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return Credentials{}, fmt.Errorf("natsembed: generate credentials: %w", err)
	}
	return Credentials{kp: kp, pub: pub}, nil
}

// IsZero reports whether c holds no credentials.
func (c Credentials) IsZero() bool { return c.kp == nil }

// PublicKey returns the NKey user's public key, which is not secret.
func (c Credentials) PublicKey() string { return c.pub }

// Option returns the client option that presents c: nats.Nkey, signing
// the server's nonce with the seed.
func (c Credentials) Option() nats.Option {
	kp := c.kp
	return nats.Nkey(c.pub, func(nonce []byte) ([]byte, error) {
		if kp == nil {
			return nil, errors.New("natsembed: no credentials")
		}
		return kp.Sign(nonce)
	})
}

// String describes c without its seed.
func (c Credentials) String() string {
	if c.IsZero() {
		return "natsembed.Credentials(none)"
	}
	return "natsembed.Credentials(nkey " + c.pub + ")"
}

// GoString describes c without its seed, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue logs c without its seed.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Server is a running embedded NATS server with JetStream enabled.
type Server struct {
	nsMu     sync.Mutex     // guards ns
	ns       *server.Server // replaced when the watchdog restarts the server
	opts     Options
	url      string
	shutdown sync.Once
	logger   *slog.Logger

	fault       atomic.Pointer[storageFault] // the current storage fault, nil while JetStream stores
	faultMu     sync.Mutex                   // guards faultCtx and faultCancel
	faultCtx    context.Context              // done once the current (or next) fault occurs
	faultCancel context.CancelFunc           // ends faultCtx
	stopWatch   chan struct{}
	watchDone   chan struct{}
}

// Start starts a NATS server with JetStream on the given options and returns
// once it accepts client connections and JetStream is enabled. On error
// nothing is left running.
func Start(opts Options) (*Server, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Credentials.IsZero() {
		c, err := NewCredentials()
		if err != nil {
			return nil, err
		}
		opts.Credentials = c
	}
	s := &Server{opts: opts, url: InProcessURL, stopWatch: make(chan struct{}), watchDone: make(chan struct{})}
	s.logger = newLogAdapter(opts.Logger).l
	s.faultCtx, s.faultCancel = context.WithCancel(context.Background())
	ns, err := s.startServer(opts)
	if err != nil {
		return nil, err
	}
	s.ns = ns
	if !opts.InProcessOnly {
		s.url = ns.ClientURL()
		if addr, ok := ns.Addr().(*net.TCPAddr); ok {
			s.opts.Port = addr.Port
			s.url = "nats://" + net.JoinHostPort(opts.Host, strconv.Itoa(addr.Port))
		}
	}
	go s.watch(s.stopWatch, s.watchDone)
	return s, nil
}

// startServer starts a nats-server with JetStream on opts, its log going
// to opts.Logger with storage failures noted on s, and returns once it
// accepts clients and JetStream is enabled. On error nothing is left
// running.
func (s *Server) startServer(opts Options) (*server.Server, error) {
	where := "on " + net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
	if opts.InProcessOnly {
		where = "in process"
	}
	sopts := &server.Options{
		Host:       opts.Host,
		Port:       opts.Port,
		DontListen: opts.InProcessOnly,
		// The only user: with it set, a client without its signature is
		// refused ("Authorization Violation").
		Nkeys:     []*server.NkeyUser{{Nkey: opts.Credentials.pub}},
		JetStream: true,
		StoreDir:  opts.StoreDir,
		NoSigs:    true,
		NoLog:     opts.Logger == nil,
		// Lame duck mode (LameDuckShutdown) tells clients, stops
		// JetStream, then closes the clients within these bounds.
		LameDuckDuration:    2 * time.Second,
		LameDuckGracePeriod: 200 * time.Millisecond,
		// The HTTP monitor, cluster and leaf ports stay disabled.
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: configure server: %w", err)
	}
	// Always install our logger: the server's default logger calls
	// os.Exit on Fatalf, which must never happen inside hookline.
	logs := newLogAdapter(opts.Logger)
	logs.onError = func(line string) {
		if storageFailure(line) {
			s.noteStorageFailure(line, time.Now())
		}
	}
	ns.SetLogger(logs, false, false)
	// Start enables JetStream and opens the listener synchronously; a
	// failure of either is reported through Fatalf and Start returns.
	ns.Start()
	if msg := logs.fatalMessage(); msg != "" {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: start server %s: %s", where, msg)
	}
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: server %s not ready for connections within %s (port in use or store dir %q unusable?)",
			where, readyTimeout, opts.StoreDir)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: JetStream failed to start with store dir %q", opts.StoreDir)
	}
	return ns, nil
}

// current is the running nats-server (another one after a restart).
func (s *Server) current() *server.Server {
	s.nsMu.Lock()
	defer s.nsMu.Unlock()
	return s.ns
}

// ClientURL returns the nats:// URL clients connect to, without
// credentials; InProcessURL for an InProcessOnly server.
func (s *Server) ClientURL() string { return s.url }

// ConnectOptions returns what a client needs besides ClientURL: the
// option presenting the server's credentials and, for an InProcessOnly
// server, nats.InProcessServer. A client of a server with a port may add
// nats.InProcessServer itself to skip the socket.
func (s *Server) ConnectOptions() []nats.Option {
	opts := []nats.Option{s.opts.Credentials.Option()}
	if s.opts.InProcessOnly {
		opts = append(opts, nats.InProcessServer(s))
	}
	return opts
}

// InProcessConn opens a client connection to the server over an in-memory
// pipe, with no socket and no system calls: pass the Server to
// nats.InProcessServer to use it from a client in the same process.
func (s *Server) InProcessConn() (net.Conn, error) {
	c, err := s.current().InProcessConn()
	if err != nil {
		return nil, fmt.Errorf("natsembed: in-process connection: %w", err)
	}
	return c, nil
}

// Options returns the options the server runs with; Port is the actual
// port even if a random one (-1) was requested, and Credentials are the
// ones clients must present, even if Start generated them.
func (s *Server) Options() Options { return s.opts }

// LameDuckShutdown stops the server the way a broker should be restarted:
// it tells its clients it is going away (lame duck mode), stops JetStream,
// which writes its state, then closes the clients and stops, and returns
// once it has fully stopped. A client sees a graceful switch (see natsjs).
// A server that does not listen (InProcessOnly) simply shuts down.
func (s *Server) LameDuckShutdown() {
	s.shutdown.Do(func() {
		close(s.stopWatch)
		<-s.watchDone
		s.faultCancel()
		ns := s.current()
		ns.LameDuckShutdown()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
}

// Shutdown stops the server, disconnecting clients, and returns once it has
// fully stopped. It is safe to call more than once and concurrently.
func (s *Server) Shutdown() {
	s.shutdown.Do(func() {
		close(s.stopWatch)
		<-s.watchDone
		s.faultCancel()
		ns := s.current()
		ns.Shutdown()
		ns.WaitForShutdown()
	})
}

// logAdapter forwards the server's printf-style logging to slog.
type logAdapter struct {
	l *slog.Logger
	// onError, when set, sees every error line (storage faults).
	onError func(line string)
	mu      sync.Mutex
	fatal   string // first Fatalf message
}

func (a *logAdapter) fatalMessage() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal
}

func newLogAdapter(l *slog.Logger) *logAdapter {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return &logAdapter{l: l.With("component", "nats-server")}
}

func (a *logAdapter) log(level slog.Level, format string, v []any) {
	if !a.l.Enabled(context.Background(), level) {
		return
	}
	a.l.Log(context.Background(), level, fmt.Sprintf(format, v...))
}

func (a *logAdapter) Noticef(format string, v ...any) { a.log(slog.LevelInfo, format, v) }
func (a *logAdapter) Warnf(format string, v ...any)   { a.log(slog.LevelWarn, format, v) }

// Fatalf logs at error level and does not exit: a fatal start-up condition
// surfaces as an error from Start instead.
func (a *logAdapter) Fatalf(format string, v ...any) {
	a.mu.Lock()
	if a.fatal == "" {
		a.fatal = fmt.Sprintf(format, v...)
	}
	a.mu.Unlock()
	a.log(slog.LevelError, format, v)
}
func (a *logAdapter) Errorf(format string, v ...any) {
	if a.onError != nil {
		a.onError(fmt.Sprintf(format, v...))
	}
	a.log(slog.LevelError, format, v)
}
func (a *logAdapter) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v) }
func (a *logAdapter) Tracef(format string, v ...any) { a.log(slog.LevelDebug-4, format, v) }
