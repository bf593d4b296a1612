// Package kafka implements transport.Transport on Apache Kafka with
// github.com/segmentio/kafka-go.
//
// # Topics
//
// Each transport.Stream maps to one topic, created by New when missing
// with Config.Partitions partitions and Config.ReplicationFactor replicas:
//
//	transport.Events     hookline.events      keyed by Message.Key (the tenant)
//	transport.Deliveries hookline.deliveries  keyed by Message.Key (the subscription id)
//
// A topic that exists with fewer partitions than configured is an error
// (New refuses to start rather than silently break the configured
// parallelism); more partitions are accepted. A message without a Key is
// partitioned by its ID, so every copy of one ID lands on one partition.
//
// Message.ID, Message.Subject travel in the reserved headers IDHeader and
// SubjectHeader; Message.Key is the Kafka record key; Message.Headers are
// Kafka record headers, byte for byte. Header names starting with
// ReservedHeaderPrefix are refused by Publish.
//
// # Publishing
//
// One kafka.Writer per Transport, with RequiredAcks = RequireAll and a
// BatchTimeout of Config.BatchTimeout (a few milliseconds: the kafka-go
// default of one second would add a second to every Publish). Publish
// returns once every message was acknowledged by all in-sync replicas.
//
// # Deduplication
//
// Kafka has no broker-side deduplication by message ID, so this package
// provides two weaker layers and says so:
//
//  1. Producer window: a Transport remembers, per stream, the IDs it has
//     itself published successfully during the last Config.DuplicateWindow.
//     Publishing such an ID again (or twice in one call) writes nothing and
//     reports Duplicate=true: the broker certainly holds the earlier copy.
//     A copy published by another process is not seen by this window and
//     is reported Duplicate=false.
//  2. Consumer window: every partition consumer skips (and commits past) a
//     record whose ID it has already seen on that partition within
//     Config.DuplicateWindow, by record timestamp. When a partition is
//     assigned, the consumer first reads back the records of the last
//     DuplicateWindow before the committed offset to fill its window, so
//     the skip also holds across a rebalance or a crash. Because copies of
//     one ID share a Key (or, keyless, the ID) they share a partition.
//
// Together: a copy of an ID published within DuplicateWindow of the first
// with the same Key is never handed to a consumer twice as two different
// records (it can still be redelivered as the same record, at least once,
// with NumDelivered >= 2). Copies further apart, or with different Keys,
// are both delivered. Duplicate=true is reported only by layer 1.
//
// # Consuming
//
// See Transport.Consume for consumer groups, per-partition concurrency,
// offset commits, Nak with delay, AckWait and NumDelivered.
//
// # Signals
//
// Signals (transport.Notifier) are records on the single-partition topic
// SignalsTopic (short retention, Config.SignalRetention), keyed by the
// signal topic. Each Listen reads that partition from the log end as it was
// when Listen was called, so every signal sent after Listen returned is
// seen, and nothing older is replayed. This differs from NATS in one
// respect: signals are kept by the broker for SignalRetention (never read
// again by this package), not "stored nowhere".
//
// # Connecting, reconnecting and failures
//
// New first opens one connection of its own to a broker, as every
// connection of the Transport is opened (TCP, TLS, SASL), then ensures the
// topics. What retrying cannot fix fails New at once, with an error that
// says what to change: a broker certificate Config.TLS does not trust, a
// broker that refuses the TLS connection (a client certificate it
// requires) or does not speak TLS, SASL credentials or a mechanism the
// broker refuses, a topic the broker will not create (named in the error),
// a stream topic with too few partitions. Anything else (nothing listening,
// timeouts, a broker starting up) is retried until New's context ends,
// which logs one warning, repeated at most every 30 s while it lasts, and
// one info line once connected; the error then names the brokers and the
// last failure.
//
// Once open, every connection (kafka-go's) reconnects by itself. A
// Transport checks every second that a broker answers, and logs one
// warning when none does ("lost the connection") and one info line when
// one does again; a lasting outage is repeated every 30 s. Meanwhile
// Publish fails when its context ends, or sooner once kafka-go has made 10
// attempts (it goes on with a batch in the background after the context
// ends, so a failed Publish may still store its messages: retry with the
// same IDs, which consumers deduplicate); Notify fails likewise; consumers
// hand out no new messages, as their readers and group membership fail,
// and keep the acknowledgements of the messages in their handlers until
// they can commit them; listeners wait. When a broker is back, the writer,
// readers and groups reconnect without help: nothing Publish reported
// stored is lost (as far as the broker kept it), listeners read on from
// where they were, and each consumer rejoins its group and resumes from
// its committed offsets, within the group's session timeout of the
// broker's return (a restarted broker waits for the members it
// remembers). Ready makes a round trip to a broker (not cached metadata),
// so it reports an outage at once.
package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/internal/signalq"
)

// Topic names.
const (
	EventsTopic     = "hookline.events"
	DeliveriesTopic = "hookline.deliveries"
	// SignalsTopic carries transport.Notifier signals (one partition).
	SignalsTopic = "hookline.signals"
)

// Reserved record headers. ReservedHeaderPrefix starts every header this
// package uses for itself; Publish refuses user headers with that prefix,
// and they never appear in a received Message's Headers.
const (
	ReservedHeaderPrefix = "hookline-transport-"
	IDHeader             = ReservedHeaderPrefix + "id"
	SubjectHeader        = ReservedHeaderPrefix + "subject"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultPartitions        = 12
	DefaultReplicationFactor = 1
	DefaultEventsRetention   = 7 * 24 * time.Hour
	DefaultDeliveryRetention = 7 * 24 * time.Hour
	DefaultSignalRetention   = time.Minute
	DefaultDuplicateWindow   = 30 * time.Second
	DefaultBatchTimeout      = 2 * time.Millisecond
	DefaultDialTimeout       = 5 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultAckWait           = 30 * time.Second
	DefaultMaxAckPending     = 5000
	DefaultSignalBuffer      = 256
	DefaultCommitInterval    = 100 * time.Millisecond
	DefaultHeartbeatInterval = 500 * time.Millisecond
	DefaultSessionTimeout    = 10 * time.Second
	DefaultRebalanceTimeout  = 10 * time.Second
)

// SASL mechanisms accepted in SASL.Mechanism.
const (
	ScramSHA256 = "SCRAM-SHA-256"
	ScramSHA512 = "SCRAM-SHA-512"
	Plain       = "PLAIN"
)

// SASL configures SASL authentication.
type SASL struct {
	// Mechanism is ScramSHA256, ScramSHA512 or Plain.
	Mechanism string
	Username  string
	Password  string
}

func (s *SASL) mechanism() (sasl.Mechanism, error) {
	if s == nil {
		return nil, nil
	}
	if s.Username == "" {
		return nil, errors.New("SASL username is required")
	}
	switch strings.ToUpper(s.Mechanism) {
	case ScramSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, s.Password)
	case ScramSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, s.Password)
	case Plain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	}
	return nil, fmt.Errorf("unknown SASL mechanism %q (want %s, %s or %s)", s.Mechanism, ScramSHA256, ScramSHA512, Plain)
}

// Config configures a Transport.
type Config struct {
	// Brokers are the bootstrap broker addresses (host:port). Required.
	Brokers []string
	// ClientID identifies the client in the brokers' logs.
	ClientID string
	// Partitions is the partition count of the stream topics. Zero means
	// DefaultPartitions. It bounds a consumer group's parallelism across
	// processes.
	Partitions int
	// ReplicationFactor of the topics New creates (3 on a production
	// cluster). Zero means DefaultReplicationFactor.
	ReplicationFactor int
	// EventsRetention and DeliveriesRetention are the topics' retention.ms.
	// Zero means the defaults.
	EventsRetention, DeliveriesRetention time.Duration
	// SignalRetention is the retention of SignalsTopic. Zero means
	// DefaultSignalRetention.
	SignalRetention time.Duration
	// DuplicateWindow bounds both deduplication windows (see the package
	// documentation). Zero means DefaultDuplicateWindow.
	DuplicateWindow time.Duration
	// BatchTimeout is the writer's batch timeout. Zero means
	// DefaultBatchTimeout.
	BatchTimeout time.Duration
	// RequestTimeout bounds one request to a broker. Zero means
	// DefaultRequestTimeout.
	RequestTimeout time.Duration
	// CommitInterval is how often consumers commit offsets. Zero means
	// DefaultCommitInterval.
	CommitInterval time.Duration
	// HeartbeatInterval, SessionTimeout and RebalanceTimeout tune consumer
	// group membership. Zero means the defaults.
	HeartbeatInterval, SessionTimeout, RebalanceTimeout time.Duration
	// SignalBuffer bounds the signals waiting for one listener's function;
	// beyond it they are dropped. Zero means DefaultSignalBuffer.
	SignalBuffer int
	// SASL, if set, authenticates every connection.
	SASL *SASL
	// TLS, if set, secures every connection. Without ServerName, a
	// broker's certificate is verified for the host of its address. To
	// build it from PEM files (CA bundle, optional client certificate and
	// key for mutual TLS), use tlsfiles.ClientConfig's TLSConfig
	// (package github.com/hookline/hookline/pkg/tlsfiles).
	TLS *tls.Config
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = DefaultReplicationFactor
	}
	if c.SignalBuffer == 0 {
		c.SignalBuffer = DefaultSignalBuffer
	}
	def(&c.EventsRetention, DefaultEventsRetention)
	def(&c.DeliveriesRetention, DefaultDeliveryRetention)
	def(&c.SignalRetention, DefaultSignalRetention)
	def(&c.DuplicateWindow, DefaultDuplicateWindow)
	def(&c.BatchTimeout, DefaultBatchTimeout)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.CommitInterval, DefaultCommitInterval)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.SessionTimeout, DefaultSessionTimeout)
	def(&c.RebalanceTimeout, DefaultRebalanceTimeout)
}

func topicOf(s transport.Stream) (string, error) {
	switch s {
	case transport.Events:
		return EventsTopic, nil
	case transport.Deliveries:
		return DeliveriesTopic, nil
	}
	return "", fmt.Errorf("kafka: unknown stream %q", s)
}

// Transport is a transport.Transport on a Kafka cluster. It is safe for
// concurrent use.
type Transport struct {
	cfg    Config
	log    *slog.Logger
	dialer *kafkago.Dialer
	rt     *kafkago.Transport
	client *kafkago.Client
	writer *kafkago.Writer
	closed atomic.Bool
	reach  *reachability // logs losing and regaining the brokers, once each

	stopWatch context.CancelFunc // ends watch
	watching  sync.WaitGroup     // watch

	dedup map[string]*idWindow // per topic: IDs this Transport published

	mu        sync.Mutex // serialises listeners' background closes (bg.Go)
	listeners signalq.Set[*listener]
	bg        sync.WaitGroup // background closes of listeners' readers
}

var _ transport.Transport = (*Transport)(nil)

// New connects to the brokers and creates the stream topics and
// SignalsTopic when missing. It is safe when several replicas start at
// once. A nil logger discards logs.
//
// Failures that retrying cannot fix make New return at once with an error
// that says what to change: a broker certificate Config.TLS does not trust
// (or a broker that does not speak TLS, or refuses the client's
// certificate), SASL credentials or a mechanism the broker refuses, a
// topic the broker will not create (the error names the topic), and a
// stream topic with fewer partitions than cfg.Partitions. Anything else
// (nothing listening yet, a timeout, a broker that is starting) is retried
// until ctx ends, with one warning in the log (repeated at most every 30 s
// while it lasts) and one info line once connected; the error returned
// when ctx ends names the brokers and the last failure.
func New(ctx context.Context, cfg Config, logger *slog.Logger) (*Transport, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafka: Config.Brokers is required")
	}
	cfg.setDefaults()
	if cfg.Partitions < 0 || cfg.ReplicationFactor < 0 || cfg.SignalBuffer < 0 {
		return nil, errors.New("kafka: Partitions, ReplicationFactor and SignalBuffer must not be negative")
	}
	mech, err := cfg.SASL.mechanism()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "kafka")
	dialer := &kafkago.Dialer{
		ClientID:      cfg.ClientID,
		Timeout:       DefaultDialTimeout,
		DualStack:     true,
		TLS:           cfg.TLS,
		SASLMechanism: mech,
	}
	rt := &kafkago.Transport{
		DialTimeout: DefaultDialTimeout,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 5 * time.Second,
		ClientID:    cfg.ClientID,
		TLS:         cfg.TLS,
		SASL:        mech,
	}
	addr := kafkago.TCP(cfg.Brokers...)
	t := &Transport{
		cfg:    cfg,
		log:    logger,
		dialer: dialer,
		rt:     rt,
		client: &kafkago.Client{Addr: addr, Transport: rt, Timeout: cfg.RequestTimeout},
		reach:  newReachability(logger, cfg.Brokers),
		dedup:  map[string]*idWindow{EventsTopic: newIDWindow(), DeliveriesTopic: newIDWindow()},
	}
	rt.Dial = t.dial
	t.writer = &kafkago.Writer{
		Addr:         addr,
		Balancer:     &keyOrIDBalancer{},
		RequiredAcks: kafkago.RequireAll,
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    1000,
		MaxAttempts:  10,
		WriteTimeout: cfg.RequestTimeout,
		ReadTimeout:  cfg.RequestTimeout,
		Transport:    rt,
		ErrorLogger:  kafkago.LoggerFunc(func(f string, a ...any) { logger.Debug("kafka-go writer: " + fmt.Sprintf(f, a...)) }),
	}
	if err := t.connect(ctx); err != nil {
		_ = t.writer.Close()
		rt.CloseIdleConnections()
		return nil, err
	}
	wctx, stop := context.WithCancel(context.Background())
	t.stopWatch = stop
	t.watching.Go(func() { t.watch(wctx) })
	return t, nil
}

// errDialClosed refuses a new connection once Close has begun. It is no
// temporary error: a batch kafka-go is still retrying when the brokers
// are away fails at its next attempt instead of making Close wait for its
// remaining attempts.
var errDialClosed = fmt.Errorf("kafka: no new connection: %w", transport.ErrClosed)

// dial opens the connections of t.rt (the writer's and t.client's), none
// once Close has begun.
func (t *Transport) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if t.closed.Load() {
		return nil, errDialClosed
	}
	d := net.Dialer{Timeout: DefaultDialTimeout}
	return d.DialContext(ctx, network, addr)
}

// topicSpec is a topic New ensures.
type topicSpec struct {
	name       string
	partitions int
	retention  time.Duration
}

// connect checks that a broker can be reached (probe), then creates the
// missing topics and checks the partition count of the existing ones. It
// returns a fatal error at once and retries anything else until ctx ends.
// Unreachable brokers are reported through t.reach (one warning, one info
// line once connected); topics that are not ready yet once connected (a
// cluster still propagating a creation, a controller moving) only at
// debug level, and with one warning if that lasts topicsGrace.
func (t *Transport) connect(ctx context.Context) error {
	specs := []topicSpec{
		{EventsTopic, t.cfg.Partitions, t.cfg.EventsRetention},
		{DeliveriesTopic, t.cfg.Partitions, t.cfg.DeliveriesRetention},
		{SignalsTopic, 1, t.cfg.SignalRetention},
	}
	wait := 50 * time.Millisecond
	var (
		last          error
		reached       bool      // the last failure was past probe
		topicsFailing time.Time // since when ensuring the topics fails
		warnTopics    = throttle{every: unreachableRepeat}
	)
	for {
		err := t.probe(ctx)
		if err == nil {
			t.reach.ok()
			if err = t.ensureTopicsOnce(ctx, specs); err == nil {
				return nil
			}
			if isFatal(err) {
				return err
			}
			if ctx.Err() == nil || last == nil {
				last, reached = err, true
			}
			if topicsFailing.IsZero() {
				topicsFailing = time.Now()
			}
			if time.Since(topicsFailing) >= topicsGrace && warnTopics.allow() {
				t.log.Warn("kafka: topics not ready; retrying", "for", time.Since(topicsFailing).Round(time.Second), "err", err)
			} else {
				t.log.Debug("kafka: topics not ready; retrying", "err", err)
			}
		} else {
			if isFatal(err) {
				return err
			}
			if ctx.Err() == nil || last == nil {
				last, reached = err, false // not the failure the end of ctx caused
				t.reach.failed(err)
			}
		}
		if sleepCtx(ctx, wait) != nil {
			if reached {
				return fmt.Errorf("kafka: topics on brokers %s not ready: %w (last error: %v)", strings.Join(t.cfg.Brokers, ","), ctx.Err(), last)
			}
			return fmt.Errorf("kafka: cannot reach brokers %s: %w (last error: %v)", strings.Join(t.cfg.Brokers, ","), ctx.Err(), last)
		}
		wait = min(2*wait, time.Second)
	}
}

// partitionsError reports a topic with fewer partitions than configured.
type partitionsError struct {
	topic      string
	have, want int
}

func (e *partitionsError) Error() string {
	return fmt.Sprintf("kafka: topic %s has %d partitions, fewer than the configured %d; add partitions (kafka-topics --alter --partitions %d) or lower Config.Partitions",
		e.topic, e.have, e.want, e.want)
}

func (t *Transport) ensureTopicsOnce(ctx context.Context, specs []topicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	md, err := t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	have := map[string]int{}
	for _, tp := range md.Topics {
		if tp.Error == nil {
			have[tp.Name] = len(tp.Partitions)
		}
	}
	var create []kafkago.TopicConfig
	for _, s := range specs {
		n, ok := have[s.name]
		if !ok {
			create = append(create, kafkago.TopicConfig{
				Topic:             s.name,
				NumPartitions:     s.partitions,
				ReplicationFactor: t.cfg.ReplicationFactor,
				ConfigEntries: []kafkago.ConfigEntry{
					{ConfigName: "retention.ms", ConfigValue: fmt.Sprint(s.retention.Milliseconds())},
				},
			})
			continue
		}
		if n < s.partitions {
			return &partitionsError{topic: s.name, have: n, want: s.partitions}
		}
	}
	if len(create) == 0 {
		return nil
	}
	resp, err := t.client.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: create})
	if err != nil {
		return fmt.Errorf("create topics: %w", err)
	}
	for name, err := range resp.Errors {
		if err == nil || errors.Is(err, kafkago.TopicAlreadyExists) {
			continue
		}
		if topicErrorFatal(err) {
			return fatal("kafka: cannot create topic %s: %w; create it beforehand or grant this client the right to", name, err)
		}
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	// Another replica may have created a topic meanwhile, with other
	// settings: check again.
	return t.checkPartitions(ctx, specs)
}

func (t *Transport) checkPartitions(ctx context.Context, specs []topicSpec) error {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	md, err := t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: names})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, s := range specs {
		found := false
		for _, tp := range md.Topics {
			if tp.Name != s.name {
				continue
			}
			if tp.Error != nil {
				if topicErrorFatal(tp.Error) {
					return fatal("kafka: topic %s: %w", s.name, tp.Error)
				}
				return fmt.Errorf("topic %s: %w", s.name, tp.Error)
			}
			found = true
			if len(tp.Partitions) < s.partitions {
				return &partitionsError{topic: s.name, have: len(tp.Partitions), want: s.partitions}
			}
		}
		if !found {
			return fmt.Errorf("topic %s not in metadata yet", s.name)
		}
	}
	return nil
}

// keyOrIDBalancer hashes the record key, or the ID header for a record
// without a key, so that copies of one ID share a partition.
type keyOrIDBalancer struct{ h kafkago.Hash }

// Balance implements kafkago.Balancer.
func (b *keyOrIDBalancer) Balance(msg kafkago.Message, partitions ...int) int {
	if len(msg.Key) == 0 {
		for _, h := range msg.Headers {
			if h.Key == IDHeader {
				msg.Key = h.Value
				break
			}
		}
	}
	if len(msg.Key) == 0 {
		return partitions[0]
	}
	return b.h.Balance(msg, partitions...)
}

// idWindow remembers the IDs published during the duplicate window.
type idWindow struct {
	mu    sync.Mutex
	seen  map[string]time.Time
	order []idAt // in publish order, for expiry
}

type idAt struct {
	id string
	at time.Time
}

func newIDWindow() *idWindow { return &idWindow{seen: map[string]time.Time{}} }

// has reports whether id was recorded within window of now.
func (w *idWindow) has(id string, now time.Time, window time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.seen[id]
	return ok && now.Sub(at) < window
}

// add records ids at now and forgets those older than window.
func (w *idWindow) add(ids []string, now time.Time, window time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, id := range ids {
		w.seen[id] = now
		w.order = append(w.order, idAt{id, now})
	}
	n := 0
	for n < len(w.order) && now.Sub(w.order[n].at) >= window {
		if w.seen[w.order[n].id].Equal(w.order[n].at) {
			delete(w.seen, w.order[n].id)
		}
		n++
	}
	if n > 0 {
		w.order = append(w.order[:0:0], w.order[n:]...)
	}
}

// toRecord converts m to a Kafka record on topic.
func toRecord(topic string, m *transport.Message) (kafkago.Message, error) {
	if m.ID == "" {
		return kafkago.Message{}, errors.New("message ID is required")
	}
	if strings.ContainsAny(m.Subject, " *>") {
		return kafkago.Message{}, fmt.Errorf("invalid subject %q: must not contain spaces, '*' or '>'", m.Subject)
	}
	hdrs := make([]kafkago.Header, 0, len(m.Headers)+2)
	hdrs = append(hdrs, kafkago.Header{Key: IDHeader, Value: []byte(m.ID)})
	if m.Subject != "" {
		hdrs = append(hdrs, kafkago.Header{Key: SubjectHeader, Value: []byte(m.Subject)})
	}
	for k, v := range m.Headers {
		if k == "" || strings.HasPrefix(k, ReservedHeaderPrefix) {
			return kafkago.Message{}, fmt.Errorf("invalid or reserved header name %q", k)
		}
		hdrs = append(hdrs, kafkago.Header{Key: k, Value: []byte(v)})
	}
	rec := kafkago.Message{Topic: topic, Headers: hdrs, Value: m.Data}
	if m.Key != "" {
		rec.Key = []byte(m.Key)
	}
	if rec.Value == nil {
		rec.Value = []byte{}
	}
	return rec, nil
}

// fromRecord converts a Kafka record back to the message published.
func fromRecord(r *kafkago.Message) transport.Message {
	m := transport.Message{Key: string(r.Key), Data: r.Value}
	if m.Data == nil {
		m.Data = []byte{}
	}
	for _, h := range r.Headers {
		switch {
		case h.Key == IDHeader:
			m.ID = string(h.Value)
		case h.Key == SubjectHeader:
			m.Subject = string(h.Value)
		case strings.HasPrefix(h.Key, ReservedHeaderPrefix):
		default:
			if m.Headers == nil {
				m.Headers = make(map[string]string, len(r.Headers))
			}
			m.Headers[h.Key] = string(h.Value)
		}
	}
	return m
}

// Publish writes msgs to stream's topic and returns once every record was
// acknowledged by all in-sync replicas (RequiredAcks = RequireAll).
// Results are in the order of msgs. A message whose ID this Transport
// published successfully within Config.DuplicateWindow (or earlier in the
// same call) is not written again and reports Duplicate=true; see the
// package documentation for what deduplication covers. kafka-go retries
// transient failures internally (up to 10 attempts, which go on in the
// background after ctx ends); Publish returns when ctx ends at the latest.
// On error any subset may have been written, and a retry with the same
// IDs writes only those that were not (within this process), others being
// deduplicated by consumers.
func (t *Transport) Publish(ctx context.Context, stream transport.Stream, msgs ...transport.Message) ([]transport.PublishResult, error) {
	if t.closed.Load() {
		return nil, transport.ErrClosed
	}
	topic, err := topicOf(stream)
	if err != nil {
		return nil, err
	}
	results := make([]transport.PublishResult, len(msgs))
	if len(msgs) == 0 {
		return results, nil
	}
	win := t.dedup[topic]
	now := time.Now()
	recs := make([]kafkago.Message, 0, len(msgs))
	ids := make([]string, 0, len(msgs))
	inBatch := make(map[string]struct{}, len(msgs))
	for i := range msgs {
		rec, err := toRecord(topic, &msgs[i])
		if err != nil {
			return nil, fmt.Errorf("kafka: publish message %d (id %q): %w", i, msgs[i].ID, err)
		}
		if _, dup := inBatch[msgs[i].ID]; dup || win.has(msgs[i].ID, now, t.cfg.DuplicateWindow) {
			results[i].Duplicate = true
			continue
		}
		inBatch[msgs[i].ID] = struct{}{}
		recs = append(recs, rec)
		ids = append(ids, msgs[i].ID)
	}
	if len(recs) == 0 {
		return results, nil
	}
	err = t.writer.WriteMessages(ctx, recs...)
	if err == nil {
		win.add(ids, time.Now(), t.cfg.DuplicateWindow)
		return results, nil
	}
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == len(ids) {
		ok := make([]string, 0, len(ids))
		for i, e := range werrs {
			if e == nil {
				ok = append(ok, ids[i])
			}
		}
		win.add(ok, time.Now(), t.cfg.DuplicateWindow)
		err = fmt.Errorf("%d of %d failed, first: %w", werrs.Count(), len(ids), firstErr(werrs))
	}
	return nil, t.wrapErr(fmt.Sprintf("publish %d messages to %s", len(msgs), topic), err)
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (t *Transport) wrapErr(op string, err error) error {
	if t.closed.Load() {
		return fmt.Errorf("kafka: %s: %w (%w)", op, transport.ErrClosed, err)
	}
	return fmt.Errorf("kafka: %s: %w", op, err)
}

// DuplicateWindow is how long the producer and consumer windows remember
// a message ID (Config.DuplicateWindow): a copy published later than that
// after the first is delivered again.
func (t *Transport) DuplicateWindow() time.Duration { return t.cfg.DuplicateWindow }

// Ready reports whether a broker answers a request now (an ApiVersions
// round trip on the Transport's connections, not cached metadata).
func (t *Transport) Ready(ctx context.Context) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	if err := t.ping(ctx); err != nil {
		return t.wrapErr("ready", err)
	}
	return nil
}

// Close stops every listener and releases the connections. In-flight
// Consume calls must be cancelled through their contexts first. It waits
// for the writes kafka-go still has in hand on open connections; a write
// that needs a new connection (the brokers are away) fails instead, so
// Close does not wait out kafka-go's retries. It is idempotent.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		return nil
	}
	t.stopWatch()
	t.watching.Wait()
	for _, l := range t.listeners.Close() {
		l.stop()
	}
	t.bg.Wait()
	err := t.writer.Close()
	t.rt.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("kafka: close writer: %w", err)
	}
	return nil
}

// partitionOffsets returns the first and last (log end) offsets of the
// given partitions of topic.
func (t *Transport) partitionOffsets(ctx context.Context, topic string, parts []int) (first, last map[int]int64, err error) {
	reqs := make([]kafkago.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafkago.FirstOffsetOf(p), kafkago.LastOffsetOf(p))
	}
	resp, err := t.client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	first, last = map[int]int64{}, map[int]int64{}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		first[po.Partition] = po.FirstOffset
		last[po.Partition] = po.LastOffset
	}
	for _, p := range parts {
		if _, ok := last[p]; !ok {
			return nil, nil, fmt.Errorf("list offsets of %s: partition %d missing", topic, p)
		}
	}
	return first, last, nil
}

// partitionsOf returns the partition ids of topic.
func (t *Transport) partitionsOf(ctx context.Context, topic string) ([]int, error) {
	md, err := t.client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, tp := range md.Topics {
		if tp.Name == topic {
			if tp.Error != nil {
				return nil, fmt.Errorf("metadata of %s: %w", topic, tp.Error)
			}
			ids := make([]int, len(tp.Partitions))
			for i, p := range tp.Partitions {
				ids[i] = p.ID
			}
			return ids, nil
		}
	}
	return nil, fmt.Errorf("metadata of %s: topic missing", topic)
}

// Backlog reports the messages of stream that wait for group: for every
// partition, the log end minus the later of the committed offset and the
// position up to which a current member has taken messages (published in
// the commit metadata, at most Config.CommitInterval old). It fails when
// the group has committed nothing on the topic, that is never consumed.
func (t *Transport) Backlog(ctx context.Context, stream transport.Stream, group string) (int64, error) {
	if t.closed.Load() {
		return 0, transport.ErrClosed
	}
	topic, err := topicOf(stream)
	if err != nil {
		return 0, err
	}
	parts, err := t.partitionsOf(ctx, topic)
	if err != nil {
		return 0, t.wrapErr("backlog", err)
	}
	committed, err := t.fetchCommitted(ctx, group, topic, parts)
	if err != nil {
		return 0, t.wrapErr("backlog", err)
	}
	any := false
	for _, c := range committed {
		if c.offset >= 0 {
			any = true
		}
	}
	if !any {
		return 0, fmt.Errorf("kafka: backlog of group %s on %s: the group has never consumed", group, topic)
	}
	first, last, err := t.partitionOffsets(ctx, topic, parts)
	if err != nil {
		return 0, t.wrapErr("backlog", err)
	}
	var n int64
	for _, p := range parts {
		from := first[p]
		c := committed[p]
		if c.offset >= 0 {
			from = max(from, c.offset)
		}
		if md, ok := parseMeta(c.metadata); ok && md.state == stateHeld {
			from = max(from, md.pos)
		}
		n += max(0, last[p]-from)
	}
	return n, nil
}

var _ transport.LagReader = (*Transport)(nil)

// Lag reports, summed over the partitions of stream's topic, the records
// from the group's committed offset to the log end: Kafka's consumer lag,
// as kafka-consumer-groups --describe shows it. A partition on which the
// group has no committed offset (or one below the oldest retained record)
// counts from the oldest retained record, where the group starts it; a
// group that never committed anything thus reports every retained record,
// all as Pending. Records the retention has removed are never counted.
//
// Kafka does not track deliveries, so the split is this package's own
// record of them, the "held" commit metadata (see Transport.Consume):
// while the group has members, the records of a partition from its
// committed offset up to the position its owner has taken messages to
// are Unacked, and the rest Pending. That counts, besides the messages in
// handlers, those a member keeps pending to redeliver (Nak, an expired
// AckWait) and those acknowledged after an older one of their partition
// that is not; the committed offset (one past the oldest unacknowledged
// message) counts all of them as not acknowledged. A group without
// members (all stopped, or gone past their session timeout) has nothing
// Unacked. Commits happen every Config.CommitInterval, so the counts trail
// the handlers' acknowledgements by up to that.
//
// It asks for the topic's metadata, then at once for the group's
// committed offsets (OffsetFetch) and state (DescribeGroups) from its
// coordinator and for the partitions' offsets (ListOffsets, one request
// per leading broker): a handful of requests however long the topic,
// each bounded by ctx and Config.RequestTimeout. It needs the rights
// Backlog needs, and Describe on the group for DescribeGroups.
func (t *Transport) Lag(ctx context.Context, stream transport.Stream, group string) (transport.Lag, error) {
	if t.closed.Load() {
		return transport.Lag{}, transport.ErrClosed
	}
	topic, err := topicOf(stream)
	if err != nil {
		return transport.Lag{}, err
	}
	if group == "" {
		return transport.Lag{}, errors.New("kafka: lag: group is required")
	}
	op := fmt.Sprintf("lag of group %s on %s", group, topic)
	parts, err := t.partitionsOf(ctx, topic)
	if err != nil {
		return transport.Lag{}, t.wrapErr(op, err)
	}
	var (
		wg                   sync.WaitGroup
		committed            map[int]committedOffset
		first, last          map[int]int64
		members              bool
		errCom, errOff, errG error
	)
	wg.Go(func() { committed, errCom = t.fetchCommitted(ctx, group, topic, parts) })
	wg.Go(func() { first, last, errOff = t.partitionOffsets(ctx, topic, parts) })
	wg.Go(func() { members, errG = t.groupHasMembers(ctx, group) })
	wg.Wait()
	if errors.Is(errCom, kafkago.GroupIdNotFound) {
		// Some brokers (kfake among them) answer so for a group that
		// never committed, others with no offsets: nothing committed.
		committed, errCom = map[int]committedOffset{}, nil
		for _, p := range parts {
			committed[p] = committedOffset{offset: -1}
		}
	}
	if err := errors.Join(errCom, errOff, errG); err != nil {
		return transport.Lag{}, t.wrapErr(op, err)
	}
	var lag transport.Lag
	for _, p := range parts {
		end := last[p]
		from := first[p]
		c := committed[p]
		if c.offset >= 0 {
			from = max(from, c.offset)
		}
		// The requests are not one snapshot: a commit may have passed
		// the log end ListOffsets saw.
		from = min(from, end)
		taken := from
		if md, ok := parseMeta(c.metadata); ok && members && md.state == stateHeld {
			taken = min(max(md.pos, from), end)
		}
		lag.Unacked += taken - from
		lag.Pending += end - taken
	}
	return lag, nil
}

// groupHasMembers reports whether the consumer group has members now, as
// its coordinator sees it. A group the coordinator does not know has none.
func (t *Transport) groupHasMembers(ctx context.Context, group string) (bool, error) {
	resp, err := t.client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return false, fmt.Errorf("describe group %s: %w", group, err)
	}
	for _, g := range resp.Groups {
		if g.GroupID != group {
			continue
		}
		// kafka-go reports member metadata it cannot decode as an error
		// of the group too: only a broker's error code matters here.
		var ke kafkago.Error
		if g.Error != nil && errors.As(g.Error, &ke) {
			if ke == kafkago.GroupIdNotFound {
				return false, nil
			}
			return false, fmt.Errorf("describe group %s: %w", group, g.Error)
		}
		switch g.GroupState {
		case "", "Empty", "Dead":
			return false, nil
		}
		return true, nil
	}
	return false, fmt.Errorf("describe group %s: not in the response", group)
}

// committedOffset is a partition's committed offset (-1 if none) and its
// metadata.
type committedOffset struct {
	offset   int64
	metadata string
}

func (t *Transport) fetchCommitted(ctx context.Context, group, topic string, parts []int) (map[int]committedOffset, error) {
	resp, err := t.client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	if resp.Error != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, resp.Error)
	}
	out := make(map[int]committedOffset, len(parts))
	for _, p := range parts {
		out[p] = committedOffset{offset: -1}
	}
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			return nil, fmt.Errorf("fetch offsets of group %s, %s/%d: %w", group, topic, po.Partition, po.Error)
		}
		out[po.Partition] = committedOffset{offset: po.CommittedOffset, metadata: po.Metadata}
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
