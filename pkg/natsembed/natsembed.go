// Package natsembed runs a real NATS server with JetStream inside the
// current process, for `hookline dev` and for tests.
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
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long Start waits for the server to accept clients.
const readyTimeout = 15 * time.Second

// Options configures an embedded server.
type Options struct {
	// Host is the interface to listen on. Empty means 127.0.0.1, so an
	// embedded server is never exposed beyond the machine by accident.
	Host string
	// Port is the client port. -1 picks a free random port; 0 means the
	// NATS default (4222).
	Port int
	// StoreDir is where JetStream keeps its files. Required: the embedded
	// server is only useful with durable streams.
	StoreDir string
	// Logger receives the server's log lines. Nil discards them.
	Logger *slog.Logger
}

// Server is a running embedded NATS server with JetStream enabled.
type Server struct {
	ns       *server.Server
	opts     Options
	url      string
	shutdown sync.Once
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
	sopts := &server.Options{
		Host:      opts.Host,
		Port:      opts.Port,
		JetStream: true,
		StoreDir:  opts.StoreDir,
		NoSigs:    true,
		NoLog:     opts.Logger == nil,
		// The HTTP monitor, cluster and leaf ports stay disabled.
	}
	ns, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: configure server: %w", err)
	}
	// Always install our logger: the server's default logger calls
	// os.Exit on Fatalf, which must never happen inside hookline.
	logs := newLogAdapter(opts.Logger)
	ns.SetLogger(logs, false, false)
	// Start enables JetStream and opens the listener synchronously; a
	// failure of either is reported through Fatalf and Start returns.
	ns.Start()
	if msg := logs.fatalMessage(); msg != "" {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: start server on %s:%d: %s", opts.Host, opts.Port, msg)
	}
	if !ns.ReadyForConnections(readyTimeout) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: server on %s:%d not ready for connections within %s (port in use or store dir %q unusable?)",
			opts.Host, opts.Port, readyTimeout, opts.StoreDir)
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("natsembed: JetStream failed to start with store dir %q", opts.StoreDir)
	}
	s := &Server{ns: ns, opts: opts, url: ns.ClientURL()}
	if addr, ok := ns.Addr().(*net.TCPAddr); ok {
		s.opts.Port = addr.Port
		s.url = "nats://" + net.JoinHostPort(opts.Host, strconv.Itoa(addr.Port))
	}
	return s, nil
}

// ClientURL returns the nats:// URL clients connect to.
func (s *Server) ClientURL() string { return s.url }

// InProcessConn opens a client connection to the server over an in-memory
// pipe, with no socket and no system calls: pass the Server to
// nats.InProcessServer to use it from a client in the same process.
func (s *Server) InProcessConn() (net.Conn, error) {
	c, err := s.ns.InProcessConn()
	if err != nil {
		return nil, fmt.Errorf("natsembed: in-process connection: %w", err)
	}
	return c, nil
}

// Options returns the options the server runs with; Port is the actual
// port even if a random one (-1) was requested.
func (s *Server) Options() Options { return s.opts }

// Shutdown stops the server, disconnecting clients, and returns once it has
// fully stopped. It is safe to call more than once and concurrently.
func (s *Server) Shutdown() {
	s.shutdown.Do(func() {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	})
}

// logAdapter forwards the server's printf-style logging to slog.
type logAdapter struct {
	l     *slog.Logger
	mu    sync.Mutex
	fatal string // first Fatalf message
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
func (a *logAdapter) Errorf(format string, v ...any) { a.log(slog.LevelError, format, v) }
func (a *logAdapter) Debugf(format string, v ...any) { a.log(slog.LevelDebug, format, v) }
func (a *logAdapter) Tracef(format string, v ...any) { a.log(slog.LevelDebug-4, format, v) }
