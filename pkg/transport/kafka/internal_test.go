package kafka

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func TestStickyBalancer(t *testing.T) {
	t.Parallel()
	parts := func(n int) []kafkago.Partition {
		ps := make([]kafkago.Partition, n)
		for i := range ps {
			ps[i] = kafkago.Partition{Topic: "t", ID: i}
		}
		return ps
	}
	member := func(id, busy string) kafkago.GroupMember {
		return kafkago.GroupMember{ID: id, Topics: []string{"t"}, UserData: []byte(busy)}
	}
	tests := []struct {
		name    string
		members []kafkago.GroupMember
		n       int
		want    map[string][]int
	}{
		{"one member takes all", []kafkago.GroupMember{member("a", "null")}, 4, map[string][]int{"a": {0, 1, 2, 3}}},
		{"even split", []kafkago.GroupMember{member("b", "null"), member("a", "null")}, 4, map[string][]int{"a": {0, 2}, "b": {1, 3}}},
		{"busy partitions stay", []kafkago.GroupMember{member("a", "[1,2,3]"), member("b", "null")}, 8, map[string][]int{"a": {1, 2, 3, 6}, "b": {0, 4, 5, 7}}},
		{"busy beyond a fair share stay", []kafkago.GroupMember{member("a", "[0,1,2,3]"), member("b", "null")}, 4, map[string][]int{"a": {0, 1, 2, 3}, "b": nil}},
		{"first claimant wins, unknown partitions ignored", []kafkago.GroupMember{member("a", "[1,9]"), member("b", "[1]")}, 2, map[string][]int{"a": {1}, "b": {0}}},
		{"unreadable user data means nothing busy", []kafkago.GroupMember{member("a", "{"), member("b", "")}, 2, map[string][]int{"a": {0}, "b": {1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := (&stickyBalancer{}).AssignGroups(tc.members, parts(tc.n))
			for id, want := range tc.want {
				if g := got[id]["t"]; !slices.Equal(g, want) {
					t.Errorf("member %s got %v, want %v", id, g, want)
				}
			}
		})
	}
}

func TestSuspectEnd(t *testing.T) {
	t.Parallel()
	released := commitMeta{state: stateReleased, token: "x", seq: 3, pos: 42}.String()
	held := commitMeta{state: stateHeld, token: "x", seq: 3, pos: 42}.String()
	tests := []struct {
		name      string
		committed int64
		meta      string
		logEnd    int64
		want      int64
	}{
		{"never committed: nothing handed out", -1, "", 100, -1},
		{"orderly release: up to the hand-out position", 10, released, 100, 42},
		{"held (owner crashed): up to the log end", 10, held, 100, 100},
		{"foreign commit: up to the log end", 10, "", 100, 100},
		{"garbage metadata: up to the log end", 10, "hookline1 held x y z", 100, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := suspectEnd(tc.committed, tc.meta, tc.logEnd); got != tc.want {
				t.Errorf("suspectEnd(%d, %q, %d) = %d, want %d", tc.committed, tc.meta, tc.logEnd, got, tc.want)
			}
		})
	}
	if md, ok := parseMeta(released); !ok || md.pos != 42 || md.seq != 3 || md.state != stateReleased {
		t.Errorf("parseMeta(%q) = %+v, %v", released, md, ok)
	}
}

// TestReachabilitySaysItOnce: however many checks fail, the log gets one
// warning per outage, repeated at most every repeat interval while it
// lasts, and one info line when the brokers are reached (again).
func TestReachabilitySaysItOnce(t *testing.T) {
	t.Parallel()
	type step struct {
		at time.Duration // since the start
		ok bool
	}
	fails := func(from, to, every time.Duration) []step {
		var s []step
		for at := from; at < to; at += every {
			s = append(s, step{at: at})
		}
		return s
	}
	tests := []struct {
		name  string
		steps []step
		want  []string // level and message start of every line logged
	}{
		{"connected at once", []step{{0, true}, {time.Second, true}}, []string{"INFO kafka: connected"}},
		{
			"unreachable at start, then connected",
			append(fails(0, 10*time.Second, 50*time.Millisecond), step{10 * time.Second, true}),
			[]string{"WARN kafka: cannot reach", "INFO kafka: connected"},
		},
		{
			"a long outage is repeated every 30s",
			append(append([]step{{0, true}}, fails(time.Second, 95*time.Second, time.Second)...), step{95 * time.Second, true}),
			[]string{"INFO kafka: connected", "WARN kafka: lost", "WARN kafka: the brokers are still unreachable", "WARN kafka: the brokers are still unreachable", "WARN kafka: the brokers are still unreachable", "INFO kafka: connection to the brokers is back"},
		},
		{
			"two outages, each said once",
			[]step{{0, true}, {1 * time.Second, false}, {2 * time.Second, false}, {3 * time.Second, true}, {4 * time.Second, true}, {5 * time.Second, false}, {6 * time.Second, true}},
			[]string{"INFO kafka: connected", "WARN kafka: lost", "INFO kafka: connection to the brokers is back", "WARN kafka: lost", "INFO kafka: connection to the brokers is back"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			start := time.Unix(1_700_000_000, 0)
			var now time.Time
			r := newReachability(log, []string{"127.0.0.1:1"})
			r.now = func() time.Time { return now }
			for _, s := range tc.steps {
				now = start.Add(s.at)
				if s.ok {
					r.ok()
				} else {
					r.failed(errors.New("connection refused"))
				}
			}
			got := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(got) != len(tc.want) {
				t.Fatalf("logged %d lines, want %d:\n%s", len(got), len(tc.want), buf.String())
			}
			for i, w := range tc.want {
				level, msg, _ := strings.Cut(w, " ")
				if !strings.Contains(got[i], "level="+level) || !strings.Contains(got[i], `msg="`+msg) {
					t.Errorf("line %d = %s, want %s", i, got[i], w)
				}
			}
		})
	}
}
