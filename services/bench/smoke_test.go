package bench

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/services/internal/childproc"
)

// TestSmoke runs the harness end to end at a tiny scale against a real
// `hookline dev` built from this repository: one short step and latency
// run of fan-out 1→1 and of the failing endpoint (whose deliveries
// dead-letter), and a small backlog. It checks that every ledger balances
// and the report renders, never a timing.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the smoke run builds and runs hookline dev (20-35 s); make test runs it without -short")
	}
	bin := buildHookline(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Hookline = bin
	cfg.Scenarios = []string{ScenarioFanout1to1, ScenarioFailing, ScenarioBacklog}
	cfg.StartRate = 200
	cfg.StepDuration = time.Second
	cfg.MaxSteps = 1
	cfg.Refine = 0
	cfg.LatencyDuration = time.Second
	cfg.DrainTimeout = 20 * time.Second
	cfg.WarmupEvents = 20
	cfg.BaselinePosts = 500
	cfg.BaselineWorkers = 8
	cfg.FloorMessages = 300
	cfg.HostCheckPosts = 200
	cfg.BacklogDeliveries = 200
	cfg.BacklogRetryDelay = 200 * time.Millisecond
	cfg.BacklogTimeout = 20 * time.Second
	cfg.GoroutineSettle = 100 * time.Millisecond
	cfg.Publishers = 4
	cfg.Conns = 1
	cfg.DevLogLevel = "warn"
	cfg.WorkDir = dir
	cfg.ResultsDir = filepath.Join(dir, "results")
	cfg.JSONPath = filepath.Join(dir, "benchmarks.json")
	cfg.MarkdownPath = filepath.Join(dir, "benchmarks.md")
	const handWritten = "# Benchmarks\n\nHand-written introduction.\n"
	if err := os.WriteFile(cfg.MarkdownPath, []byte(handWritten), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	if len(rep.Scenarios) != len(cfg.Scenarios) {
		t.Fatalf("%d scenario results, want %d", len(rep.Scenarios), len(cfg.Scenarios))
	}
	for _, s := range rep.Scenarios {
		l := s.Ledger
		if s.HostPOSTsPerSec <= 0 {
			t.Errorf("%s: the host's speed before it was not measured", s.Name)
		}
		if s.Status != StatusOK || l.Missing != 0 || !l.Balanced() {
			t.Errorf("%s: status %s, missing %d, balanced %v; problems %q", s.Name, s.Status, l.Missing, l.Balanced(), s.Problems)
		}
		if l.Accepted == 0 || l.Pairs.Published == 0 {
			t.Errorf("%s: nothing published: %+v", s.Name, l)
		}
		switch s.Name {
		case ScenarioFailing:
			if c := l.ByClass[Failing.String()]; c == nil || c.DeadLettered != c.Published || c.Published == 0 {
				t.Errorf("failing endpoint's pairs %+v: want all dead-lettered", c)
			}
			// Every load starts once the step before has settled, failing
			// deliveries included.
			loads := s.Steps
			if s.Latency != nil {
				loads = append(loads, *s.Latency)
			}
			for _, st := range loads {
				if st.FailingOutstandingAtStart {
					t.Errorf("the %s at %.0f events/s started while failing deliveries were still retrying", st.Kind, st.EventsPerSec)
				}
			}
		case ScenarioBacklog:
			if s.Backlog == nil || s.Backlog.Deliveries != int64(cfg.BacklogDeliveries) || !s.Backlog.Drained {
				t.Errorf("backlog result %+v: want %d deliveries drained", s.Backlog, cfg.BacklogDeliveries)
			}
		default:
			if len(s.Steps) != 1 || s.Latency == nil || s.Latency.Latency.Count == 0 {
				t.Errorf("%s: %d steps, latency run %+v", s.Name, len(s.Steps), s.Latency)
			}
		}
	}
	if f := rep.Floor; f == nil || f.Ceiling1to1.PerSecond <= 0 || f.Ceiling1to10.Ratio <= 0 || f.POSTUs <= 0 {
		t.Errorf("floor %+v: want ceilings derived from the measured parts and the baseline", f)
	}
	if err := rep.WriteFiles(cfg); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(cfg.MarkdownPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(md), handWritten) || !strings.Contains(string(md), MarkerBegin) || !strings.Contains(string(md), ScenarioBacklog) ||
		!strings.Contains(string(md), "the floor alone allows") {
		t.Errorf("markdown lost its hand-written text or lacks the generated section:\n%s", md)
	}
	for _, p := range []string{cfg.JSONPath, cfg.ResultsDir} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
}

// buildHookline builds the hookline command into a temporary directory,
// without the race detector even under `go test -race`.
func buildHookline(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "hookline")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/hookline/hookline/services/cmd/hookline")
	cmd.Env = childproc.WithoutRace(os.Environ())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build hookline: %v\n%s", err, out)
	}
	return bin
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestSmokeKafka runs the harness at a tiny scale on Kafka: `hookline dev
// --transport kafka` on a kfake-server process, both built from this
// repository, for one short step and latency run of fan-out 1→1, with the
// floor's broker hops through package kafka on a kfake-server of their
// own. It checks that the ledger balances, that kfake-server's usage is
// counted as the broker's, and that every figure is labelled kfake in a
// section of its own; never a timing.
func TestSmokeKafka(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the smoke run builds and runs hookline dev and kfake-server (15-25 s); make test runs it without -short")
	}
	bin, kfake := buildHookline(t), buildKfake(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Hookline = bin
	cfg.Transport = TransportKafka
	cfg.KfakeServer = kfake
	cfg.Scenarios = []string{ScenarioFanout1to1}
	cfg.StartRate = 200
	cfg.StepDuration = time.Second
	cfg.MaxSteps = 1
	cfg.Refine = 0
	cfg.LatencyDuration = time.Second
	cfg.DrainTimeout = 20 * time.Second
	cfg.WarmupEvents = 20
	cfg.BaselinePosts = 500
	cfg.BaselineWorkers = 8
	cfg.FloorMessages = 300
	cfg.HostCheckPosts = 0
	cfg.Publishers = 4
	cfg.Conns = 1
	cfg.DevLogLevel = "warn"
	cfg.WorkDir = dir
	cfg.JSONPath = filepath.Join(dir, "benchmarks-kafka.json")
	cfg.MarkdownPath = filepath.Join(dir, "benchmarks.md")
	const natsSection = MarkerBegin + "\nThe NATS figures.\n" + MarkerEnd + "\n"
	const doc = "# Benchmarks\n\n" + natsSection + "\n## On kfake\n\n" + MarkerBeginKafka + "\nold\n" + MarkerEndKafka + "\n\nAfter.\n"
	if err := os.WriteFile(cfg.MarkdownPath, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg, slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", text.String())
	if rep.Settings.Transport != TransportKafka || !strings.Contains(rep.Settings.Broker, "kfake") {
		t.Errorf("settings name transport %q, broker %q; want kafka on kfake", rep.Settings.Transport, rep.Settings.Broker)
	}
	if len(rep.Scenarios) != 1 {
		t.Fatalf("%d scenario results, want 1", len(rep.Scenarios))
	}
	s := rep.Scenarios[0]
	if l := s.Ledger; s.Status != StatusOK || l.Missing != 0 || !l.Balanced() || l.Pairs.Published == 0 {
		t.Errorf("status %s, ledger %+v; problems %q", s.Status, l, s.Problems)
	}
	if len(s.Steps) != 1 || s.Latency == nil || s.Latency.Latency.Count == 0 {
		t.Errorf("%d steps, latency run %+v", len(s.Steps), s.Latency)
	}
	if s.Broker == nil || s.Broker.CPUSeconds <= 0 || s.Broker.PeakRSSBytes <= 0 || s.Hookline.CPUSeconds < s.Broker.CPUSeconds {
		t.Errorf("broker usage %+v, Hookline's %+v: want kfake-server's counted, and within Hookline's", s.Broker, s.Hookline)
	}
	if s.Steps[0].BrokerCPUSeconds <= 0 {
		t.Errorf("step %+v: kfake-server's CPU not measured", s.Steps[0])
	}
	f := rep.Floor
	if f == nil || f.Transport != TransportKafka || f.Hops1to1 <= 0 || f.EventsConsumePerSec <= 0 || f.BrokerCPUShare <= 0 || f.Ceiling1to1.PerSecond <= 0 {
		t.Errorf("floor %+v: want kfake hops measured, with kfake-server's CPU, and a ceiling", f)
	}
	if c := s.Transport; c == nil || c.HopsPerSec != f.Hops1to1 || c.Bottleneck == BottleneckUnknown {
		t.Errorf("transport check %+v: want one against the floor's 1→1 hops", c)
	}
	if !strings.Contains(text.String(), "on kfake") {
		t.Errorf("text report does not say kfake")
	}
	if err := rep.WriteFiles(cfg); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(cfg.MarkdownPath)
	if err != nil {
		t.Fatal(err)
	}
	got := string(md)
	if !strings.HasPrefix(got, "# Benchmarks\n\n"+natsSection+"\n## On kfake\n\n"+MarkerBeginKafka) || !strings.HasSuffix(got, MarkerEndKafka+"\n\nAfter.\n") ||
		strings.Contains(got, "\nold\n") || !strings.Contains(got, KfakeLabel) {
		t.Errorf("markdown: want the kfake section rewritten and the NATS section and prose kept:\n%s", got)
	}
	js, err := os.ReadFile(cfg.JSONPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"transport": "kafka"`) {
		t.Errorf("JSON does not record the transport:\n%.2000s", js)
	}
}

// buildKfake builds kfake-server into a temporary directory, without the
// race detector even under `go test -race`.
func buildKfake(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), kfakeBinary)
	cmd := exec.Command("go", "build", "-o", bin, "github.com/hookline/hookline/pkg/transport/kafka/kafkatest/kfake-server")
	cmd.Env = childproc.WithoutRace(os.Environ())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build kfake-server: %v\n%s", err, out)
	}
	return bin
}
