package delivery

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hookline/hookline/pkg/transport"
)

// beats is a received message that counts its in-progress acks.
type beats struct {
	transport.Received
	n atomic.Int64
}

func (b *beats) InProgress(context.Context) error { b.n.Add(1); return nil }

func (b *beats) Message() *transport.Message { return &transport.Message{ID: "m"} }

// TestHeartbeat: an attempt that may outlast half the ack wait keeps its
// message alive with an in-progress ack every half ack wait until stopped,
// and a short one sends none. It runs in a synctest bubble, so minutes of
// attempt pass at once.
func TestHeartbeat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		ackWait   time.Duration
		timeout   time.Duration
		run       time.Duration // how long the attempt lasts
		wantBeats int64
	}{
		{"short attempts need none", 2 * time.Minute, 15 * time.Second, 5 * time.Minute, 0},
		{"long attempt beats every half ack wait", time.Minute, 45 * time.Second, 100 * time.Second, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				s := &Service{cfg: Config{AckWait: tt.ackWait}, log: slog.New(slog.DiscardHandler), bg: context.Background()}
				msg := &beats{}
				stop := s.heartbeat(msg, tt.timeout)
				if (stop == nil) != (tt.wantBeats == 0) {
					t.Fatalf("heartbeat started = %v, want %v", stop != nil, tt.wantBeats > 0)
				}
				// Virtual time: in the bubble the clock jumps to the end of
				// the sleep as soon as every goroutine is blocked.
				time.Sleep(tt.run)
				synctest.Wait()
				if stop != nil {
					stop()
				}
				if got := msg.n.Load(); got != tt.wantBeats {
					t.Fatalf("%d in-progress acks in %v, want %d", got, tt.run, tt.wantBeats)
				}
				time.Sleep(10 * tt.ackWait)
				synctest.Wait()
				if got := msg.n.Load(); got != tt.wantBeats {
					t.Fatalf("%d in-progress acks after stop, want still %d", got, tt.wantBeats)
				}
			})
		})
	}
}
