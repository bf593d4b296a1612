package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/internal/signalq"
)

// maxTopicLen bounds the length of a signal topic, as transport.Notifier
// documents.
const maxTopicLen = 128

// checkTopic returns an error naming topic unless it is 1 to maxTopicLen
// ASCII letters, digits, '-' and '_'.
func checkTopic(topic string) error {
	if topic == "" {
		return errors.New(`invalid signal topic "": empty`)
	}
	if len(topic) > maxTopicLen {
		return fmt.Errorf("invalid signal topic %q: %d bytes, at most %d", topic, len(topic), maxTopicLen)
	}
	for i := 0; i < len(topic); i++ {
		switch c := topic[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("invalid signal topic %q: byte %q at %d; want ASCII letters, digits, '-' and '_'", topic, c, i)
		}
	}
	return nil
}

// Notify writes data as a record keyed by topic on SignalsTopic and
// returns once the broker has acknowledged it (stronger than the
// contract's "handed to the connection"). It does not keep data. It fails,
// sending nothing, on an invalid topic, an ended ctx or a closed Transport
// (transport.ErrClosed); a failed write may or may not have been stored.
func (t *Transport) Notify(ctx context.Context, topic string, data []byte) error {
	if t.closed.Load() {
		return transport.ErrClosed
	}
	if err := checkTopic(topic); err != nil {
		return fmt.Errorf("kafka: notify: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kafka: notify %s: %w", topic, err)
	}
	v := make([]byte, len(data)) // the writer may hold the slice after a failed call
	copy(v, data)
	rec := kafkago.Message{Topic: SignalsTopic, Key: []byte(topic), Value: v}
	if err := t.writer.WriteMessages(ctx, rec); err != nil {
		return t.wrapErr("notify "+topic, err)
	}
	return nil
}

// Listen reads SignalsTopic from its log end as it is when Listen is
// called (asked of the broker before Listen returns, so every signal sent
// after Listen returned is read) and calls fn with the data of each
// record keyed by topic, one call at a time, from one goroutine. Signals
// that arrive while fn runs wait in a queue of Config.SignalBuffer; beyond
// it they are dropped (logged at debug level). The reader reconnects by
// itself; signals sent while it cannot reach the broker are read once it
// can, if still retained.
//
// stop closes the reader and waits for a running call of fn; afterwards
// fn is not called again. stop is idempotent and safe after Close.
func (t *Transport) Listen(ctx context.Context, topic string, fn func(data []byte)) (stop func(), err error) {
	if t.closed.Load() {
		return nil, transport.ErrClosed
	}
	if err := checkTopic(topic); err != nil {
		return nil, fmt.Errorf("kafka: listen: %w", err)
	}
	if fn == nil {
		return nil, fmt.Errorf("kafka: listen %s: nil function", topic)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kafka: listen %s: %w", topic, err)
	}
	var end int64
	wait := 50 * time.Millisecond
	for {
		_, last, err := t.partitionOffsets(ctx, SignalsTopic, []int{0})
		if err == nil {
			end = last[0]
			break
		}
		if t.closed.Load() {
			return nil, transport.ErrClosed
		}
		if sleepCtx(ctx, wait) != nil {
			return nil, t.wrapErr("listen "+topic, fmt.Errorf("%w (last error: %v)", ctx.Err(), err))
		}
		wait = min(2*wait, time.Second)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:        t.cfg.Brokers,
		Topic:          SignalsTopic,
		Partition:      0,
		Dialer:         t.dialer,
		MinBytes:       1,
		MaxBytes:       4 << 20,
		MaxWait:        readerMaxWait,
		QueueCapacity:  64,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
	})
	if err := r.SetOffset(end); err != nil {
		_ = r.Close()
		return nil, t.wrapErr("listen "+topic, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	l := &listener{t: t, topic: topic, r: r, cancel: cancel, q: signalq.Start(fn, t.cfg.SignalBuffer)}
	l.wg.Go(func() { l.read(lctx) })
	if !t.listeners.Add(l) {
		cancel()
		l.wg.Wait()
		l.q.Stop()
		_ = r.Close()
		return nil, transport.ErrClosed
	}
	return l.stop, nil
}

// listener is one Listen call: a reader that queues matching signals in
// q, whose goroutine calls the listener's function for each.
type listener struct {
	t      *Transport
	topic  string
	r      *kafkago.Reader
	cancel context.CancelFunc
	q      *signalq.Queue
	wg     sync.WaitGroup // the reading goroutine
	once   sync.Once
}

// read queues the data of every record keyed by l.topic until ctx ends.
func (l *listener) read(ctx context.Context) {
	for {
		m, err := l.r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			l.t.log.Debug("kafka: signal read failed", "topic", l.topic, "err", err)
			if sleepCtx(ctx, 100*time.Millisecond) != nil {
				return
			}
			continue
		}
		if string(m.Key) != l.topic {
			continue
		}
		data := m.Value
		if data == nil {
			data = []byte{}
		}
		if !l.q.Offer(data) {
			l.t.log.Debug("kafka: signal dropped: listener busy, queue full", "topic", l.topic, "queue", l.q.Cap())
		}
	}
}

// stop ends the listener and waits for a running call of fn; idempotent.
// The reader is closed in the background (kafka-go waits for its fetch to
// end); Transport.Close waits for that.
func (l *listener) stop() {
	l.once.Do(func() {
		l.cancel()
		l.t.listeners.Remove(l)
		l.t.mu.Lock()
		l.t.bg.Go(func() {
			l.wg.Wait()
			if err := l.r.Close(); err != nil {
				l.t.log.Debug("kafka: close signal reader", "topic", l.topic, "err", err)
			}
		})
		l.t.mu.Unlock()
	})
	l.q.Stop()
}
