package bench

import (
	"bytes"
	"os"
	"path/filepath"
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

// TestRenderKafkaReport checks that a run on Kafka says kfake in every
// table title and in its summary, and renders into the kfake section with
// its own markers, never the NATS section's.
func TestRenderKafkaReport(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Transport = TransportKafka
	lat := LatencySummary{Count: 100, P50Ms: 4, P90Ms: 6, P99Ms: 12, MaxMs: 20}
	v := Verdict{Pass: true}
	rep := &Report{
		Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seconds: 60,
		Machine:  Machine{Cores: 2, GoVersion: "go1.26"},
		Settings: cfg.settings(),
		Baseline: Baseline{Runs: []BaselineResult{{Posts: 10, Workers: 64, PerSecond: 40000}}, PerSecond: 40000},
		Floor: &FloorResult{Transport: TransportKafka, EventsPublishPerSec: 10_000, EventsConsumePerSec: 5_000,
			DeliveriesPublishPerSec: 20_000, DeliveriesConsumePerSec: 4_000, BrokerCPUShare: 0.4},
		Scenarios: []ScenarioResult{
			{Name: ScenarioFanout1to1, Status: StatusOK, Fanout: 1, Healthy: 1, Broker: &ProcUsage{CPUSeconds: 3},
				Max:     &MaxRate{EventsPerSec: 1500, DeliveriesPerSec: 1500, HealthyPerSec: 1500, Saturated: true, CPUPerDeliveryUs: 1000, BrokerCPUPerDeliveryUs: 250, BrokerCores: 0.4},
				Latency: &StepResult{Kind: "latency", EventsPerSec: 750, Latency: lat},
				Steps:   []StepResult{{Kind: "step", EventsPerSec: 1500, Latency: lat, Verdict: &v, BrokerCores: 0.4}, {Kind: "step", EventsPerSec: 2250, Latency: lat, Verdict: &Verdict{Reason: "p99"}, BrokerCores: 0.6}}},
		},
	}
	rep.derive()
	c := rep.Scenarios[0].Transport
	// 1→1 hops alone: 1e6/600 = 1,666.7 deliveries/s; 1,500 is 0.9 of it.
	if c == nil || c.HopsPerSec != 1666.7 || c.Ratio != 0.9 || c.Bottleneck != BottleneckYes || c.BrokerShare != 0.25 || c.PeakBrokerCores != 0.6 || c.Path != "1→1" {
		t.Errorf("transport check %+v: want 1,500 of 1,666.7 hops alone (0.9), a bottleneck, broker share 0.25, peak 0.6 cores", c)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	md := rep.Markdown()
	if !strings.HasPrefix(md, MarkerBeginKafka) || !strings.HasSuffix(md, MarkerEndKafka+"\n") || strings.Contains(md, MarkerBegin) || strings.Contains(md, MarkerEnd+"\n") {
		t.Errorf("markdown is not enclosed in the kfake markers alone:\n%s", md)
	}
	for _, line := range strings.Split(md, "\n") {
		if strings.HasPrefix(line, "### ") && !strings.HasSuffix(line, "on kfake") && line != "### Machine" && line != "### Settings" && line != "### Problems and notes" {
			t.Errorf("markdown title %q does not say kfake", line)
		}
	}
	for _, want := range []string{KfakeLabel, "Transport: is kfake-server the bottleneck?", "the transport is the bottleneck of fanout-1to1"} {
		if !strings.Contains(md, want) || !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\ntext:\n%s\nmarkdown:\n%s", want, text.String(), md)
		}
	}
}

// TestReplaceSectionKeepsTheOtherTransport checks that rewriting the kfake
// section leaves the NATS section untouched, and the other way round.
func TestReplaceSectionKeepsTheOtherTransport(t *testing.T) {
	t.Parallel()
	nats := MarkerBegin + "\nnats\n" + MarkerEnd + "\n"
	kfake := MarkerBeginKafka + "\nkfake\n" + MarkerEndKafka + "\n"
	doc := "# B\n\n" + nats + "\nprose\n\n" + kfake + "\nend\n"
	newKfake := MarkerBeginKafka + "\nkfake 2\n" + MarkerEndKafka + "\n"
	got, err := ReplaceSection(doc, newKfake, MarkerBeginKafka, MarkerEndKafka)
	if want := "# B\n\n" + nats + "\nprose\n\n" + newKfake + "\nend\n"; err != nil || got != want {
		t.Errorf("kfake section: got %q, %v; want %q", got, err, want)
	}
	newNATS := MarkerBegin + "\nnats 2\n" + MarkerEnd + "\n"
	got, err = ReplaceGenerated(doc, newNATS)
	if want := "# B\n\n" + newNATS + "\nprose\n\n" + kfake + "\nend\n"; err != nil || got != want {
		t.Errorf("NATS section: got %q, %v; want %q", got, err, want)
	}
}

// TestJSONOfAnotherTransportIsKept checks that a run does not overwrite
// the JSON of a run on the other transport.
func TestJSONOfAnotherTransportIsKept(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	natsJSON := filepath.Join(dir, "benchmarks.json")
	if err := os.WriteFile(natsJSON, []byte(`{"settings": {"stack": "hookline dev"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	kafkaCfg := DefaultConfig()
	kafkaCfg.Transport = TransportKafka
	rep := &Report{Settings: kafkaCfg.settings()}
	err := rep.WriteFiles(Config{JSONPath: natsJSON})
	if err == nil || !strings.Contains(err.Error(), "transport nats") {
		t.Errorf("a kfake run over a NATS run's JSON: error %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(natsJSON); !strings.Contains(string(b), "hookline dev") {
		t.Errorf("the NATS run's JSON was overwritten: %s", b)
	}
	kafkaJSON := filepath.Join(dir, "benchmarks-kafka.json")
	for range 2 { // new, then over its own
		if err := rep.WriteFiles(Config{JSONPath: kafkaJSON}); err != nil {
			t.Fatal(err)
		}
	}
	rep = &Report{Settings: DefaultConfig().settings()}
	if err := rep.WriteFiles(Config{JSONPath: natsJSON}); err != nil {
		t.Errorf("a NATS run over a NATS run's JSON: %v", err)
	}
}
