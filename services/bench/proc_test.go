package bench

import (
	"os"
	"runtime"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		stat    string
		want    float64
		wantErr bool
	}{
		{"plain", "1234 (hookline) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0 100 0 0", 3, false},
		{"name with spaces and parentheses", "1234 (a) b (c)) R 1 1 1 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 0 0", 0.1, false},
		{"truncated", "1234 (x) S 1 2 3", 0, true},
		{"no name", "garbage", 0, true},
		{"not numbers", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 a b 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatCPU = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseGoroutineTotal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line    string
		want    int
		wantErr bool
	}{
		{"goroutine profile: total 123\n", 123, false},
		{"goroutine profile: total x\n", 0, true},
		{"heap profile: 1: 2 [3: 4] @ heap/2\n", 0, true},
	}
	for _, tt := range tests {
		got, err := parseGoroutineTotal(tt.line)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseGoroutineTotal(%q) = %v, %v; want %v, error %v", tt.line, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReadProcUsageSelf(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("process usage is read from /proc, which only Linux has; the harness measures on Linux only")
	}
	u, err := readProcUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.PeakRSSBytes <= 0 || u.RSSBytes <= 0 || u.Threads <= 0 || u.CPUSeconds < 0 {
		t.Errorf("implausible usage of this process: %+v", u)
	}
}

func TestParseGoroutineProfile(t *testing.T) {
	t.Parallel()
	const profile = "goroutine profile: total 7\n" +
		"4 @ 0x496d21\n\n" +
		"2 @ 0x48f2ae 0x46b345 0xbd08a8 0xdc60d2 0x496d21\n" +
		"#\t0xbd08a7\tgithub.com/x/server.(*Server).processJSAPIRoutedRequests+0x227\t/x/jetstream_api.go:1083\n" +
		"#\t0xdc60d1\tgithub.com/x/server.(*Server).startGoRoutine.func1+0x31\t\t/x/server.go:4143\n\n" +
		"1 @ 0x11e25e1 0x496d21\n" +
		"#\t0x11e25e0\tnet/http.(*persistConn).readLoop+0x0\t/go/src/net/http/transport.go:2207\n\n"
	total, byEntry, err := parseGoroutineProfile(profile)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{noFrames: 4, "github.com/x/server.(*Server).startGoRoutine.func1": 2, "net/http.(*persistConn).readLoop": 1}
	if total != 7 || len(byEntry) != len(want) {
		t.Fatalf("total %d, by entry %v; want 7, %v", total, byEntry, want)
	}
	for k, v := range want {
		if byEntry[k] != v {
			t.Errorf("%s: %d goroutines, want %d", k, byEntry[k], v)
		}
	}
}

func TestGoroutineGrowth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		before, after map[string]int
		want          string
	}{
		{"not measured", nil, map[string]int{"a": 1}, ""},
		{"unchanged", map[string]int{"a": 1}, map[string]int{"a": 1}, ""},
		{"largest growth first, then shrinkage", map[string]int{"a": 5, "b": 1, "gone": 2}, map[string]int{"a": 6, "b": 4, "new": 2},
			"b +3, new +2, a +1, gone -2"},
		{"top bounds the list", map[string]int{}, map[string]int{"a": 1, "b": 2, "c": 3, "d": 4, "e": 5, "f": 6}, "f +6, e +5, d +4, c +3, b +2"},
	}
	for _, tt := range tests {
		if got := GoroutineGrowth(tt.before, tt.after, 5); got != tt.want {
			t.Errorf("%s: GoroutineGrowth = %q, want %q", tt.name, got, tt.want)
		}
	}
}
