package natsjs

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/internal/signalq"
)

// SignalSubjectPrefix is the start of the core NATS subject of every
// signal: a signal on topic T is published on SignalSubjectPrefix + T. No
// stream captures these subjects.
const SignalSubjectPrefix = "hookline.signal."

// maxTopicLen bounds the length of a signal topic, as transport.Notifier
// documents.
const maxTopicLen = 128

// flushAttemptTimeout bounds one attempt of Listen to have the server
// confirm the subscription; Listen tries again until its ctx ends.
const flushAttemptTimeout = 5 * time.Second

// signalSubject returns the NATS subject of topic, or an error naming the
// topic if it is not 1 to maxTopicLen ASCII letters, digits, '-' and '_'.
func signalSubject(topic string) (string, error) {
	if topic == "" {
		return "", errors.New(`invalid signal topic "": empty`)
	}
	if len(topic) > maxTopicLen {
		return "", fmt.Errorf("invalid signal topic %q: %d bytes, at most %d", topic, len(topic), maxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		switch c := topic[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return "", fmt.Errorf("invalid signal topic %q: byte %q at %d; want ASCII letters, digits, '-' and '_'", topic, c, i)
		}
	}
	return SignalSubjectPrefix + topic, nil
}

// Notify publishes data on the subject SignalSubjectPrefix+topic with a
// plain core NATS publish: it returns once the message is in the
// connection's write buffer (while the connection is reconnecting, in its
// reconnect buffer, Config.ReconnectBufSize, which is sent once it is back;
// a full buffer is an error). Notify does not keep data after it returns.
// It fails, sending nothing, on an invalid topic, an ended ctx, or a
// closed Transport (transport.ErrClosed).
func (t *Transport) Notify(ctx context.Context, topic string, data []byte) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	subject, err := signalSubject(topic)
	if err != nil {
		return fmt.Errorf("natsjs: notify: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsjs: notify %s: %w", topic, err)
	}
	if err := t.nc.Publish(subject, data); err != nil {
		return t.wrapErr("notify "+topic, err)
	}
	return nil
}

// Listen subscribes to the subject SignalSubjectPrefix+topic on this
// Transport's connection and returns once the server has confirmed the
// subscription (a flush round trip), so every signal sent through this
// server afterwards reaches fn. On a cluster, the interest reaches the
// other servers asynchronously: a signal sent through another server just
// after Listen returned may be missed, which only delays work.
//
// fn is called from one goroutine, one call at a time, with a slice it
// may keep. Signals that arrive while fn runs wait in a queue of
// Config.SignalBuffer signals; when it is full, further signals for this
// listener are dropped (logged at debug level) so that a slow listener
// never holds up the connection. The subscription is re-established after
// a reconnect; signals sent while the connection is down are missed.
//
// stop unsubscribes, then waits for a running call of fn to return; after
// stop returns fn is not called again. stop is idempotent and safe to call
// after Close; fn must not call stop or Close (stop waits for fn).
//
// Listen fails on an invalid topic, a nil fn, a closed Transport
// (transport.ErrClosed), or when the server has not confirmed the
// subscription before ctx ends; nothing is left subscribed then.
func (t *Transport) Listen(ctx context.Context, topic string, fn func(data []byte)) (stop func(), err error) {
	if t.closed.Load() {
		return nil, transport.ErrClosed
	}
	subject, err := signalSubject(topic)
	if err != nil {
		return nil, fmt.Errorf("natsjs: listen: %w", err)
	}
	if fn == nil {
		return nil, fmt.Errorf("natsjs: listen %s: nil function", topic)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("natsjs: listen %s: %w", topic, err)
	}
	l := &listener{t: t, topic: topic, q: signalq.Start(fn, t.cfg.SignalBuffer)}
	// The handler runs on the subscription's own delivery goroutine and
	// never blocks: it queues the signal for l's goroutine or drops it.
	sub, err := t.nc.Subscribe(subject, l.enqueue)
	if err != nil {
		l.q.Stop()
		return nil, t.wrapErr("listen "+topic, err)
	}
	if err := t.flush(ctx); err != nil {
		_ = sub.Unsubscribe()
		l.q.Stop()
		return nil, t.wrapErr("listen "+topic+": register the subscription with the server", err)
	}
	l.sub = sub
	if !t.listeners.Add(l) {
		// Close ran meanwhile and did not see l; nc.Close ended sub.
		l.q.Stop()
		return nil, transport.ErrClosed
	}
	return l.stop, nil
}

// flush waits until the server has processed everything sent on the
// connection so far, retrying until ctx ends: each attempt is bounded by
// flushAttemptTimeout, and a reconnect (which fails pending flushes with
// nats.ErrConnectionClosed) is waited out.
func (t *Transport) flush(ctx context.Context) error {
	wait := minBackoff
	for {
		actx, cancel := context.WithTimeout(ctx, flushAttemptTimeout)
		err := t.nc.FlushWithContext(actx)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("%w (last attempt: %v)", ctx.Err(), err)
		case t.closed.Load() || t.nc.IsClosed():
			return fmt.Errorf("%w (%w)", transport.ErrClosed, err)
		}
		t.log.Debug("natsjs: flush failed, retrying", "err", err, "status", t.nc.Status().String())
		if err := sleepCtx(ctx, wait); err != nil {
			return fmt.Errorf("%w (waiting for the connection)", err)
		}
		wait = min(wait*2, time.Second)
	}
}

// listener is one Listen call: a subscription whose handler queues
// signals in q, whose goroutine calls the listener's function for each.
type listener struct {
	t     *Transport
	topic string
	sub   *nats.Subscription
	q     *signalq.Queue
	once  sync.Once
}

// enqueue is the subscription's message handler.
func (l *listener) enqueue(m *nats.Msg) {
	if !l.q.Offer(m.Data) {
		l.t.log.Debug("natsjs: signal dropped: listener busy, queue full", "topic", l.topic, "queue", l.q.Cap())
	}
}

// stop ends the listener and waits for its goroutine; idempotent.
func (l *listener) stop() {
	l.once.Do(func() {
		// After Close the connection has already dropped the subscription.
		if err := l.sub.Unsubscribe(); err != nil && !l.t.closed.Load() && !errors.Is(err, nats.ErrConnectionClosed) {
			l.t.log.Debug("natsjs: unsubscribe signal listener", "topic", l.topic, "err", err)
		}
		l.t.listeners.Remove(l)
	})
	l.q.Stop()
}
