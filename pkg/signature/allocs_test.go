//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only meaningful without it.

package signature

import "testing"

func TestAllocs(t *testing.T) {
	s, err := NewSigner(vecSecret, mustSecret(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := vecHeader()
	body := []byte(vecPayload)
	// Warm the pools.
	_ = s.Sign(vecID, vecTime, body)
	_ = v.VerifyAt(h, body, vecTime)

	tests := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"Sign", 1, func() { _ = s.Sign(vecID, vecTime, body) }},
		{"VerifyAt", 0, func() {
			if err := v.VerifyAt(h, body, vecTime); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		if got := testing.AllocsPerRun(200, tc.fn); got > tc.max {
			t.Errorf("%s: %v allocs/op, want <= %v", tc.name, got, tc.max)
		}
	}
}
