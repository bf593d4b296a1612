package ids

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDelivery(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		event string
	}{
		{"ulid event", NewEvent(base)},
		{"idempotency-key event", EventFromIdempotencyKey("acme", strings.Repeat("k", 200))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, b := Delivery(tt.event, "sub_a"), Delivery(tt.event, "sub_b")
			if a != Delivery(tt.event, "sub_a") {
				t.Fatal("Delivery is not deterministic")
			}
			if a == b {
				t.Fatalf("two subscriptions share delivery id %s", a)
			}
			if !strings.HasPrefix(a, PrefixDelivery+strings.TrimPrefix(tt.event, PrefixEvent)) {
				t.Fatalf("%s does not begin with its event id %s", a, tt.event)
			}
			if len(a) > 64 {
				t.Fatalf("%s is %d characters; the API accepts ids of at most 64", a, len(a))
			}
		})
	}
}

// TestDeliveryOrder: deliveries sort in the order of their events' times,
// whatever their subscriptions.
func TestDeliveryOrder(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	var got []string
	for i := range 100 {
		ev := NewEvent(base.Add(time.Duration(i) * time.Millisecond))
		got = append(got, Delivery(ev, "sub_"+strings.Repeat("z", i%7)))
	}
	if !slices.IsSorted(got) {
		t.Fatalf("delivery ids of events in time order are not sorted: %v", got)
	}
}
