package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestReplaceGenerated(t *testing.T) {
	t.Parallel()
	sec := MarkerBegin + "\nnew\n" + MarkerEnd + "\n"
	tests := []struct {
		name    string
		doc     string
		want    string
		wantErr bool
	}{
		{"empty document", "", sec, false},
		{"no markers: appended", "# Title\n\nText.", "# Title\n\nText.\n\n" + sec, false},
		{"replaced, text around kept", "# T\n\n" + MarkerBegin + "\nold\nstuff\n" + MarkerEnd + "\n\n## Where the CPU goes\n\nMine.\n",
			"# T\n\n" + sec + "\n## Where the CPU goes\n\nMine.\n", false},
		{"end marker at end of file", "a\n" + MarkerBegin + "old" + MarkerEnd, "a\n" + sec, false},
		{"begin without end", "a\n" + MarkerBegin + "\nold\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ReplaceGenerated(tt.doc, sec)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ReplaceGenerated = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNum(t *testing.T) {
	t.Parallel()
	tests := map[float64]string{0: "0", 12.5: "12.5", 999: "999", 1234: "1,234", 1234567.4: "1,234,567", -2500: "-2,500"}
	for in, want := range tests {
		if got := num(in); got != want {
			t.Errorf("num(%v) = %q, want %q", in, got, want)
		}
	}
}

// TestRenderReport renders a synthetic report with every section.
func TestRenderReport(t *testing.T) {
	t.Parallel()
	lat := LatencySummary{Count: 100, P50Ms: 4, P90Ms: 6, P99Ms: 12, MaxMs: 20}
	v := Verdict{Pass: true}
	rep := &Report{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seconds: 600,
		Machine:  Machine{Cores: 2, CPUModel: "Test CPU", MemoryBytes: 8 << 30, GoVersion: "go1.26"},
		Settings: DefaultConfig().settings(),
		Baseline: Baseline{Runs: []BaselineResult{{Posts: 10, Workers: 64, PerSecond: 40000}}, PerSecond: 40000},
		Scenarios: []ScenarioResult{
			{Name: ScenarioFanout1to1, Status: StatusOK, Fanout: 1, Healthy: 1, Max: &MaxRate{EventsPerSec: 2000, DeliveriesPerSec: 2000, HealthyPerSec: 2000, Saturated: true},
				Latency: &StepResult{Kind: "latency", EventsPerSec: 1000, Latency: lat}, Steps: []StepResult{{Kind: "step", EventsPerSec: 2000, Latency: lat, Verdict: &v}}},
			{Name: ScenarioFanout1to10, Status: StatusOK, Fanout: 10, Healthy: 10, Max: &MaxRate{EventsPerSec: 300, DeliveriesPerSec: 3000, HealthyPerSec: 3000, Saturated: true},
				Latency: &StepResult{Kind: "latency", EventsPerSec: 150, Latency: lat}},
			{Name: ScenarioSlow, Status: StatusOK, Fanout: 10, Healthy: 9, Latency: &StepResult{Kind: "latency", EventsPerSec: 150, Latency: lat}},
			{Name: ScenarioBacklog, Status: StatusFailed, Problems: []string{"1 published pairs missing"}, Fanout: 10, Healthy: 10,
				Backlog: &BacklogResult{Deliveries: 100000, DrainPerSec: 2500, PeakRSSBytes: 200 << 20}, Goroutines: []Sample{{"before load", 100}, {"drained", 300}}},
		},
	}
	rep.derive()
	if !rep.Failed {
		t.Error("a failed scenario did not fail the report")
	}
	if got := rep.Scenarios[0].Max.Ratio; got != 0.05 {
		t.Errorf("1→1 ratio = %v, want 0.05", got)
	}
	if c := rep.Scenarios[2].Compare; c == nil || c.ThroughputChange != -1 || c.P99Ratio != 1 {
		t.Errorf("slow endpoint comparison = %+v, want throughput -1 (no step passed) and p99 ratio 1", c)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	for _, want := range []string{"40,000", "fanout-1to1", "0.050", "backlog FAILED: 1 published pairs missing", "Against the bar"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if !strings.HasPrefix(md, MarkerBegin) || !strings.HasSuffix(md, MarkerEnd+"\n") {
		t.Errorf("markdown is not enclosed in the markers:\n%s", md)
	}
}

// TestBarTableNamesMissingScenarios checks the bar rows of scenarios that
// did not run.
func TestBarTableNamesMissingScenarios(t *testing.T) {
	t.Parallel()
	rep := &Report{Scenarios: []ScenarioResult{{Name: ScenarioSlow, Status: StatusOK}}}
	rows := rep.barTable()
	want := map[string]string{
		"fanout-1to1 max sustainable ≥ 0.5 × baseline":                     "not measured",
		"fanout-1to10 max sustainable ≥ 0.6 × baseline":                    "not measured",
		"fanout-1to1 at half rate: p50 ≤ 10 ms, p99 ≤ 50 ms":               "not measured",
		"slow-endpoint: healthy p99 ≤ 2 × and throughput ≥ −10% of 1→10's": "not measured",
	}
	got := map[string]string{}
	for _, r := range rows[1:] {
		got[r[0]] = r[1]
	}
	for bar, m := range want {
		if got[bar] != m {
			t.Errorf("bar %q: measured %q, want %q (rows %q)", bar, got[bar], m, rows)
		}
	}
}
