package crdb

import (
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// TestStatsReadsIndexes: PostgreSQL can answer every count of the Stats
// statement from an index. With sequential scans priced out
// (enable_seqscan off: on the test's near-empty tables the planner would
// otherwise rightly prefer them), its plan reads each counted table
// through the index meant for it, and no table by a sequential scan.
func TestStatsReadsIndexes(t *testing.T) {
	t.Parallel()
	url := crdbtest.NewDatabase(t)
	openStore(t, url, Options{}) // migrates
	conn := connectTest(t, url)
	if _, err := conn.Exec(t.Context(), `SET enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(t.Context(), `EXPLAIN `+sqlStats, rowcodec.StatsArgs(time.Now())...)
	if err != nil {
		t.Fatalf("EXPLAIN: %v", err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	if strings.Contains(text, "Seq Scan") {
		t.Errorf("the plan scans a table:\n%s", text)
	}
	for _, index := range []string{"deliveries_status_created", "subscriptions_state_failing", "scheduled_retries_due"} {
		if !strings.Contains(text, " "+index+" ") && !strings.Contains(text, " "+index+"\n") && !strings.HasSuffix(text, " "+index) {
			t.Errorf("the plan does not use %s:\n%s", index, text)
		}
	}
}
