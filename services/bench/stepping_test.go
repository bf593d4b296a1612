package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

// linear returns samples every 250 ms over d of a backlog starting at b0
// and growing by slope per second.
func linear(d time.Duration, b0, slope float64) []BacklogSample {
	var out []BacklogSample
	for at := 250 * time.Millisecond; at <= d; at += 250 * time.Millisecond {
		out = append(out, BacklogSample{At: at, Backlog: b0 + slope*at.Seconds()})
	}
	return out
}

func TestBacklogGrowth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		samples []BacklogSample
		want    float64
	}{
		{"none", nil, 0},
		{"too few in the second half", linear(500*time.Millisecond, 0, 100), 0},
		{"flat", linear(10*time.Second, 20, 0), 0},
		{"growing", linear(10*time.Second, 5, 300), 300},
		{"shrinking", linear(10*time.Second, 1000, -50), -50},
		{
			// The pipeline fills up in the first half; only the second
			// half counts.
			"ramp then flat",
			append(linear(5*time.Second, 0, 200), []BacklogSample{
				{At: 5250 * time.Millisecond, Backlog: 1000}, {At: 6 * time.Second, Backlog: 1000},
				{At: 8 * time.Second, Backlog: 1000}, {At: 10 * time.Second, Backlog: 1000},
			}...),
			0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := BacklogGrowth(tt.samples); math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("BacklogGrowth = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	c := Criteria{P99Limit: time.Second, GrowthLimit: 0.05, MinGrowth: 10}
	tests := []struct {
		name     string
		offered  float64
		p99      time.Duration
		samples  []BacklogSample
		rejected int64
		pass     bool
		reasons  []string
	}{
		{"fast and flat", 1000, 20 * time.Millisecond, linear(10*time.Second, 10, 0), 0, true, nil},
		{"p99 at the limit passes", 1000, time.Second, linear(10*time.Second, 10, 0), 0, true, nil},
		{"p99 over the limit", 1000, 1001 * time.Millisecond, linear(10*time.Second, 10, 0), 0, false, []string{"p99 1.001s > 1s"}},
		{"growth within 5%", 1000, 20 * time.Millisecond, linear(10*time.Second, 10, 49), 0, true, nil},
		{"growth over 5%", 1000, 20 * time.Millisecond, linear(10*time.Second, 10, 51), 0, false, []string{"backlog growing 51/s > 50/s allowed"}},
		{"small growth at a low rate is noise", 100, 20 * time.Millisecond, linear(10*time.Second, 10, 9), 0, true, nil},
		{"growth over the floor at a low rate", 100, 20 * time.Millisecond, linear(10*time.Second, 10, 11), 0, false, []string{"backlog growing"}},
		{"rejections fail", 1000, 20 * time.Millisecond, linear(10*time.Second, 10, 0), 3, false, []string{"3 events rejected"}},
		{"every reason", 1000, 2 * time.Second, linear(10*time.Second, 10, 500), 1, false, []string{"rejected", "p99", "backlog growing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := Judge(c, tt.offered, tt.p99, tt.samples, tt.rejected)
			if v.Pass != tt.pass {
				t.Fatalf("Pass = %v (%s), want %v", v.Pass, v.Reason, tt.pass)
			}
			rest := v.Reason
			for _, r := range tt.reasons {
				i := strings.Index(rest, r)
				if i < 0 {
					t.Fatalf("reason %q lacks %q (in order)", v.Reason, r)
				}
				rest = rest[i+len(r):]
			}
			if tt.pass && v.Reason != "" {
				t.Errorf("a passing step has reason %q", v.Reason)
			}
		})
	}
}

func TestStepper(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		s         Stepper
		capacity  float64 // steps at or below it pass
		wantRates []float64
		wantMax   float64
		saturated bool
	}{
		{
			name:      "steps up until a failure, then bisects once",
			s:         Stepper{Start: 100, Factor: 2, MaxSteps: 10, Refine: 1},
			capacity:  500,
			wantRates: []float64{100, 200, 400, 800, math.Sqrt(400 * 800)},
			wantMax:   400,
			saturated: true,
		},
		{
			name:      "bisects twice; a failing bisection narrows from above",
			s:         Stepper{Start: 100, Factor: 2, MaxSteps: 10, Refine: 2},
			capacity:  500,
			wantRates: []float64{100, 200, 400, 800, math.Sqrt(400 * 800), math.Sqrt(400 * math.Sqrt(400*800))},
			wantMax:   math.Sqrt(400 * math.Sqrt(400*800)),
			saturated: true,
		},
		{
			name:      "no refinement",
			s:         Stepper{Start: 100, Factor: 1.5, MaxSteps: 10, Refine: 0},
			capacity:  200,
			wantRates: []float64{100, 150, 225},
			wantMax:   150,
			saturated: true,
		},
		{
			name:      "max steps bound an unsaturated run",
			s:         Stepper{Start: 100, Factor: 2, MaxSteps: 3, Refine: 1},
			capacity:  1e9,
			wantRates: []float64{100, 200, 400},
			wantMax:   400,
		},
		{
			name:      "first step fails: steps down",
			s:         Stepper{Start: 100, Factor: 2, MaxSteps: 10, Refine: 2},
			capacity:  30,
			wantRates: []float64{100, 50, 25},
			wantMax:   25,
			saturated: true,
		},
		{
			name:      "max steps bound refinement",
			s:         Stepper{Start: 100, Factor: 2, MaxSteps: 2, Refine: 5},
			capacity:  150,
			wantRates: []float64{100, 200},
			wantMax:   100,
			saturated: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.s
			var rates []float64
			for {
				r, ok := s.Next()
				if !ok {
					break
				}
				if len(rates) > 20 {
					t.Fatal("stepping does not end")
				}
				rates = append(rates, r)
				s.Record(r, r <= tt.capacity)
			}
			if len(rates) != len(tt.wantRates) {
				t.Fatalf("rates %v, want %v", rates, tt.wantRates)
			}
			for i := range rates {
				if math.Abs(rates[i]-tt.wantRates[i]) > 1e-9 {
					t.Fatalf("rates %v, want %v", rates, tt.wantRates)
				}
			}
			if s.MaxSustainable() != tt.wantMax || s.Saturated() != tt.saturated {
				t.Errorf("max %v saturated %v; want %v, %v", s.MaxSustainable(), s.Saturated(), tt.wantMax, tt.saturated)
			}
		})
	}
}
