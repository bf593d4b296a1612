// Package transport is the neutral contract between Hookline's services and
// the message broker that carries work between them.
//
// natsjs (NATS JetStream) and kafka (Kafka) implement it. Every
// implementation must pass the conformance suite in transporttest,
// which is the executable form of the guarantees documented here. The
// format of the messages (headers, IDs, consumer groups) belongs to the
// services (services/internal/wire), not to the transport.
package transport

import (
	"context"
	"errors"
	"time"
)

// Stream names one of the two queues of the pipeline.
type Stream string

// The two streams of the pipeline.
const (
	// Events carries accepted events from ingest to fanout. Retention is
	// time-bounded (not work-queue) so events can be replayed from the log.
	Events Stream = "events"
	// Deliveries carries one message per attempt to make: first attempts
	// from fanout, retries (and put-off attempts) from the scheduler when
	// they fall due.
	Deliveries Stream = "deliveries"
)

// Streams lists every stream, in pipeline order.
var Streams = []Stream{Events, Deliveries}

// Message is one unit of work on a stream.
type Message struct {
	// ID identifies the message for broker-side deduplication: publishing
	// two messages with the same ID on the same stream within the
	// deduplication window stores only the first. Required.
	ID string
	// Subject refines the stream address. For Events it is
	// "<tenant>.<event type>"; other streams may leave it empty. It must
	// not contain spaces, '*' or '>'.
	Subject string
	// Key orders and partitions messages (Kafka's message key); messages
	// with the same key land on the same partition. Optional.
	Key string
	// Headers carry hookline-* metadata and the W3C trace context. Keys are
	// case-sensitive and round-trip unchanged.
	Headers map[string]string
	// Data is the opaque payload.
	Data []byte
}

// PublishResult reports what the broker did with one published message.
type PublishResult struct {
	// Duplicate is true when the broker already held a message with the
	// same ID before this Publish call and did not store this one again.
	// An implementation that retried the message internally reports false,
	// since the copy the broker holds may be its own earlier attempt.
	Duplicate bool
}

// Publisher stores messages durably.
type Publisher interface {
	// Publish stores msgs on stream and returns only once every message is
	// durably stored (or recognised as a duplicate). Results are returned
	// in the order of msgs. On error, any subset of msgs may have been
	// stored; callers retry with the same IDs, which deduplicates.
	Publish(ctx context.Context, stream Stream, msgs ...Message) ([]PublishResult, error)
}

// Received is a message handed to a consumer. Exactly one of Ack or Nak
// must eventually be called; until then InProgress keeps the broker from
// redelivering it to another consumer.
type Received interface {
	// Message returns the message as published.
	Message() *Message
	// NumDelivered is 1 on first delivery and grows with each redelivery.
	// It is at least 2 whenever the message may have been handed to a
	// consumer before, including when the broker may have lost its record
	// of doing so (a restarted single server, see natsjs).
	NumDelivered() int
	// Ack marks the message processed; it is not delivered again.
	Ack(ctx context.Context) error
	// Nak asks for redelivery no sooner than delay from now.
	Nak(ctx context.Context, delay time.Duration) error
	// InProgress extends the time the consumer has before the broker
	// considers the message lost and redelivers it.
	InProgress(ctx context.Context) error
}

// Handler processes one received message. It is called from up to
// ConsumerConfig.Concurrency goroutines at once and must Ack or Nak the
// message (possibly after returning).
type Handler func(ctx context.Context, msg Received)

// ConsumerConfig tells Consume how to share and pace a stream's work.
type ConsumerConfig struct {
	// Group names a durable consumer group. Consumers with the same Group
	// on the same stream share its messages: each message goes to one of
	// them at a time. Required.
	Group string
	// Concurrency bounds how many handlers run at once in this process.
	// Zero means 1.
	Concurrency int
	// AckWait is how long an unacknowledged message stays with a consumer
	// before it is redelivered elsewhere. Zero means 30 s.
	AckWait time.Duration
	// MaxAckPending bounds the messages outstanding across the whole group.
	// Zero means an implementation default sized for throughput.
	MaxAckPending int
}

// Check reports what makes cfg and h unusable for Consume: a missing
// Group or a nil handler.
func (cfg ConsumerConfig) Check(h Handler) error {
	if cfg.Group == "" {
		return errors.New("ConsumerConfig.Group is required")
	}
	if h == nil {
		return errors.New("nil handler")
	}
	return nil
}

// Consumer receives messages.
type Consumer interface {
	// Consume calls h for every message of stream for the consumer group
	// cfg.Group until ctx is cancelled, then waits for running handlers
	// to return and returns nil. A message already taken from the broker
	// when ctx ends is still handed to h, with ctx done: the handler
	// settles it (a Nak hands it back to the group at once), and knows
	// whether it acted on it, which a redelivery's NumDelivered cannot
	// tell. It returns an error if the consumer
	// cannot be set up. Messages that are not acknowledged before
	// cfg.AckWait are redelivered, to this or another member of the group.
	Consume(ctx context.Context, stream Stream, cfg ConsumerConfig, h Handler) error
}

// Notifier carries signals: small, best-effort messages to every process
// listening on a topic at the time they are sent. Signals are stored
// nowhere: a process that is not listening, or disconnected, misses them,
// and a listener that falls behind may miss some. They only make work
// happen sooner (the scheduler learns of a short due time without polling
// for it); they must never be the only way work is found.
//
// A topic is 1 to 128 ASCII letters, digits, '-' and '_'; Notify and
// Listen refuse any other.
type Notifier interface {
	// Notify sends data to every current listener of topic, in this
	// process and any other connected to the same broker. It returns once
	// the signal is handed to the connection, not once it arrived
	// anywhere; an error means it was certainly not sent. Notify without
	// any listener succeeds. It does not keep data after it returns.
	Notify(ctx context.Context, topic string, data []byte) error
	// Listen calls fn with the data of every signal sent on topic from the
	// moment it returns until stop is called, one call at a time. data
	// round-trips byte for byte (an empty signal is a call with empty
	// data) and fn may keep it. Signals that arrive while fn runs wait in
	// a queue whose bound the implementation chooses; beyond it they are
	// dropped rather than hold up other traffic. A listener keeps
	// listening across reconnects, missing what is sent while it is
	// disconnected.
	//
	// stop waits for a running call of fn to return; after it, fn is not
	// called again. stop is idempotent and may be called after Close; fn
	// must not call stop or Close. Listen fails if the subscription cannot
	// be registered with the broker before ctx ends.
	Listen(ctx context.Context, topic string, fn func(data []byte)) (stop func(), err error)
}

// Transport is a connected broker client.
type Transport interface {
	Publisher
	Consumer
	Notifier
	// Backlog reports how many messages of stream wait for the consumer
	// group: published, not yet acknowledged, and not yet taken by any
	// member. Messages a member has taken (in its handlers, or prefetched
	// up to ConsumerConfig.MaxAckPending) are not counted. It is a
	// snapshot for pacing decisions, not an exact count; it fails when
	// the group has never consumed.
	Backlog(ctx context.Context, stream Stream, group string) (int64, error)
	// Ready reports whether the broker is reachable, for /readyz.
	Ready(ctx context.Context) error
	// Close releases the connection and stops every listener as its stop
	// function would. In-flight Consume calls must be cancelled through
	// their contexts first.
	Close() error
}

// LagReader reports how far a consumer group is behind a stream: the
// queue lag per stream and group that operators watch. It is optional: a
// caller asks a Transport for it with a type assertion,
//
//	if lr, ok := tr.(transport.LagReader); ok { lag, err := lr.Lag(ctx, stream, group) }
//
// natsjs and kafka implement it; the conformance suite checks it for
// every Transport that does.
type LagReader interface {
	// Lag returns how many messages of stream the consumer group has not
	// yet acknowledged, as the broker sees it when it answers: those not
	// yet delivered to any member (Lag.Pending) plus those delivered and
	// not acknowledged (Lag.Unacked).
	//
	// A group that has never consumed stream (or that the broker no
	// longer knows) is no error: it reports every message the stream
	// retains as Pending and none as Unacked, since a group starts from
	// the oldest retained message. That is the work waiting for it, so a
	// consumer that never started shows as lagging, not as idle.
	//
	// The count is a snapshot for metrics, not for pacing decisions (see
	// Backlog): acknowledgements reach the broker asynchronously, so a
	// message acknowledged a moment ago may still be counted, for at most
	// an interval each implementation documents. Where the broker
	// records acknowledgement as a position in the stream (Kafka's
	// committed offset), a message acknowledged while an older one is not
	// is counted as unacknowledged until the older one is.
	//
	// Lag makes a small, fixed number of requests to the broker, however
	// long the stream, and returns when ctx ends at the latest. It fails
	// for an unknown stream, an empty or (for the broker) invalid group
	// name, a closed Transport (ErrClosed) or a broker that does not
	// answer.
	Lag(ctx context.Context, stream Stream, group string) (Lag, error)
}

// Lag is how far a consumer group is behind a stream (see LagReader).
type Lag struct {
	// Pending counts the messages not yet delivered to any member of
	// the group.
	Pending int64
	// Unacked counts the messages delivered to a member and not yet
	// acknowledged: in its handlers, prefetched by it, or handed back
	// (Nak, an expired AckWait) and waiting to be delivered again. A
	// broker that does not track deliveries can only estimate it; the
	// implementation documents how.
	Unacked int64
}

// Total is every message the group has not acknowledged: Pending plus
// Unacked.
func (l Lag) Total() int64 { return l.Pending + l.Unacked }

// ErrClosed is returned by operations on a closed Transport.
var ErrClosed = errors.New("transport: closed")
