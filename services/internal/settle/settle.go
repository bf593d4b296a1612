// Package settle is how every Hookline consumer finishes with a message:
// acknowledge it once its effects are durable, or hand it back to the
// broker with a delay. Failures to settle are logged, never fatal: an
// unsettled message comes back after the consumer's ack wait.
package settle

import (
	"context"
	"log/slog"
	"time"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/transport"
)

// Ack acknowledges msg. It is sent even while the consumer is stopping.
func Ack(log *slog.Logger, msg transport.Received) {
	if err := msg.Ack(context.Background()); err != nil {
		log.Warn("ack failed; the message will be redelivered", "msg_id", msg.Message().ID, "err", err)
	}
}

// Nak hands msg back to the broker, to be redelivered after delay.
func Nak(log *slog.Logger, msg transport.Received, delay time.Duration) {
	if err := msg.Nak(context.Background(), delay); err != nil {
		log.Warn("nak failed; the message will be redelivered after the ack wait", "msg_id", msg.Message().ID, "err", err)
	}
}

// Commit writes item through b and acknowledges msg once the write is
// durable; if the write fails it naks msg with backoff instead. It reports
// whether the write succeeded.
func Commit[T any](log *slog.Logger, b *groupcommit.Batcher[T], msg transport.Received, item T, backoff time.Duration) bool {
	if err := b.Do(context.Background(), item); err != nil {
		Nak(log, msg, backoff)
		return false
	}
	Ack(log, msg)
	return true
}
