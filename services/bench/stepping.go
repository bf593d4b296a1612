package bench

import (
	"fmt"
	"math"
	"time"
)

// BacklogSample is the backlog of a step at one instant: pairs scheduled
// so far minus pairs delivered so far, At after the step began.
type BacklogSample struct {
	At      time.Duration `json:"at_ns"`
	Backlog float64       `json:"backlog"`
}

// Criteria decide whether a step's rate is sustainable.
type Criteria struct {
	// P99Limit: a step whose p99 latency exceeds it fails.
	P99Limit time.Duration
	// GrowthLimit: a step fails when its backlog grows faster than this
	// fraction of the offered pairs per second over the step's second half.
	GrowthLimit float64
	// MinGrowth is a floor of the growth allowed, in pairs per second, so
	// that a few pairs of noise at a low rate do not fail a step.
	MinGrowth float64
}

// Verdict is the decision on one step.
type Verdict struct {
	Pass   bool   `json:"pass"`
	Reason string `json:"reason"`
	// Growth is the backlog's growth over the step's second half, in pairs
	// per second (least-squares slope).
	Growth float64 `json:"backlog_growth_per_s"`
}

// Judge decides whether a step offered at offered pairs per second was
// sustained: no publish was rejected, the p99 latency is within the limit,
// and the backlog did not keep growing through the step.
func Judge(c Criteria, offered float64, p99 time.Duration, samples []BacklogSample, rejected int64) Verdict {
	growth := BacklogGrowth(samples)
	v := Verdict{Pass: true, Growth: growth}
	allowed := max(c.GrowthLimit*offered, c.MinGrowth)
	var reasons []string
	if rejected > 0 {
		reasons = append(reasons, fmt.Sprintf("%d events rejected by ingest", rejected))
	}
	if p99 > c.P99Limit {
		reasons = append(reasons, fmt.Sprintf("p99 %v > %v", p99.Round(time.Millisecond), c.P99Limit))
	}
	if growth > allowed {
		reasons = append(reasons, fmt.Sprintf("backlog growing %.0f/s > %.0f/s allowed", growth, allowed))
	}
	if len(reasons) > 0 {
		v.Pass = false
		v.Reason = reasons[0]
		for _, r := range reasons[1:] {
			v.Reason += "; " + r
		}
	}
	return v
}

// BacklogGrowth is the least-squares slope, in pairs per second, of the
// backlog samples taken in the second half of the sampled period (the
// first half is the pipeline filling up). It is 0 with fewer than three
// such samples.
func BacklogGrowth(samples []BacklogSample) float64 {
	if len(samples) == 0 {
		return 0
	}
	half := samples[len(samples)-1].At / 2
	var n, sx, sy, sxx, sxy float64
	for _, s := range samples {
		if s.At < half {
			continue
		}
		x := s.At.Seconds()
		n++
		sx += x
		sy += s.Backlog
		sxx += x * x
		sxy += x * s.Backlog
	}
	den := n*sxx - sx*sx
	if n < 3 || den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// Stepper chooses the offered rate of each step: it multiplies the rate by
// Factor after every passing step until one fails, then refines between
// the last passing and the first failing rate by geometric bisection
// (Refine more steps; when no step passed, it steps down by Factor
// instead).
type Stepper struct {
	Start    float64
	Factor   float64
	MaxSteps int
	Refine   int

	steps     int
	refined   int
	next      float64
	lastPass  float64 // highest passing rate
	firstFail float64 // lowest failing rate
}

// Next returns the rate of the next step, or false when stepping is over.
func (s *Stepper) Next() (float64, bool) {
	if s.steps >= s.MaxSteps {
		return 0, false
	}
	if s.steps == 0 {
		return s.Start, true
	}
	if s.firstFail > 0 && s.refined >= s.Refine {
		return 0, false
	}
	return s.next, true
}

// Record records the verdict of a step run at rate.
func (s *Stepper) Record(rate float64, pass bool) {
	if s.firstFail > 0 {
		s.refined++
	}
	s.steps++
	if pass {
		s.lastPass = math.Max(s.lastPass, rate)
	} else if s.firstFail == 0 || rate < s.firstFail {
		s.firstFail = rate
	}
	switch {
	case s.firstFail == 0:
		s.next = rate * s.Factor
	case s.lastPass == 0:
		s.next = s.firstFail / s.Factor
	default:
		s.next = math.Sqrt(s.lastPass * s.firstFail)
	}
}

// MaxSustainable is the highest passing rate, 0 when none passed.
func (s *Stepper) MaxSustainable() float64 { return s.lastPass }

// Saturated reports whether some step failed, so that MaxSustainable is
// bounded by Hookline rather than by MaxSteps.
func (s *Stepper) Saturated() bool { return s.firstFail > 0 }
