package devserver

import (
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/scheduler"
)

// TestDuplicateWindowCoversRedelivery: the broker's deduplication window
// outlasts fanout's ack wait and the scheduler's claim lease, so an event
// redelivered after a fanout crash, or a due retry re-released after a
// lease ran out, republishes under IDs the broker still remembers.
func TestDuplicateWindowCoversRedelivery(t *testing.T) {
	t.Parallel()
	const margin = 10 * time.Second
	for name, d := range map[string]time.Duration{
		"fanout ack wait":       fanout.DefaultConfig().AckWait,
		"scheduler claim lease": scheduler.DefaultConfig().ClaimLease,
	} {
		if natsjs.DefaultDuplicateWindow < d+margin {
			t.Errorf("duplicate window %v does not outlast the %s (%v) by %v", natsjs.DefaultDuplicateWindow, name, d, margin)
		}
	}
}
