package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// How often the reachability of the brokers is checked while a Transport
// is open, how long one check may take, and how often a lasting outage is
// reported again.
const (
	healthInterval    = time.Second
	healthTimeout     = 2 * time.Second
	unreachableRepeat = 30 * time.Second
	// topicsGrace is how long New lets the topics be "not ready" on a
	// reachable cluster before it warns.
	topicsGrace = 5 * time.Second
)

// fatalError is a failure to connect that retrying cannot fix: a refused
// certificate or credentials, a topic the broker will not create. New
// returns it at once instead of retrying until its context ends.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(format string, args ...any) error {
	return &fatalError{fmt.Errorf(format, args...)}
}

func isFatal(err error) bool {
	var fe *fatalError
	var pe *partitionsError
	return errors.As(err, &fe) || errors.As(err, &pe)
}

// probe opens one connection to a broker of cfg.Brokers the way every
// connection of the Transport is opened (TCP, then TLS and SASL when
// configured) and asks it for the cluster's brokers. It tries the brokers
// in order and returns nil at the first that answers. A failure that
// retrying cannot fix (an untrusted or refused certificate, a non-TLS
// broker, refused SASL credentials) is a *fatalError, returned at once;
// anything else (nothing listening, a timeout, a connection closed under
// it) is transient, and the error names every broker tried.
func (t *Transport) probe(ctx context.Context) error {
	var errs []error
	for _, addr := range t.cfg.Brokers {
		err := t.probeOne(ctx, addr)
		if err == nil {
			return nil
		}
		if isFatal(err) {
			return err
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// probeOne is probe for the broker at addr, within DefaultDialTimeout.
func (t *Transport) probeOne(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultDialTimeout)
	defer cancel()
	var (
		mu     sync.Mutex
		raw    net.Conn // closed when ctx ends, to end any read or write on it
		dialed error    // the TCP or TLS failure, if that is where it failed
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if raw != nil {
			_ = raw.Close()
		}
	})
	defer stop()
	d := &kafkago.Dialer{
		ClientID:      t.cfg.ClientID,
		SASLMechanism: t.dialer.SASLMechanism,
		DialFunc: func(ctx context.Context, network, address string) (net.Conn, error) {
			c, err := dialTLS(ctx, address, t.cfg.TLS, func(c net.Conn) {
				mu.Lock()
				raw = c
				mu.Unlock()
			})
			dialed = err
			return c, err
		},
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		switch {
		case dialed != nil:
			return dialed
		case ctx.Err() != nil:
			return fmt.Errorf("connect to %s: %w (last error: %v)", addr, ctx.Err(), err)
		case t.cfg.SASL != nil && saslRefused(err):
			return fatal("kafka: broker %s refused SASL %s authentication as %q: %w; check Config.SASL (mechanism, username and password)",
				addr, strings.ToUpper(t.cfg.SASL.Mechanism), t.cfg.SASL.Username, err)
		}
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Brokers(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("first request to %s: %w (last error: %v)", addr, ctx.Err(), err)
		}
		if tlsRefused(err) {
			return fatal("kafka: broker %s refused the TLS connection: %w; check Config.TLS (a client certificate may be required)", addr, err)
		}
		if closedEarly(err) {
			return fmt.Errorf("first request to %s: the broker closed the connection (%w); if it persists, the broker may require TLS (Config.TLS) or SASL (Config.SASL)", addr, err)
		}
		return fmt.Errorf("first request to %s: %w", addr, err)
	}
	return nil
}

// dialTLS opens a TCP connection to address (reporting it to opened
// before the TLS handshake, so that the caller can close it) and, with a
// TLS config, completes the handshake. A handshake failure retrying
// cannot fix is a *fatalError.
func dialTLS(ctx context.Context, address string, cfg *tls.Config, opened func(net.Conn)) (net.Conn, error) {
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", address, err)
	}
	opened(c)
	if cfg == nil {
		return c, nil
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("connect to %s: %w", address, err)
		}
		cfg = cfg.Clone()
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		return nil, tlsError(ctx, address, err)
	}
	return tc, nil
}

// tlsError describes a failed TLS handshake with the broker at address.
func tlsError(ctx context.Context, address string, err error) error {
	var (
		verify  *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		header  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid):
		return fatal("kafka: TLS handshake with broker %s: its certificate is not trusted: %w; Config.TLS must trust the CA that signed it (RootCAs) and the certificate must name the host dialled", address, err)
	case errors.As(err, &header):
		return fatal("kafka: TLS handshake with broker %s: the broker does not speak TLS (%w); drop Config.TLS or use the broker's TLS listener", address, err)
	case tlsRefused(err):
		return fatal("kafka: TLS handshake with broker %s refused by the broker: %w; check Config.TLS (a client certificate may be required)", address, err)
	case ctx.Err() != nil:
		return fmt.Errorf("TLS handshake with %s: %w (last error: %v); if it persists, the broker may not speak TLS", address, ctx.Err(), err)
	case closedEarly(err):
		return fmt.Errorf("TLS handshake with %s: the broker closed the connection (%w); if it persists, the broker may not speak TLS", address, err)
	}
	return fmt.Errorf("TLS handshake with %s: %w", address, err)
}

// tlsRefused reports whether err is a TLS alert the peer sent (Go reports
// one as a *net.OpError with Op "remote error"): the broker refused the
// handshake, for instance a client certificate it requires.
func tlsRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// saslRefused reports whether err, from the SASL exchange of a connection
// whose TCP and TLS layers were fine, means the broker refused the
// credentials or the mechanism: a SASL error code, a broker that closes
// the connection in the middle of the exchange (how Kafka and kfake refuse
// a wrong password), or a server proof the client refuses. A reset
// connection or a timeout is no refusal.
func saslRefused(err error) bool {
	var ke kafkago.Error
	if errors.As(err, &ke) {
		return !ke.Temporary()
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "SASL authentication process has failed") // kafka-go's SCRAM refusing the server's proof
}

// closedEarly reports whether err is the broker closing the connection.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// topicErrorFatal reports whether a topic-level error from the broker will
// not go away by retrying. Kafka's retriable errors are transient, and so
// are those a cluster gives while it starts (too few brokers up yet for
// the replication factor).
func topicErrorFatal(err error) bool {
	var ke kafkago.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke {
	case kafkago.InvalidReplicationFactor, kafkago.BrokerNotAvailable, kafkago.ReplicaNotAvailable:
		return false
	}
	return !ke.Temporary()
}

// reachability reports the state of the connection to the brokers in the
// log, once per change: one warning when they cannot be reached (repeated
// at most every unreachableRepeat while that lasts, with how long it has
// lasted) and one info line when they are reached (again).
type reachability struct {
	log     *slog.Logger
	brokers []string
	now     func() time.Time
	repeat  time.Duration

	mu        sync.Mutex
	connected bool // reached at least once
	down      bool // the last check failed
	since     time.Time
	warned    time.Time
}

func newReachability(log *slog.Logger, brokers []string) *reachability {
	return &reachability{log: log, brokers: brokers, now: time.Now, repeat: unreachableRepeat}
}

// failed records a failed attempt to reach the brokers.
func (r *reachability) failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	switch {
	case !r.down:
		r.down, r.since, r.warned = true, now, now
		if r.connected {
			r.log.Warn("kafka: lost the connection to the brokers; publishing and consuming wait, retrying", "brokers", r.brokers, "err", err)
		} else {
			r.log.Warn("kafka: cannot reach the brokers; retrying", "brokers", r.brokers, "err", err)
		}
	case now.Sub(r.warned) >= r.repeat:
		r.warned = now
		r.log.Warn("kafka: the brokers are still unreachable; retrying", "brokers", r.brokers, "for", now.Sub(r.since).Round(time.Second), "err", err)
	}
}

// ok records a successful attempt.
func (r *reachability) ok() {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.connected:
		attrs := []any{"brokers", r.brokers}
		if r.down {
			attrs = append(attrs, "after", r.now().Sub(r.since).Round(time.Millisecond))
		}
		r.log.Info("kafka: connected to the brokers", attrs...)
	case r.down:
		r.log.Info("kafka: connection to the brokers is back", "brokers", r.brokers, "after", r.now().Sub(r.since).Round(time.Millisecond))
	}
	r.connected, r.down = true, false
}

// isDown reports whether the last check failed.
func (r *reachability) isDown() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down
}

// ping makes one round trip to a broker on the Transport's connections.
// A connection the broker closed since its last use fails the first
// request sent on it, so a failure is tried once more.
func (t *Transport) ping(ctx context.Context) error {
	var err error
	for range 2 {
		var resp *kafkago.ApiVersionsResponse
		if resp, err = t.client.ApiVersions(ctx, &kafkago.ApiVersionsRequest{}); err == nil {
			err = resp.Error
		}
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("ping %s: %w", strings.Join(t.cfg.Brokers, ","), err)
	}
	return nil
}

// watch checks the brokers every healthInterval until ctx ends (Close),
// reporting changes through t.reach.
func (t *Transport) watch(ctx context.Context) {
	tk := time.NewTicker(healthInterval)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
		pctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err := t.ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return // a failure caused by Close is no outage
		}
		if err != nil {
			t.reach.failed(err)
		} else {
			t.reach.ok()
		}
	}
}

// throttle lets a message through at most once per interval.
type throttle struct {
	mu    sync.Mutex
	every time.Duration
	last  time.Time
}

// allow reports whether a message may be logged now.
func (th *throttle) allow() bool {
	th.mu.Lock()
	defer th.mu.Unlock()
	now := time.Now()
	if !th.last.IsZero() && now.Sub(th.last) < th.every {
		return false
	}
	th.last = now
	return true
}
