package bench

import (
	"log/slog"
	"testing"
)

// TestRunFloorMeasuresEveryPart runs the floor on a few hundred messages
// and checks that every part did its work and was measured: a part that
// silently did nothing would make the ceiling flatter the pipeline.
func TestRunFloorMeasuresEveryPart(t *testing.T) {
	t.Parallel()
	const n = 500
	f, err := RunFloor(t.Context(), t.TempDir(), n, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{
		"events publish": f.EventsPublishUs, "events consume": f.EventsConsumeUs,
		"deliveries publish": f.DeliveriesPublishUs, "deliveries consume": f.DeliveriesConsumeUs,
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
