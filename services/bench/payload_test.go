package bench

import (
	"math"
	"strconv"
	"testing"
)

func TestAppendPayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sched, seq int64
	}{
		{0, 0},
		{1_700_000_000_123_456_789, 42},
		{math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		p := AppendPayload(nil, tt.sched, tt.seq)
		if len(p) != PayloadSize {
			t.Errorf("AppendPayload(%d, %d): %d bytes, want %d", tt.sched, tt.seq, len(p), PayloadSize)
		}
		sched, seq, ok := ParsePayload(p)
		if !ok || sched != tt.sched || seq != tt.seq {
			t.Errorf("ParsePayload(AppendPayload(%d, %d)) = %d, %d, %v", tt.sched, tt.seq, sched, seq, ok)
		}
	}
}

func TestParsePayload(t *testing.T) {
	t.Parallel()
	maxInt := strconv.FormatInt(math.MaxInt64, 10)
	tests := []struct {
		name  string
		in    string
		sched int64
		seq   int64
		ok    bool
	}{
		{"padded", `{"t":1700000000123456789,"seq":7,"pad":"xx"}`, 1700000000123456789, 7, true},
		{"no pad", `{"t":5,"seq":6}`, 5, 6, true},
		{"max int64", `{"t":` + maxInt + `,"seq":1}`, math.MaxInt64, 1, true},
		{"overflow", `{"t":9223372036854775808,"seq":1}`, 0, 0, false},
		{"empty", ``, 0, 0, false},
		{"other JSON", `{"seq":1,"t":2}`, 0, 0, false},
		{"space", `{"t": 1,"seq":2}`, 0, 0, false},
		{"no number", `{"t":,"seq":2}`, 0, 0, false},
		{"negative", `{"t":-1,"seq":2}`, 0, 0, false},
		{"no seq", `{"t":1}`, 0, 0, false},
		{"truncated seq", `{"t":1,"seq":2`, 0, 0, false},
		{"seq followed by junk", `{"t":1,"seq":2x}`, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sched, seq, ok := ParsePayload([]byte(tt.in))
			if sched != tt.sched || seq != tt.seq || ok != tt.ok {
				t.Errorf("ParsePayload(%q) = %d, %d, %v; want %d, %d, %v", tt.in, sched, seq, ok, tt.sched, tt.seq, tt.ok)
			}
		})
	}
}

func BenchmarkParsePayload(b *testing.B) {
	p := AppendPayload(nil, 1_700_000_000_123_456_789, 123456)
	for b.Loop() {
		if _, _, ok := ParsePayload(p); !ok {
			b.Fatal("not parsed")
		}
	}
}
