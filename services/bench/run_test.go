package bench

import (
	"strings"
	"testing"
	"time"
)

func TestStepComparison(t *testing.T) {
	t.Parallel()
	step := func(rate, p99 float64, pass bool) StepResult {
		return StepResult{EventsPerSec: rate, Latency: LatencySummary{P99Ms: p99}, Verdict: &Verdict{Pass: pass}}
	}
	ref := []StepResult{step(50, 10, true), step(75, 12, true), step(112.5, 20, true), step(168.8, 900, false)}
	tests := []struct {
		name      string
		steps     []StepResult
		wantRate  float64
		wantRatio float64
	}{
		{"highest rate both passed", []StepResult{step(50, 20, true), step(75, 24, true), step(112.5, 2000, false)}, 75, 2},
		{"a rate only one of them passed does not count", []StepResult{step(50, 5, true), step(168.8, 30, true)}, 50, 0.5},
		{"nothing in common", []StepResult{step(60, 5, true)}, 0, 0},
		{"none passed", []StepResult{step(50, 5000, false)}, 0, 0},
	}
	for _, tt := range tests {
		rate, ratio := stepComparison(tt.steps, ref)
		if rate != tt.wantRate || ratio != tt.wantRatio {
			t.Errorf("%s: stepComparison = %v, %v; want %v, %v", tt.name, rate, ratio, tt.wantRate, tt.wantRatio)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"unknown scenario", func(c *Config) { c.Scenarios = []string{"fanout-1to2"} }, `unknown scenario "fanout-1to2"`},
		{"rate factor", func(c *Config) { c.RateFactor = 1 }, "--rate-factor"},
		{"step duration", func(c *Config) { c.StepDuration = 0 }, "--step-duration"},
		{"backlog not a multiple of 10", func(c *Config) { c.BacklogDeliveries = 1005 }, "--backlog-deliveries"},
		{"unknown stack", func(c *Config) { c.Stack = "kubernetes" }, "--stack"},
		{"dev args on the multiprocess stack", func(c *Config) { c.Stack = StackMultiprocess; c.DevArgs = []string{"--x"} }, "--dev-arg"},
		{"unknown transport", func(c *Config) { c.Transport = "pulsar" }, "--transport"},
		{"kafka", func(c *Config) { c.Transport = TransportKafka; c.KfakeServer = "/opt/kfake-server" }, ""},
		{"kfake-server on NATS", func(c *Config) { c.KfakeServer = "/opt/kfake-server" }, "--kfake-server"},
		{"every problem at once", func(c *Config) { c.Publishers = 0; c.DrainTimeout = -time.Second }, "--drain-timeout"},
	}
	for _, tt := range tests {
		c := DefaultConfig()
		tt.change(&c)
		err := c.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

// TestComparisonReportsHostSpeed checks that the slow and failing
// endpoints' throughput is judged on the raw maxima, with the host's speed
// change between the two scenarios reported beside it when both were
// measured.
func TestComparisonReportsHostSpeed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		refHost, host  float64
		wantHostChange float64
	}{
		{"host slowed down by a fifth", 25_000, 20_000, -0.2},
		{"host sped up by a quarter", 20_000, 25_000, 0.25},
		{"host speed not measured", 0, 0, 0},
		{"only one scenario measured", 25_000, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep := &Report{Baseline: Baseline{PerSecond: 40_000}, Scenarios: []ScenarioResult{
				{Name: ScenarioFanout1to10, Status: StatusOK, Max: &MaxRate{EventsPerSec: 500}, HostPOSTsPerSec: tt.refHost},
				{Name: ScenarioFailing, Status: StatusOK, Max: &MaxRate{EventsPerSec: 400}, HostPOSTsPerSec: tt.host},
			}}
			rep.derive()
			c := rep.Scenarios[1].Compare
			if c == nil {
				t.Fatal("no comparison")
			}
			if c.ThroughputChange != -0.2 || c.HostSpeedChange != tt.wantHostChange {
				t.Errorf("change %v, host %v; want -0.2, %v", c.ThroughputChange, c.HostSpeedChange, tt.wantHostChange)
			}
		})
	}
}

// TestBacklogDrainAgainst1to1 checks that the backlog's drain is judged
// against 1→1's rate on the raw figures, with the host's speed change
// between the two scenarios reported beside it.
func TestBacklogDrainAgainst1to1(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		drain           float64
		oneHost, blHost float64
		wantMet         string
		wantNote        string
	}{
		{"drains faster, host slowed down", 4_500, 25_000, 20_000, "yes", "(host -20% meanwhile)"},
		{"drains slower, host sped up", 3_600, 20_000, 25_000, "**no**", "(host +25% meanwhile)"},
		{"host speed not measured", 3_600, 0, 0, "**no**", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rep := &Report{Baseline: Baseline{PerSecond: 40_000}, Scenarios: []ScenarioResult{
				{Name: ScenarioFanout1to1, Status: StatusOK, Max: &MaxRate{EventsPerSec: 4_000, DeliveriesPerSec: 4_000}, HostPOSTsPerSec: tt.oneHost},
				{Name: ScenarioBacklog, Status: StatusOK, Backlog: &BacklogResult{DrainPerSec: tt.drain}, HostPOSTsPerSec: tt.blHost},
			}}
			rep.derive()
			found := false
			for _, row := range rep.barTable() {
				if !strings.HasPrefix(row[0], "backlog drains") {
					continue
				}
				found = true
				if row[2] != tt.wantMet || !strings.Contains(row[1], tt.wantNote) || (tt.wantNote == "" && strings.Contains(row[1], "host")) {
					t.Errorf("bar row %q, met %q; want met %q and note %q", row[1], row[2], tt.wantMet, tt.wantNote)
				}
			}
			if !found {
				t.Error("the bar table has no backlog drain row")
			}
		})
	}
}
