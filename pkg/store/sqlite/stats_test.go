package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// TestStatsReadsIndexes: SQLite's plan of the Stats statement searches a
// covering index for every count (a range or an equality: SEARCH), and
// scans no table or index whole (SCAN).
func TestStatsReadsIndexes(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	rows, err := s.read.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+sqlStats, rowcodec.StatsArgs(time.Now())...)
	if err != nil {
		t.Fatalf("EXPLAIN QUERY PLAN: %v", err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"deliveries":        "deliveries_status",
		"subscriptions":     "subscriptions_state_failing",
		"scheduled_retries": "scheduled_retries_due",
	}
	reads := map[string]int{}
	for _, step := range plan {
		for table, index := range want {
			if !strings.Contains(step, " "+table+" ") && !strings.HasSuffix(step, " "+table) {
				continue
			}
			reads[table]++
			if !strings.HasPrefix(step, "SEARCH ") || !strings.Contains(step, "COVERING INDEX "+index) {
				t.Errorf("plan step %q does not search %s's covering index %s", step, table, index)
			}
		}
	}
	for table := range want {
		if reads[table] == 0 {
			t.Errorf("the plan never reads %s:\n%s", table, strings.Join(plan, "\n"))
		}
	}
	if t.Failed() {
		t.Logf("plan:\n%s", strings.Join(plan, "\n"))
	}
}
