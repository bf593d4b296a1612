package bench

import (
	"testing"
	"time"
)

func TestHistogramPercentiles(t *testing.T) {
	t.Parallel()
	ms := func(vs ...int) []time.Duration {
		out := make([]time.Duration, len(vs))
		for i, v := range vs {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // recorded in descending order
	}
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		{"median of odd count", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"median of even count is the lower middle", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 90, 90 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99.9 of 1..100 is the max", ms(hundred...), 99.9, 100 * time.Millisecond},
		{"tiny q is the min", ms(5, 9, 1), 0.1, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h Histogram
			for _, s := range tt.samples {
				h.Record(s)
			}
			if got := h.Percentile(tt.q); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestHistogramSummary(t *testing.T) {
	t.Parallel()
	var h Histogram
	for _, d := range []time.Duration{time.Millisecond, 3 * time.Millisecond} {
		h.Record(d)
	}
	h.RecordCensored(2 * time.Second)
	// Recording after a percentile was taken must re-sort.
	_ = h.Percentile(50)
	h.Record(500 * time.Microsecond)
	got := h.Summary()
	want := LatencySummary{Count: 4, Censored: 1, P50Ms: 1, P90Ms: 2000, P99Ms: 2000, P999Ms: 2000, MaxMs: 2000, MeanMs: 501.125}
	if got != want {
		t.Errorf("Summary() = %+v, want %+v", got, want)
	}
}
