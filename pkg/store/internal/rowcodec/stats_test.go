package rowcodec

import (
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

func TestStatsQueryShape(t *testing.T) {
	t.Parallel()
	q := StatsQuery(func(n int) string { return "$" + string(rune('0'+n)) })
	if got := strings.Count(q, "(SELECT count(*) FROM "); got != StatsCounts {
		t.Fatalf("%d counts in the statement, want %d:\n%s", got, StatsCounts, q)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	args := StatsArgs(now)
	want := []any{Nanos(now), Nanos(now.Add(time.Minute)), Nanos(now.Add(10 * time.Minute)), Nanos(now.Add(time.Hour)), Nanos(now.Add(24 * time.Hour))}
	if len(args) != len(want) {
		t.Fatalf("%d arguments, want %d", len(args), len(want))
	}
	for i := range want {
		if args[i] != want[i] {
			t.Errorf("argument %d = %v, want %v", i+1, args[i], want[i])
		}
		if p := "$" + string(rune('1'+i)); !strings.Contains(q, p) {
			t.Errorf("the statement does not use %s:\n%s", p, q)
		}
	}
	for _, part := range []string{
		"status = 'pending'", "status = 'retrying'", "status = 'parked'", "status = 'dead'",
		"state = 'enabled' AND failing_since IS NULL", "state = 'enabled' AND failing_since IS NOT NULL", "state = 'disabled'",
		"WHERE due_at <= $1)", "WHERE due_at > $1 AND due_at <= $2)", "WHERE due_at > $5)",
	} {
		if !strings.Contains(q, part) {
			t.Errorf("the statement lacks %q:\n%s", part, q)
		}
	}
}

func TestStatsFrom(t *testing.T) {
	t.Parallel()
	counts := make([]int64, StatsCounts)
	for i := range counts {
		counts[i] = int64(i + 1)
	}
	st, err := StatsFrom(counts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want int64
	}{
		{"pending", st.Deliveries[store.DeliveryPending], 1},
		{"dead", st.Deliveries[store.DeliveryDead], 4},
		{"healthy", st.Subscriptions[store.HealthHealthy], 5},
		{"disabled", st.Subscriptions[store.HealthDisabled], 7},
		{"overdue", st.ScheduledRetries[store.DueOverdue], 8},
		{"later", st.ScheduledRetries[store.DueLater], 13},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	for _, n := range []int{0, StatsCounts - 1, StatsCounts + 1} {
		if _, err := StatsFrom(make([]int64, n)); err == nil {
			t.Errorf("StatsFrom of %d counts succeeded", n)
		}
	}
}
