package retry

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	sched := []time.Duration{5 * time.Second, time.Minute, time.Hour}
	fixed := func(v float64) func() float64 { return func() float64 { return v } }
	tests := []struct {
		name       string
		schedule   []time.Duration
		failed     int
		retryAfter time.Duration
		jitter     float64
		rnd        func() float64
		want       time.Duration
		wantOK     bool
	}{
		{"first retry", sched, 1, 0, 0, nil, 5 * time.Second, true},
		{"last retry", sched, 3, 0, 0, nil, time.Hour, true},
		{"exhausted", sched, 4, 0, 0, nil, 0, false},
		{"attempt zero", sched, 0, 0, 0, nil, 0, false},
		{"negative attempt", sched, -1, 0, 0, nil, 0, false},
		{"empty schedule", nil, 1, 0, 0, nil, 0, false},
		{"jitter low end", sched, 2, 0, 0.5, fixed(0), 30 * time.Second, true},
		{"jitter middle", sched, 2, 0, 0.5, fixed(0.5), time.Minute, true},
		{"jitter near high end", sched, 2, 0, 0.5, fixed(0.75), 75 * time.Second, true},
		{"jitter clamped to 1", sched, 2, 0, 3, fixed(0), 0, true},
		{"jitter without rnd", sched, 2, 0, 0.5, nil, time.Minute, true},
		{"bad rnd ignored", sched, 2, 0, 0.5, fixed(7), time.Minute, true},
		{"retry-after shorter loses", sched, 2, 10 * time.Second, 0, nil, time.Minute, true},
		{"retry-after longer wins", sched, 1, 2 * time.Minute, 0, nil, 2 * time.Minute, true},
		{"retry-after capped", sched, 1, 100 * time.Hour, 0, nil, MaxRetryAfter, true},
		{"retry-after ignored when exhausted", sched, 9, time.Hour, 0, nil, 0, false},
		{"negative entry", []time.Duration{-time.Second}, 1, 0, 0, nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := Delay(tt.schedule, tt.failed, tt.retryAfter, tt.jitter, tt.rnd)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("Delay() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestDelayJitterBounds(t *testing.T) {
	t.Parallel()
	for i := range 1000 {
		r := float64(i) / 1000
		d, ok := Delay(DefaultSchedule, 3, 0, 0.2, func() float64 { return r })
		if !ok || d < 24*time.Minute || d > 36*time.Minute {
			t.Fatalf("r=%v: Delay = %v, %v; want within 30m±20%%", r, d, ok)
		}
	}
}

func TestDefaultSchedule(t *testing.T) {
	t.Parallel()
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	if !slices.Equal(DefaultSchedule, want) {
		t.Fatalf("DefaultSchedule = %v", DefaultSchedule)
	}
	if _, ok := Delay(DefaultSchedule, 8, 0, 0, nil); ok {
		t.Fatal("8th failed attempt must exhaust the default schedule")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"   ", 0, false},
		{"0", 0, true},
		{"120", 2 * time.Minute, true},
		{" 7 ", 7 * time.Second, true},
		{"-5", 0, false},
		{"1.5", 0, false},
		{"12abc", 0, false},
		{"99999999999999999999999", MaxRetryAfter, true},
		{"864000", MaxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
		{"Sat, 01 Mar 2025 12:01:00 GMT", time.Minute, true},
		{"Saturday, 01-Mar-25 12:00:30 GMT", 30 * time.Second, true}, // RFC 850
		{"Sat Mar  1 12:00:10 2025", 10 * time.Second, true},         // ANSI C
		{"tomorrow", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseRetryAfter(tt.in, now)
			if got != tt.want || ok != tt.wantOK {
				t.Fatalf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    []time.Duration
		wantErr string
	}{
		{"", []time.Duration{}, ""},
		{"5s", []time.Duration{5 * time.Second}, ""},
		{"5s, 5m ,1h30m", []time.Duration{5 * time.Second, 5 * time.Minute, 90 * time.Minute}, ""},
		{"5s,,1m", nil, "entry 2"},
		{"5s,abc", nil, "entry 2"},
		{"0s", nil, "not positive"},
		{"-1s", nil, "not positive"},
		{"1000h", nil, "exceeds"},
		{strings.Repeat("1s,", MaxScheduleLen) + "1s", nil, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSchedule(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseSchedule(%q) error = %v; want containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseSchedule(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatScheduleRoundTrip(t *testing.T) {
	t.Parallel()
	s := FormatSchedule(DefaultSchedule)
	got, err := ParseSchedule(s)
	if err != nil || !slices.Equal(got, DefaultSchedule) {
		t.Fatalf("round trip of %q = %v, %v", s, got, err)
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"", "0", "120", "-1", "Sat, 01 Mar 2025 12:01:00 GMT", "99999999999999999999", "1e3", " 5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %v with ok=false", s, d)
		}
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %v out of [0, %v]", s, d, MaxRetryAfter)
		}
	})
}

func FuzzParseSchedule(f *testing.F) {
	for _, s := range []string{"", "5s,5m,30m", "1h30m", "-1s", "5s,,", "0", "1.5h, 2h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sched, err := ParseSchedule(s)
		if err != nil {
			return
		}
		if len(sched) > MaxScheduleLen {
			t.Fatalf("%q: %d entries", s, len(sched))
		}
		for _, d := range sched {
			if d <= 0 || d > MaxDelay {
				t.Fatalf("%q: entry %v out of range", s, d)
			}
		}
		again, err := ParseSchedule(FormatSchedule(sched))
		if err != nil || !slices.Equal(again, sched) {
			t.Fatalf("%q: round trip = %v, %v; want %v", s, again, err, sched)
		}
		for i := range sched {
			if d, ok := Delay(sched, i+1, 0, 0.2, func() float64 { return 0.99 }); !ok || d < 0 {
				t.Fatalf("%q: Delay(%d) = %v, %v", s, i+1, d, ok)
			}
		}
	})
}
