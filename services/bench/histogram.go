package bench

import (
	"math"
	"slices"
	"time"
)

// Histogram holds latency samples exactly (no bucketing error) and
// reports nearest-rank percentiles. Samples recorded as censored are lower
// bounds: deliveries that had not arrived when the measurement ended,
// recorded with the time they had waited so far. It is not safe for
// concurrent use.
type Histogram struct {
	samples  []time.Duration
	censored int
	sorted   bool
}

// Record adds one latency sample.
func (h *Histogram) Record(d time.Duration) {
	h.samples = append(h.samples, d)
	h.sorted = false
}

// RecordCensored adds a lower bound for a delivery that had not arrived
// after waiting d.
func (h *Histogram) RecordCensored(d time.Duration) {
	h.Record(d)
	h.censored++
}

// Count is the number of samples, censored ones included.
func (h *Histogram) Count() int { return len(h.samples) }

// Censored is the number of samples that are lower bounds.
func (h *Histogram) Censored() int { return h.censored }

// Percentile returns the nearest-rank q-th percentile (0 < q ≤ 100): the
// smallest sample such that at least q% of the samples are at most it. It
// returns 0 for an empty histogram.
func (h *Histogram) Percentile(q float64) time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	h.sort()
	rank := int(math.Ceil(q / 100 * float64(len(h.samples))))
	rank = min(max(rank, 1), len(h.samples))
	return h.samples[rank-1]
}

// Max returns the largest sample, or 0 when there is none.
func (h *Histogram) Max() time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	h.sort()
	return h.samples[len(h.samples)-1]
}

// Mean returns the mean of the samples, or 0 when there is none.
func (h *Histogram) Mean() time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	var sum float64
	for _, s := range h.samples {
		sum += float64(s)
	}
	return time.Duration(sum / float64(len(h.samples)))
}

func (h *Histogram) sort() {
	if !h.sorted {
		slices.Sort(h.samples)
		h.sorted = true
	}
}

// Summary returns the figures reported for a histogram.
func (h *Histogram) Summary() LatencySummary {
	return LatencySummary{
		Count:    h.Count(),
		Censored: h.Censored(),
		P50Ms:    ms(h.Percentile(50)),
		P90Ms:    ms(h.Percentile(90)),
		P99Ms:    ms(h.Percentile(99)),
		P999Ms:   ms(h.Percentile(99.9)),
		MaxMs:    ms(h.Max()),
		MeanMs:   ms(h.Mean()),
	}
}

// LatencySummary is a histogram's reported figures, in milliseconds.
type LatencySummary struct {
	Count    int     `json:"count"`
	Censored int     `json:"censored"`
	P50Ms    float64 `json:"p50_ms"`
	P90Ms    float64 `json:"p90_ms"`
	P99Ms    float64 `json:"p99_ms"`
	P999Ms   float64 `json:"p999_ms"`
	MaxMs    float64 `json:"max_ms"`
	MeanMs   float64 `json:"mean_ms"`
}

// ms converts d to fractional milliseconds, rounded to microseconds.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}
