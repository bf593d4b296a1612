package bench

import (
	"log/slog"
	"math"
	"testing"
)

// TestRunFloorMeasuresEveryPart runs the floor on a few hundred messages
// and checks that every part did its work and was measured: a part that
// silently did nothing would make the ceiling flatter the pipeline.
func TestRunFloorMeasuresEveryPart(t *testing.T) {
	t.Parallel()
	const n = 500
	f, err := RunFloor(t.Context(), FloorConfig{Dir: t.TempDir(), Messages: n}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{
		"events publish": f.EventsPublishUs, "events consume": f.EventsConsumeUs,
		"deliveries publish": f.DeliveriesPublishUs, "deliveries consume": f.DeliveriesConsumeUs,
		"events publish rate": f.EventsPublishPerSec, "events consume rate": f.EventsConsumePerSec,
		"deliveries publish rate": f.DeliveriesPublishPerSec, "deliveries consume rate": f.DeliveriesConsumePerSec,
		"store 1→1 CPU": f.Store1to1.CPUUs, "store 1→1 rate": f.Store1to1.PerSecond,
		"store 1→10 CPU": f.Store1to10.CPUUs, "store 1→10 rate": f.Store1to10.PerSecond,
	} {
		if v <= 0 {
			t.Errorf("%s: %v, want > 0", name, v)
		}
	}
	for name, got := range map[string]int{"store 1→1": f.Store1to1.Deliveries, "store 1→10": f.Store1to10.Deliveries} {
		if got != n {
			t.Errorf("%s: %d deliveries written, want %d", name, got, n)
		}
	}
}

// TestFloorCeilings checks the arithmetic of the ceilings: each part once
// per delivery (a tenth of the EVENTS hop at fan-out 1→10), the cheaper
// baseline run's POST, the cores, and the store's own rate as a cap.
func TestFloorCeilings(t *testing.T) {
	t.Parallel()
	base := Baseline{PerSecond: 40_000, Runs: []BaselineResult{
		{Posts: 100_000, CPUSeconds: 5}, // 50 µs per POST
		{Posts: 100_000, CPUSeconds: 4}, // 40 µs: the one used
	}}
	tests := map[string]struct {
		store1, store10 StoreFloor
		want1, want10   Ceiling
	}{
		"CPU bound": {
			store1:  StoreFloor{CPUUs: 60, PerSecond: 50_000},
			store10: StoreFloor{CPUUs: 40, PerSecond: 50_000},
			// 1→1: 20+10 + 15+15 + 60 + 40 = 160 µs: 2 cores give 12,500/s.
			want1: Ceiling{CPUUs: 160, PerSecond: 12_500, Ratio: 0.313},
			// 1→10: 3 + 30 + 40 + 40 = 113 µs: 17,699.1/s.
			want10: Ceiling{CPUUs: 113, PerSecond: 17_699.1, Ratio: 0.442},
		},
		"store bound": {
			store1:  StoreFloor{CPUUs: 60, PerSecond: 9_000},
			store10: StoreFloor{CPUUs: 40, PerSecond: 10_000},
			want1:   Ceiling{CPUUs: 160, PerSecond: 9_000, Ratio: 0.225},
			want10:  Ceiling{CPUUs: 113, PerSecond: 10_000, Ratio: 0.25},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := FloorResult{EventsPublishUs: 20, EventsConsumeUs: 10, DeliveriesPublishUs: 15, DeliveriesConsumeUs: 15,
				Store1to1: tc.store1, Store1to10: tc.store10}
			f.derive(base, 2)
			if f.POSTUs != 40 || f.Cores != 2 {
				t.Errorf("POST %v µs on %d cores, want 40 µs on 2", f.POSTUs, f.Cores)
			}
			if f.Ceiling1to1 != tc.want1 {
				t.Errorf("1→1 ceiling %+v, want %+v", f.Ceiling1to1, tc.want1)
			}
			if f.Ceiling1to10 != tc.want10 {
				t.Errorf("1→10 ceiling %+v, want %+v", f.Ceiling1to10, tc.want10)
			}
		})
	}
}

// TestRunFloorOnKfake runs the floor's broker hops through package kafka
// against a kfake-server process, and checks that every phase was
// measured with kfake-server's CPU counted.
func TestRunFloorOnKfake(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds and runs kfake-server")
	}
	t.Parallel()
	const n = 500
	f, err := RunFloor(t.Context(), FloorConfig{Dir: t.TempDir(), Messages: n, Transport: TransportKafka, KfakeServer: buildKfake(t), SkipStore: true},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{
		"events publish": f.EventsPublishUs, "events consume": f.EventsConsumeUs,
		"deliveries publish": f.DeliveriesPublishUs, "deliveries consume": f.DeliveriesConsumeUs,
		"events publish rate": f.EventsPublishPerSec, "events consume rate": f.EventsConsumePerSec,
		"deliveries publish rate": f.DeliveriesPublishPerSec, "deliveries consume rate": f.DeliveriesConsumePerSec,
		"kfake-server's share": f.BrokerCPUShare,
	} {
		if v <= 0 {
			t.Errorf("%s: %v, want > 0", name, v)
		}
	}
	if f.Transport != TransportKafka || !f.StoreSkipped || f.Store1to1.Deliveries != 0 {
		t.Errorf("floor %+v: want kafka hops only", f)
	}
	f.derive(Baseline{PerSecond: 10_000}, 2)
	if f.Hops1to1 <= 0 || f.Hops1to10 <= f.Hops1to1 || f.Ceiling1to1 != (Ceiling{}) {
		t.Errorf("hops %v at 1→1, %v at 1→10, ceiling %+v: want hop rates and no ceiling without the store", f.Hops1to1, f.Hops1to10, f.Ceiling1to1)
	}
}

// TestHopsRate checks the broker hops' rate: the phases one after another,
// the EVENTS hop shared by an event's deliveries.
func TestHopsRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                   string
		fanout, ep, ec, dp, dc float64
		want                   float64
	}{
		// 1/10,000 + 1/5,000 + 1/20,000 + 1/4,000 = 600 µs per delivery.
		{"1→1", 1, 10_000, 5_000, 20_000, 4_000, 1e6 / 600},
		// 10 + 20 + 50 + 250 = 330 µs.
		{"1→10", 10, 10_000, 5_000, 20_000, 4_000, 1e6 / 330},
		{"DELIVERIES only", 1, 0, 0, 20_000, 4_000, 1e6 / 300},
		{"nothing measured", 1, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		if got := hopsRate(tt.fanout, tt.ep, tt.ec, tt.dp, tt.dc); math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("%s: hopsRate = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestFloorCeilingOnKfake checks that on Kafka the ceiling is also capped
// by kfake's hops alone (kfake serves its requests one at a time), and
// that on NATS it is not.
func TestFloorCeilingOnKfake(t *testing.T) {
	t.Parallel()
	base := Baseline{PerSecond: 40_000, Runs: []BaselineResult{{Posts: 100_000, CPUSeconds: 4}}}
	for _, tc := range []struct {
		transport string
		want      float64
	}{{TransportKafka, 1e6 / 600}, {TransportNATS, 12_500}} {
		f := FloorResult{Transport: tc.transport, EventsPublishUs: 20, EventsConsumeUs: 10, DeliveriesPublishUs: 15, DeliveriesConsumeUs: 15,
			EventsPublishPerSec: 10_000, EventsConsumePerSec: 5_000, DeliveriesPublishPerSec: 20_000, DeliveriesConsumePerSec: 4_000,
			Store1to1: StoreFloor{CPUUs: 60, PerSecond: 50_000}, Store1to10: StoreFloor{CPUUs: 40, PerSecond: 50_000}}
		f.derive(base, 2)
		if f.Ceiling1to1.PerSecond != round(tc.want) {
			t.Errorf("%s: 1→1 ceiling %v, want %v", tc.transport, f.Ceiling1to1.PerSecond, round(tc.want))
		}
		if f.Hops1to1 != round(1e6/600) || f.HopsRetry != round(1e6/300) {
			t.Errorf("%s: hops %v at 1→1, %v for a retry", tc.transport, f.Hops1to1, f.HopsRetry)
		}
	}
}
