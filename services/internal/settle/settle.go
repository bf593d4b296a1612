// Package settle is how Hookline consumers finish with a message. A
// handler decides what to do with a message and returns a Decision; one
// place carries it out: acknowledge, hand back with a delay, or write
// something durably and acknowledge only once it is durable. Settler.Act
// is that place for a consumer that hands messages back to the broker
// (fanout); the delivery service has its own (delivery's act), since it
// never hands a message back unsent. Failures to settle are logged, never
// fatal: an unsettled message comes back after the consumer's ack wait.
package settle

import (
	"context"
	"log/slog"
	"time"

	"github.com/hookline/hookline/pkg/groupcommit"
	"github.com/hookline/hookline/pkg/transport"
)

// Kind is what a Decision does with its message.
type Kind uint8

// The kinds of decision.
const (
	// KindAck acknowledges the message: it is done (or can never be done).
	KindAck Kind = iota
	// KindNak hands the message back, to be redelivered after Delay.
	KindNak
	// KindCommit writes Write through the settler's group-commit batcher
	// and acknowledges the message once the write is durable; a failed
	// write hands the message back after the settler's Backoff.
	KindCommit
)

// Decision is what a handler decided to do with one message, as data: the
// handler does not settle the message itself.
type Decision[W any] struct {
	Kind Kind
	// Delay is how long a handed-back message waits (KindNak).
	Delay time.Duration
	// Write is what must be durable before the message is acknowledged
	// (KindCommit).
	Write W
}

// Ack decides to acknowledge the message.
func Ack[W any]() Decision[W] { return Decision[W]{Kind: KindAck} }

// Nak decides to hand the message back, to be redelivered after delay.
func Nak[W any](delay time.Duration) Decision[W] { return Decision[W]{Kind: KindNak, Delay: delay} }

// Commit decides to write w durably, then acknowledge the message.
func Commit[W any](w W) Decision[W] { return Decision[W]{Kind: KindCommit, Write: w} }

// Settler carries out decisions. Its batcher writes the Write of every
// KindCommit decision.
type Settler[W any] struct {
	Log   *slog.Logger
	Batch *groupcommit.Batcher[W]
	// Backoff is how long a message whose write failed waits before it is
	// redelivered.
	Backoff time.Duration
}

// Act carries out d on msg and reports whether msg was acknowledged (for
// KindCommit: whether the write is durable). Acks and naks are sent even
// while the consumer is stopping, and a write, once queued, is carried
// through (bounded by the batcher's timeout).
func (s *Settler[W]) Act(msg transport.Received, d Decision[W]) bool {
	switch d.Kind {
	case KindNak:
		s.nak(msg, d.Delay)
		return false
	case KindCommit:
		if err := s.Batch.Do(context.Background(), d.Write); err != nil {
			s.nak(msg, s.Backoff)
			return false
		}
	}
	if err := msg.Ack(context.Background()); err != nil {
		s.Log.Warn("ack failed; the message will be redelivered", "msg_id", msg.Message().ID, "err", err)
	}
	return true
}

func (s *Settler[W]) nak(msg transport.Received, delay time.Duration) {
	if err := msg.Nak(context.Background(), delay); err != nil {
		s.Log.Warn("nak failed; the message will be redelivered after the ack wait", "msg_id", msg.Message().ID, "err", err)
	}
}
