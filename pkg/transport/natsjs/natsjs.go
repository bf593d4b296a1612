// Package natsjs implements transport.Transport on NATS JetStream.
//
// Each transport.Stream maps to one JetStream stream:
//
//	transport.Events     HOOKLINE_EVENTS      hookline.events.>      limits retention, MaxAge, discard old
//	transport.Deliveries HOOKLINE_DELIVERIES  hookline.deliveries.>  work-queue retention, discard new
//
// Both streams have Config.Replicas replicas and Config.Storage storage.
// EVENTS is the replay log: Config.EventsMaxAge and Config.EventsMaxBytes
// trim its oldest events (size them so that fanout's lag never reaches
// them: an event trimmed before fanout read it is lost). DELIVERIES holds
// work not yet done: it has no age limit (one would drop undelivered
// work), and when Config.DeliveriesMaxBytes is reached the broker refuses
// new messages (Publish fails and fanout retries) instead of dropping old
// ones.
//
// A message is published on "hookline.<stream>.<Message.Subject>" (an empty
// Subject becomes the reserved token "_"), with Message.ID in the
// Nats-Msg-Id header for broker-side deduplication and Message.Key in the
// KeyHeader header. Consumer groups are durable pull consumers with explicit
// acks, shared by every replica of the group.
//
// Because a work-queue stream allows only one unfiltered consumer,
// Deliveries supports a single consumer group; Events supports any number.
//
// Earlier builds had a third stream, HOOKLINE_RETRIES (hookline.retries.>,
// work-queue retention). This package neither creates, reads, writes nor
// deletes it: an installation upgraded from an earlier build keeps its old
// HOOKLINE_RETRIES stream untouched, and an operator may delete it once it
// is empty.
//
// Signals (transport.Notifier) use core NATS, not JetStream: a signal on
// topic T is a plain message on the subject "hookline.signal.T", which no
// stream captures, so nothing stores it. Each listener is one subscription
// on its connection; see Transport.Listen for how a slow listener is
// bounded.
package natsjs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/internal/signalq"
)

// KeyHeader is the message header that carries transport.Message.Key. It is
// reserved: Publish rejects user headers with this name, and it never
// appears in a received Message's Headers.
const KeyHeader = "hookline-transport-key"

// emptySubjectToken stands for an empty Message.Subject in the NATS subject.
const emptySubjectToken = "_"

// Defaults applied by New to zero Config fields.
const (
	DefaultReplicas          = 1
	DefaultEventsMaxAge      = 7 * 24 * time.Hour
	DefaultDuplicateWindow   = 30 * time.Second
	DefaultMaxAsyncPending   = 4096
	DefaultPublishAckTimeout = 10 * time.Second
	DefaultPublishTimeout    = 30 * time.Second
	DefaultReconnectWait     = 250 * time.Millisecond
	DefaultReconnectBufSize  = 32 << 20
	DefaultAckWait           = 30 * time.Second
	DefaultMaxAckPending     = 20000
	DefaultSignalBuffer      = 256
)

// maxPullBatch caps the messages requested in one pull.
const maxPullBatch = 1024

// Config configures a Transport.
type Config struct {
	// URL is the NATS server URL (a comma-separated list for a cluster).
	// Required.
	URL string
	// Name identifies the connection in the server's monitoring.
	Name string
	// Replicas is the replication factor of the streams (3 on a
	// production cluster). Zero means DefaultReplicas.
	Replicas int
	// Storage is where the streams keep messages: jetstream.FileStorage
	// (the zero value) or jetstream.MemoryStorage (lost when a server
	// restarts; for tests and throwaway setups). A stream's storage cannot
	// change once it exists.
	Storage jetstream.StorageType
	// EventsMaxAge bounds how long events stay replayable. Zero means
	// DefaultEventsMaxAge.
	EventsMaxAge time.Duration
	// EventsMaxBytes and DeliveriesMaxBytes cap each stream's size on the
	// servers (per replica). Zero means no cap. EVENTS then drops its
	// oldest events; DELIVERIES refuses new messages.
	EventsMaxBytes, DeliveriesMaxBytes int64
	// DuplicateWindow is how long the broker remembers message IDs for
	// deduplication. Zero means DefaultDuplicateWindow, 30 s: longer than
	// fanout's ack wait (20 s: an event redelivered after a fanout crash
	// republishes its deliveries under the same IDs) and the scheduler's
	// claim lease (20 s), with a margin. The broker keeps every ID of the
	// window in memory (about 185 bytes each, all of them live heap to the
	// garbage collector), so at 10,000 messages a second the NATS default
	// of two minutes held 1.2 million IDs: after an overload, collection
	// alone took a sixth of the CPU.
	DuplicateWindow time.Duration
	// MaxAsyncPending bounds the publishes awaiting their ack on this
	// connection, across concurrent Publish calls. Zero means
	// DefaultMaxAsyncPending.
	MaxAsyncPending int
	// PublishAckTimeout is how long one publish waits for its ack before
	// it is retried. Zero means DefaultPublishAckTimeout.
	PublishAckTimeout time.Duration
	// PublishTimeout bounds how long Publish keeps retrying transient
	// failures (disconnects, lost acks) when ctx allows. Zero means
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts (jittered).
	// Zero means DefaultReconnectWait. Reconnection never gives up.
	ReconnectWait time.Duration
	// ReconnectBufSize bounds the bytes buffered while reconnecting. Zero
	// means DefaultReconnectBufSize.
	ReconnectBufSize int
	// SignalBuffer bounds the signals that wait for one listener while its
	// function runs (see Transport.Listen); beyond it, signals for that
	// listener are dropped. Zero means DefaultSignalBuffer.
	SignalBuffer int
	// Auth is how the connection authenticates and is secured: the
	// credentials and TLS files of the service binaries' --nats-* flags.
	// The zero value connects anonymously.
	Auth Auth
	// Options are extra connection options, applied after Auth's: an
	// embedded server's credentials and nats.InProcessServer, say.
	Options []nats.Option
}

func (c *Config) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.MaxAsyncPending == 0 {
		c.MaxAsyncPending = DefaultMaxAsyncPending
	}
	if c.PublishAckTimeout == 0 {
		c.PublishAckTimeout = DefaultPublishAckTimeout
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.ReconnectBufSize == 0 {
		c.ReconnectBufSize = DefaultReconnectBufSize
	}
	if c.SignalBuffer == 0 {
		c.SignalBuffer = DefaultSignalBuffer
	}
}

// streamInfo is the JetStream side of one transport.Stream.
type streamInfo struct {
	stream transport.Stream
	name   string // JetStream stream name
	prefix string // subject prefix, ending in '.'
}

func lookupStream(s transport.Stream) (streamInfo, error) {
	switch s {
	case transport.Events:
		return streamInfo{s, "HOOKLINE_EVENTS", "hookline.events."}, nil
	case transport.Deliveries:
		return streamInfo{s, "HOOKLINE_DELIVERIES", "hookline.deliveries."}, nil
	}
	return streamInfo{}, fmt.Errorf("natsjs: unknown stream %q", s)
}

// Transport is a transport.Transport on a NATS JetStream connection. It is
// safe for concurrent use.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	closed atomic.Bool

	listeners signalq.Set[*listener] // running listeners, for Close

	attempts *attempts // failed connection attempts since the last success
	restarts *restarts // when the connection last landed on a new server instance
}

// lostStateWindow is how long after the connection lands on a new server
// instance (a restarted nats-server) a message published before that is
// reported as possibly delivered before (see restarts).
const lostStateWindow = 10 * time.Second

// restarts tells when the connection landed on a server instance other
// than the one before: a nats-server that restarted, or another member of
// a cluster. A single server writes a consumer's state (what it delivered,
// what was acknowledged) at most ten times a second, even with
// sync_interval: always, so a server killed with SIGKILL (or a machine
// crash) can forget deliveries and acknowledgements of its last moments,
// and after the restart hand such a message out again as a first
// delivery. Messages published before the switch and received within
// lostStateWindow of it are therefore reported with a NumDelivered of at
// least 2: a consumer must treat them as possibly handled before. A switch
// announced by lame duck mode (a graceful restart, as the NATS Helm chart
// does it) is not suspected: the server stopped JetStream, writing its
// state, before it let its clients go. (A replicated stream does not
// forget either; the report then only costs the consumer a check.)
type restarts struct {
	mu           sync.Mutex
	serverID     string
	onServer     time.Time // when serverID was first seen
	lameDuck     time.Time // when a server last said it was going away gracefully
	disconnected time.Time // when the connection was last lost
	// unsure is set from a disconnect until the connection's server is
	// seen again: only then must a received message look at the server.
	unsure atomic.Bool
	// lost is when the previous server instance was last known alive (the
	// connection to it lost), and noticed when the switch was seen, in
	// Unix nanoseconds; both zero before any switch. Atomic, so that a
	// received message reads them without a lock.
	lost, noticed atomic.Int64
}

// goingAway records that the server announced lame duck mode at now: it
// stops JetStream (writing its state) before it closes its clients, so the
// switch that follows forgets nothing.
func (r *restarts) goingAway(now time.Time) {
	r.mu.Lock()
	r.lameDuck = now
	r.mu.Unlock()
}

// disconnect records that the connection was lost at now.
func (r *restarts) disconnect(now time.Time) {
	r.mu.Lock()
	r.disconnected = now
	r.mu.Unlock()
	r.unsure.Store(true)
}

// seen records the server instance the connection is on at now.
func (r *restarts) seen(serverID string, now time.Time) {
	if serverID == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if serverID != r.serverID {
		if r.serverID != "" && !r.lameDuck.After(r.onServer) {
			// The disconnect callback runs asynchronously: when it has not
			// reported this outage yet, the switch is dated when noticed,
			// which suspects more messages, never fewer.
			lost := now
			if r.disconnected.After(r.onServer) {
				lost = r.disconnected
			}
			r.lost.Store(lost.UnixNano())
			r.noticed.Store(now.UnixNano())
		}
		r.serverID, r.onServer = serverID, now
	}
	r.unsure.Store(false)
}

// suspect reports whether a message published at published and received
// at now may have been delivered before without the server knowing: it
// was published before the connection to the previous server instance was
// lost, and is received within lostStateWindow of the switch being noticed.
func (r *restarts) suspect(published, now time.Time) bool {
	noticed := r.noticed.Load()
	if noticed == 0 || now.UnixNano()-noticed >= int64(lostStateWindow) {
		return false
	}
	return published.UnixNano() < r.lost.Load()
}

// attempts remembers the last failed attempt to (re)connect, so that New
// can tell why it gave up and each new kind of failure (a TLS or
// authentication problem, an unreachable server) is logged once rather
// than at every attempt.
type attempts struct {
	mu   sync.Mutex
	last error
	seen map[string]bool // failures logged since the last connection
}

// maxLoggedKinds bounds the distinct failures logged between two
// connections (each server of a cluster URL may fail its own way).
const maxLoggedKinds = 16

// failed records err and reports whether it is worth a log line: a kind
// of failure not seen since the last connection. nats.ErrNoServers, which
// says only that every server of the URL failed, is never one.
func (a *attempts) failed(err error) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = err
	if errors.Is(err, nats.ErrNoServers) {
		return false
	}
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	msg := err.Error()
	if a.seen[msg] || len(a.seen) >= maxLoggedKinds {
		return false
	}
	a.seen[msg] = true
	return true
}

// connected forgets the failures.
func (a *attempts) connected() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = nil
	a.seen = nil
}

func (a *attempts) lastErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

var _ transport.Transport = (*Transport)(nil)

// New connects to NATS and creates or updates the streams of
// transport.Streams (HOOKLINE_EVENTS and HOOKLINE_DELIVERIES). It is
// idempotent and safe when several replicas start at once. It touches no
// other stream: an existing HOOKLINE_RETRIES from an earlier build is
// neither created nor deleted. cfg.Auth is checked first, as
// Auth.Validate checks it. The connection reconnects forever; if the
// server is not reachable yet, New keeps trying until ctx ends, logging
// each new kind of failed attempt (a TLS error, say) once. The exception
// is a server that refuses the credentials twice in a row: nats.go then
// closes the connection for good, so New fails with the server's error,
// and a Transport already running is no longer Ready until its process
// restarts. A nil logger discards logs.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Transport, error) {
	if cfg.URL == "" {
		return nil, errors.New("natsjs: Config.URL is required")
	}
	cfg.setDefaults()
	if cfg.SignalBuffer < 0 {
		return nil, fmt.Errorf("natsjs: SignalBuffer %d is negative", cfg.SignalBuffer)
	}
	if cfg.DuplicateWindow > cfg.EventsMaxAge {
		return nil, fmt.Errorf("natsjs: DuplicateWindow %s exceeds EventsMaxAge %s", cfg.DuplicateWindow, cfg.EventsMaxAge)
	}
	if err := cfg.Auth.check(fieldLabel, ""); err != nil {
		return nil, fmt.Errorf("natsjs: %w", err)
	}
	authOpts, err := cfg.Auth.options()
	if err != nil {
		return nil, fmt.Errorf("natsjs: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "natsjs")

	att := &attempts{}
	rs := &restarts{}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectJitter(cfg.ReconnectWait/2, cfg.ReconnectWait/2),
		nats.ReconnectBufSize(cfg.ReconnectBufSize),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			rs.disconnect(time.Now())
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			att.connected()
			rs.seen(nc.ConnectedServerId(), time.Now())
			logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			att.connected()
			rs.seen(nc.ConnectedServerId(), time.Now())
		}),
		nats.LameDuckModeHandler(func(*nats.Conn) {
			rs.goingAway(time.Now())
			logger.Info("nats server going away gracefully (lame duck mode)")
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil && att.failed(err) {
				logger.Warn("nats connection attempt failed; retrying", "err", err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subj := ""
			if sub != nil {
				subj = sub.Subject
			}
			logger.Error("nats async error", "subject", subj, "err", err)
		}),
	}
	opts = append(opts, authOpts...)
	opts = append(opts, cfg.Options...)
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("natsjs: connect to %s: %w", redactURL(cfg.URL), err)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.MaxAsyncPending),
		jetstream.WithPublishAsyncTimeout(cfg.PublishAckTimeout),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsjs: jetstream context: %w", err)
	}
	t := &Transport{cfg: cfg, log: logger, nc: nc, js: js, attempts: att, restarts: rs}
	for _, s := range transport.Streams {
		if err := t.ensureStream(ctx, s); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return t, nil
}

func (t *Transport) streamConfig(s transport.Stream) jetstream.StreamConfig {
	info, _ := lookupStream(s)
	sc := jetstream.StreamConfig{
		Name:       info.name,
		Subjects:   []string{info.prefix + ">"},
		Storage:    t.cfg.Storage,
		Replicas:   t.cfg.Replicas,
		Duplicates: t.cfg.DuplicateWindow,
		MaxBytes:   -1,
	}
	if s == transport.Events {
		sc.Retention = jetstream.LimitsPolicy
		sc.Discard = jetstream.DiscardOld
		sc.MaxAge = t.cfg.EventsMaxAge
		if t.cfg.EventsMaxBytes > 0 {
			sc.MaxBytes = t.cfg.EventsMaxBytes
		}
	} else {
		// Work not yet done is never dropped: when full, refuse more.
		sc.Retention = jetstream.WorkQueuePolicy
		sc.Discard = jetstream.DiscardNew
		if t.cfg.DeliveriesMaxBytes > 0 {
			sc.MaxBytes = t.cfg.DeliveriesMaxBytes
		}
	}
	return sc
}

// ensureStream creates or updates one stream, retrying transient failures
// (server not reachable yet, concurrent creation by another replica) until
// ctx ends. JetStream API errors other than a creation race are final.
func (t *Transport) ensureStream(ctx context.Context, s transport.Stream) error {
	sc := t.streamConfig(s)
	wait := 50 * time.Millisecond
	var lastWarn time.Time
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := t.createOrUpdateStream(actx, sc)
		cancel()
		if err == nil {
			return nil
		}
		// nats.go closes the connection for good when the server refuses
		// the credentials twice in a row: no retry can succeed then.
		if t.nc.IsClosed() {
			if last := t.nc.LastError(); last != nil {
				err = last
			}
			return fmt.Errorf("natsjs: connect to %s: %w", redactURL(t.cfg.URL), err)
		}
		// Replicas starting together may race to create the stream; the
		// loser's next attempt updates it. Other API errors are final.
		race := errors.Is(err, jetstream.ErrStreamNameAlreadyInUse)
		var apiErr *jetstream.APIError
		var final finalError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeReplicasNeedCluster {
			return fmt.Errorf("natsjs: create or update stream %s: Config.Replicas %d needs a JetStream cluster (of at least %[2]d servers); the server is a single one: %w", sc.Name, sc.Replicas, err)
		}
		if (errors.As(err, &apiErr) && !race) || (race && attempt >= 5) || errors.As(err, &final) {
			return fmt.Errorf("natsjs: create or update stream %s: %w", sc.Name, err)
		}
		// While the connection is down, its own warning (once per kind of
		// failure) says why; otherwise one line now and one every
		// retryWarnEvery, not one per attempt.
		if t.nc.Status() == nats.CONNECTED && time.Since(lastWarn) >= retryWarnEvery {
			lastWarn = time.Now()
			t.log.Warn("natsjs: stream not ready, retrying", "stream", sc.Name, "attempt", attempt, "err", err)
		} else {
			t.log.Debug("natsjs: stream not ready, retrying", "stream", sc.Name, "attempt", attempt, "err", err)
		}
		if cerr := sleepCtx(ctx, wait); cerr != nil {
			if last := t.attempts.lastErr(); last != nil && t.nc.Status() != nats.CONNECTED {
				return fmt.Errorf("natsjs: create or update stream %s: %w (last error: %v; last connection attempt: %v)", sc.Name, cerr, err, last)
			}
			return fmt.Errorf("natsjs: create or update stream %s: %w (last error: %v)", sc.Name, cerr, err)
		}
		wait = min(wait*2, 2*time.Second)
	}
}

// createOrUpdateStream creates the stream, or updates it only if its
// configuration differs from sc: replicas restarting must not rewrite an
// unchanged stream (an update is a replicated operation on a cluster).
func (t *Transport) createOrUpdateStream(ctx context.Context, sc jetstream.StreamConfig) error {
	st, err := t.js.Stream(ctx, sc.Name)
	switch {
	case err == nil:
		have := st.CachedInfo().Config
		if sameStreamConfig(have, sc) {
			return nil
		}
		if have.Storage != sc.Storage {
			return finalError{fmt.Errorf("stream %s exists with %s storage, which cannot be changed to %s (delete the stream, or keep its storage)", sc.Name, have.Storage, sc.Storage)}
		}
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return err
	}
	_, err = t.js.CreateOrUpdateStream(ctx, sc)
	return err
}

// retryWarnEvery spaces the warnings of a stream set-up that keeps failing.
const retryWarnEvery = 30 * time.Second

// errCodeReplicasNeedCluster is JetStream's error code for a stream with
// more than one replica on a server outside a cluster (nats.go names no
// constant for it).
const errCodeReplicasNeedCluster = 10074

// finalError is a stream set-up error that retrying cannot cure.
type finalError struct{ error }

func (e finalError) Unwrap() error { return e.error }

// sameStreamConfig compares the fields Hookline sets.
func sameStreamConfig(a, b jetstream.StreamConfig) bool {
	return slices.Equal(a.Subjects, b.Subjects) && a.Retention == b.Retention &&
		a.Storage == b.Storage && a.Replicas == b.Replicas && a.Duplicates == b.Duplicates &&
		a.MaxAge == b.MaxAge && a.MaxBytes == b.MaxBytes && a.Discard == b.Discard
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DuplicateWindow is how long the streams remember message IDs
// (Config.DuplicateWindow): a message published again under the same ID
// within it is dropped by the broker.
func (t *Transport) DuplicateWindow() time.Duration { return t.cfg.DuplicateWindow }

// Backlog returns the group's durable consumer's count of messages not
// yet delivered to it (NumPending): one JetStream API request.
func (t *Transport) Backlog(ctx context.Context, stream transport.Stream, group string) (int64, error) {
	if t.closed.Load() {
		return 0, transport.ErrClosed
	}
	info, err := lookupStream(stream)
	if err != nil {
		return 0, err
	}
	cons, err := t.js.Consumer(ctx, info.name, group)
	if err != nil {
		return 0, t.wrapErr(fmt.Sprintf("consumer %s on %s", group, info.name), err)
	}
	return int64(cons.CachedInfo().NumPending), nil
}

var _ transport.LagReader = (*Transport)(nil)

// Lag reports the group's durable consumer as JetStream counts it, in one
// consumer info request (answered by the consumer's leader in a cluster,
// so every client sees the same counts): Pending is its NumPending, the
// messages of the stream not yet delivered to it; Unacked its
// NumAckPending, the messages delivered and neither acknowledged nor
// terminated, which includes those handed back (Nak, with or without a
// delay) or past their AckWait that wait for redelivery. Acks are
// fire-and-forget (see received.Ack): an acknowledged message leaves the
// count about one round trip to the server after the handler's Ack.
//
// A group without a consumer on the stream reports the stream's message
// count as Pending (a second request, for the stream's info): what a new
// consumer, which starts from the first message, has ahead of it. On the
// work-queue Deliveries stream that count is the messages no group has
// acknowledged.
//
// ctx bounds each request; without a deadline, the JetStream default
// (5 s) does.
func (t *Transport) Lag(ctx context.Context, stream transport.Stream, group string) (transport.Lag, error) {
	if t.closed.Load() {
		return transport.Lag{}, transport.ErrClosed
	}
	info, err := lookupStream(stream)
	if err != nil {
		return transport.Lag{}, err
	}
	if group == "" {
		return transport.Lag{}, errors.New("natsjs: lag: group is required")
	}
	cons, err := t.js.Consumer(ctx, info.name, group)
	if err == nil {
		ci := cons.CachedInfo()
		return transport.Lag{Pending: int64(ci.NumPending), Unacked: int64(ci.NumAckPending)}, nil
	}
	if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return transport.Lag{}, t.wrapErr(fmt.Sprintf("lag of consumer %s on %s", group, info.name), err)
	}
	st, err := t.js.Stream(ctx, info.name)
	if err != nil {
		return transport.Lag{}, t.wrapErr(fmt.Sprintf("lag of group %s (no consumer yet) on %s", group, info.name), err)
	}
	return transport.Lag{Pending: int64(st.CachedInfo().State.Msgs)}, nil
}

// Ready reports whether the connection is up and JetStream answers a cheap
// account-info request.
func (t *Transport) Ready(ctx context.Context) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	if st := t.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("natsjs: connection %s", st)
	}
	if _, err := t.js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("natsjs: jetstream account info: %w", err)
	}
	return nil
}

// Close closes the connection; pending publishes fail. It then stops every
// listener as its stop function would, so once Close returns no listener
// function runs or is called again; stop functions may still be called and
// return at once. It is idempotent. In-flight Consume calls must be
// cancelled through their contexts first, and a listener function must
// not call Close.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.nc.Close()
	for _, l := range t.listeners.Close() {
		l.stop()
	}
	return nil
}

// wrapErr wraps err with op and maps errors caused by a closed connection to ErrClosed.
func (t *Transport) wrapErr(op string, err error) error {
	if t.closed.Load() || errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsjs: %s: %w (%w)", op, transport.ErrClosed, err)
	}
	return fmt.Errorf("natsjs: %s: %w", op, err)
}

// validHeaderKey reports whether a user header name survives the NATS
// header encoding and is not reserved.
func validHeaderKey(k string) bool {
	if k == "" || k == KeyHeader || len(k) >= 5 && strings.EqualFold(k[:5], "Nats-") {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c == ':' || c >= 0x7f {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether a header value round-trips unchanged:
// no line breaks and no leading blanks (NATS trims them).
func validHeaderValue(v string) bool {
	if v != "" && (v[0] == ' ' || v[0] == '\t') {
		return false
	}
	return !strings.ContainsAny(v, "\r\n")
}

// validSubject reports whether s is usable as the tail of a NATS subject:
// dot-separated non-empty tokens without blanks or wildcards.
func validSubject(s string) bool {
	if s == emptySubjectToken {
		return false
	}
	prevDot := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '.':
			if prevDot {
				return false
			}
			prevDot = true
		case c <= ' ' || c == '*' || c == '>' || c == 0x7f:
			return false
		default:
			prevDot = false
		}
	}
	return !prevDot
}

// toNats fills out with the NATS message for m on the stream with the given
// subject prefix. Header values are carved out of *slab (one allocation per
// batch instead of one per header).
func toNats(out *nats.Msg, slab *[]string, prefix string, m *transport.Message) error {
	if m.ID == "" {
		return errors.New("message ID is required")
	}
	if !validHeaderValue(m.ID) || !validHeaderValue(m.Key) {
		return errors.New("message ID and Key must not contain line breaks or start with a blank")
	}
	subject := prefix + emptySubjectToken
	if m.Subject != "" {
		if !validSubject(m.Subject) {
			return fmt.Errorf("invalid subject %q: need dot-separated non-empty tokens without blanks, '*' or '>', and not %q", m.Subject, emptySubjectToken)
		}
		subject = prefix + m.Subject
	}
	n := len(m.Headers) + 1
	if m.Key != "" {
		n++
	}
	h := make(nats.Header, n)
	val := func(v string) []string {
		sl := *slab
		if len(sl) == 0 {
			sl = make([]string, 64)
		}
		sl[0] = v
		*slab = sl[1:]
		return sl[0:1:1]
	}
	for k, v := range m.Headers {
		if !validHeaderKey(k) {
			return fmt.Errorf("invalid or reserved header name %q", k)
		}
		if !validHeaderValue(v) {
			return fmt.Errorf("header %q: value must not contain line breaks or start with a blank", k)
		}
		h[k] = val(v)
	}
	h[jetstream.MsgIDHeader] = val(m.ID)
	if m.Key != "" {
		h[KeyHeader] = val(m.Key)
	}
	*out = nats.Msg{Subject: subject, Header: h, Data: m.Data}
	return nil
}

// transientPublishErr reports whether a failed publish may succeed if
// retried with the same message ID.
func transientPublishErr(err error) bool {
	return errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, jetstream.ErrAsyncPublishTimeout) ||
		errors.Is(err, jetstream.ErrTooManyStalledMsgs)
}

// Publish stores msgs on stream. All messages are published asynchronously
// (bounded by Config.MaxAsyncPending on the connection) and Publish then
// waits for every ack, so a batch costs about one round trip. Transient
// failures (a reconnect, a lost ack) are retried with the same message ID
// for up to Config.PublishTimeout while ctx allows. Duplicate is reported
// only for a message the broker recognised on its first attempt: after a
// retry, what the broker recognises may be this very call's earlier
// attempt, so a retried message reports Duplicate=false.
func (t *Transport) Publish(ctx context.Context, stream transport.Stream, msgs ...transport.Message) ([]transport.PublishResult, error) {
	if t.closed.Load() {
		return nil, transport.ErrClosed
	}
	info, err := lookupStream(stream)
	if err != nil {
		return nil, err
	}
	nhdr := 0
	for i := range msgs {
		nhdr += len(msgs[i].Headers) + 2
	}
	slab := make([]string, nhdr)
	backing := make([]nats.Msg, len(msgs))
	nm := make([]*nats.Msg, len(msgs))
	for i := range msgs {
		nm[i] = &backing[i]
		if err := toNats(nm[i], &slab, info.prefix, &msgs[i]); err != nil {
			return nil, fmt.Errorf("natsjs: publish message %d (id %q): %w", i, msgs[i].ID, err)
		}
	}
	results := make([]transport.PublishResult, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}

	deadline := time.Now().Add(t.cfg.PublishTimeout)
	pending := make([]int, len(msgs)) // indexes still to publish
	for i := range pending {
		pending[i] = i
	}
	futures := make([]jetstream.PubAckFuture, len(msgs))
	retried := make([]bool, len(msgs))
	wait := 50 * time.Millisecond
	for {
		failed, lastErr := t.publishRound(ctx, nm, pending, futures, retried, results)
		if lastErr == nil {
			return results, nil
		}
		if ctx.Err() != nil || !transientPublishErr(lastErr) || time.Now().Add(wait).After(deadline) {
			return nil, t.wrapErr(fmt.Sprintf("publish %d messages to %s", len(msgs), info.name), lastErr)
		}
		t.log.Debug("natsjs: retrying publish", "stream", info.name, "messages", len(failed), "err", lastErr)
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, t.wrapErr(fmt.Sprintf("publish %d messages to %s", len(msgs), info.name), err)
		}
		wait = min(wait*2, time.Second)
		for _, i := range failed {
			retried[i] = true
		}
		pending = failed
	}
}

// publishRound publishes nm[i] for every i in idx and waits for every ack.
// It returns the indexes that failed transiently and the last error; a
// non-transient error or ctx's end returns at once.
func (t *Transport) publishRound(ctx context.Context, nm []*nats.Msg, idx []int, futures []jetstream.PubAckFuture, retried []bool, results []transport.PublishResult) ([]int, error) {
	var failed []int
	var lastErr error
	waitFor := func(i int) error {
		f := futures[i]
		if f == nil {
			return nil // failed to publish; already in failed
		}
		futures[i] = nil
		select {
		case ack := <-f.Ok():
			results[i].Duplicate = ack.Duplicate && !retried[i]
			return nil
		case err := <-f.Err():
			if !transientPublishErr(err) {
				return err
			}
			failed = append(failed, i)
			lastErr = err
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	window := t.cfg.MaxAsyncPending
	for n, i := range idx {
		if n >= window {
			// Keep at most window publishes of this call in flight.
			if err := waitFor(idx[n-window]); err != nil {
				return nil, err
			}
		}
		f, err := t.js.PublishMsgAsync(nm[i])
		if err != nil {
			if !transientPublishErr(err) {
				return nil, err
			}
			failed = append(failed, i)
			lastErr = err
			continue
		}
		futures[i] = f
	}
	for _, i := range idx {
		if err := waitFor(i); err != nil {
			return nil, err
		}
	}
	return failed, lastErr
}

// Consume runs a durable pull consumer named cfg.Group on stream and calls
// h from at most cfg.Concurrency goroutines until ctx is cancelled. Messages
// are pulled in requests of up to twice the concurrency, one request at a
// time, so at most that many wait in this process besides those being
// handled. On cancellation it stops pulling, lets the last pull request
// end (at most fetchWait), hands every message it pulled to h (with ctx
// done), waits for running handlers and returns nil. It keeps consuming across reconnects
// and server restarts. Group must be a valid JetStream consumer name (no
// '.', '*', '>' or blanks).
func (t *Transport) Consume(ctx context.Context, stream transport.Stream, cfg transport.ConsumerConfig, h transport.Handler) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	info, err := lookupStream(stream)
	if err != nil {
		return err
	}
	if err := cfg.Check(h); err != nil {
		return fmt.Errorf("natsjs: consume: %w", err)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = DefaultAckWait
	}
	if cfg.MaxAckPending <= 0 {
		cfg.MaxAckPending = DefaultMaxAckPending
	}
	batch := min(2*cfg.Concurrency, maxPullBatch, cfg.MaxAckPending)
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Group,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxAckPending: cfg.MaxAckPending,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
	log := t.log.With("stream", info.name, "group", cfg.Group)

	cons, err := t.js.CreateOrUpdateConsumer(ctx, info.name, cc)
	if err != nil {
		if ctx.Err() != nil {
			return nil // cancelled during setup: nothing to stop
		}
		return t.wrapErr(fmt.Sprintf("create consumer %s on %s", cfg.Group, info.name), err)
	}

	work := make(chan jetstream.Msg)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for m := range work {
				h(ctx, &received{m: m, prefixLen: len(info.prefix), t: t})
			}
		})
	}
	defer func() {
		close(work)
		wg.Wait()
	}()

	wait := minBackoff
	for ctx.Err() == nil {
		err := t.fetch(cons, batch, work)
		if err == nil {
			wait = minBackoff
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if t.closed.Load() || t.nc.IsClosed() {
			return fmt.Errorf("natsjs: consume %s on %s: %w", cfg.Group, info.name, transport.ErrClosed)
		}
		if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
			errors.Is(err, jetstream.ErrBadRequest) {
			log.Warn("natsjs: consumer lost, recreating", "err", err)
			if c, rerr := t.recreateConsumer(ctx, info, cc); rerr == nil {
				cons = c
			} else {
				log.Warn("natsjs: recreate consumer failed", "err", rerr)
			}
		} else {
			log.Debug("natsjs: pull failed, retrying", "err", err)
		}
		if sleepCtx(ctx, wait) != nil {
			break
		}
		wait = min(wait*2, maxBackoff)
	}
	return nil
}

// Backoff bounds between failed pulls.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// fetchWait is how long one pull request waits for messages before the
// next one replaces it. It bounds how long a stopping consumer waits for
// its last request to end, and what a lost request costs; an idle
// consumer sends one request per fetchWait.
const fetchWait = time.Second

// fetch issues one pull request for up to batch messages and hands each
// message to a worker as it arrives. It returns nil when the request
// completes or expires normally.
//
// The request is not tied to ctx: abandoning it would drop the messages
// the broker has already sent (they would come back only after the ack
// wait). Once ctx ends, fetch keeps reading until the request ends (at
// most fetchWait) and still hands every message to a worker, whose handler
// sees ctx done and settles the message as it sees fit: a consumer knows
// whether a hand-back it never acted on should count as a delivery, the
// transport does not (the delivery service treats a redelivered message
// as one that may have been sent). Explicit pull requests are used rather
// than the Messages iterator so that a lost or unanswered request never
// stalls the consumer for longer than fetchWait.
func (t *Transport) fetch(cons jetstream.Consumer, batch int, work chan<- jetstream.Msg) error {
	mb, err := cons.Fetch(batch, jetstream.FetchMaxWait(fetchWait))
	if err != nil {
		return err
	}
	for m := range mb.Messages() {
		work <- m
	}
	err = mb.Error()
	if err == nil || errors.Is(err, nats.ErrTimeout) {
		return nil
	}
	return err
}

// recreateConsumer recreates the consumer and, if the broker lost it, the
// consumer's stream.
func (t *Transport) recreateConsumer(ctx context.Context, info streamInfo, cc jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cons, err := t.js.CreateOrUpdateConsumer(ctx, info.name, cc)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if err := t.ensureStream(ctx, info.stream); err != nil {
			return nil, err
		}
		cons, err = t.js.CreateOrUpdateConsumer(ctx, info.name, cc)
	}
	if err != nil {
		return nil, fmt.Errorf("natsjs: recreate consumer %s on %s: %w", cc.Durable, info.name, err)
	}
	return cons, nil
}

// received adapts a jetstream.Msg to transport.Received.
type received struct {
	m         jetstream.Msg
	prefixLen int
	t         *Transport

	once sync.Once
	msg  transport.Message
	nd   int
}

func (r *received) decode() {
	r.once.Do(func() {
		nm := r.m
		subj := nm.Subject()
		if len(subj) > r.prefixLen {
			subj = subj[r.prefixLen:]
		}
		if subj == emptySubjectToken {
			subj = ""
		}
		r.msg.Subject = subj
		r.msg.Data = nm.Data()
		hdr := nm.Headers()
		n := 0
		for k := range hdr {
			if k != KeyHeader && !strings.HasPrefix(k, "Nats-") {
				n++
			}
		}
		if n > 0 {
			r.msg.Headers = make(map[string]string, n)
		}
		for k, v := range hdr {
			if len(v) == 0 {
				continue
			}
			switch {
			case k == jetstream.MsgIDHeader:
				r.msg.ID = v[0]
			case k == KeyHeader:
				r.msg.Key = v[0]
			case strings.HasPrefix(k, "Nats-"):
			default:
				r.msg.Headers[k] = v[0]
			}
		}
		if md, err := nm.Metadata(); err == nil {
			r.nd = int(md.NumDelivered)
			if r.nd < 2 && r.t != nil {
				rs, now := r.t.restarts, time.Now()
				if rs.unsure.Load() { // disconnected since: the reconnect callback may not have run yet
					rs.seen(r.t.nc.ConnectedServerId(), now)
				}
				if rs.suspect(md.Timestamp, now) {
					r.nd = 2
				}
			}
		}
	})
}

// Message returns the message as published.
func (r *received) Message() *transport.Message {
	r.decode()
	return &r.msg
}

// NumDelivered is the broker's delivery count for this message, raised to
// 2 for a first delivery that may not be one (see restarts).
func (r *received) NumDelivered() int {
	r.decode()
	return r.nd
}

// Ack acknowledges the message with a plain (fire-and-forget) ack rather
// than a double ack that waits for the server's confirmation. At-least-once
// still holds: the ack is sent only after processing, so if it is lost the
// broker redelivers the message after AckWait; the cost is a rare
// duplicate, never a loss.
//
// The ack is fire-and-forget, so ctx is not consulted: a handler that
// finishes its work while Consume's context is being cancelled can still
// ack with that context.
func (r *received) Ack(_ context.Context) error {
	if err := r.m.Ack(); err != nil {
		return fmt.Errorf("natsjs: ack: %w", err)
	}
	return nil
}

// Nak asks for redelivery after delay (at once if delay <= 0). Like Ack it
// is fire-and-forget and does not consult ctx.
func (r *received) Nak(_ context.Context, delay time.Duration) error {
	var err error
	if delay > 0 {
		err = r.m.NakWithDelay(delay)
	} else {
		err = r.m.Nak()
	}
	if err != nil {
		return fmt.Errorf("natsjs: nak: %w", err)
	}
	return nil
}

// InProgress resets the message's AckWait timer on the broker. Like Ack it
// is fire-and-forget and does not consult ctx.
func (r *received) InProgress(_ context.Context) error {
	if err := r.m.InProgress(); err != nil {
		return fmt.Errorf("natsjs: in progress: %w", err)
	}
	return nil
}
