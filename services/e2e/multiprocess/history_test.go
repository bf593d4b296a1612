package multiprocess

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/services/delivery"
)

// historyRow is the store's attempt history of one delivery.
type historyRow struct {
	known, unknown       int // attempts with an outcome; with none (delivery.OutcomeUnknown)
	answered             int // known attempts with a response (a status code): the receiver saw each
	known2xx, known500   int // known attempts answered 2xx; 500
	maxNumber, attempted int // highest attempt number; the delivery's attempt count
}

// history reads the attempt history of every delivery of the tenant.
func (s storeReader) history(t *testing.T) map[string]historyRow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT d.id, d.attempts,
    count(a.number) FILTER (WHERE a.error NOT LIKE $2),
    count(a.number) FILTER (WHERE a.error LIKE $2),
    count(a.number) FILTER (WHERE a.error NOT LIKE $2 AND a.status_code BETWEEN 200 AND 299),
    count(a.number) FILTER (WHERE a.error NOT LIKE $2 AND a.status_code = 500),
    count(a.number) FILTER (WHERE a.error NOT LIKE $2 AND a.status_code > 0),
    coalesce(max(a.number), 0)
FROM deliveries AS d LEFT JOIN attempts AS a ON a.delivery_id = d.id
WHERE d.tenant = $1
GROUP BY d.id, d.attempts`, tenant, delivery.OutcomeUnknown+"%")
	if err != nil {
		t.Fatalf("reading the attempt history: %v", err)
	}
	defer rows.Close()
	out := map[string]historyRow{}
	for rows.Next() {
		var id string
		var r historyRow
		if err := rows.Scan(&id, &r.attempted, &r.known, &r.unknown, &r.known2xx, &r.known500, &r.answered, &r.maxNumber); err != nil {
			t.Fatalf("reading the attempt history: %v", err)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the attempt history: %v", err)
	}
	return out
}

// historyReport is the attempt history set against the receiver's
// requests.
type historyReport struct {
	requests, rows, unknown int
	contradictions          []string // capped at maxProblems
	nContradictions         int
}

// checkHistory compares, for every pair of events × subs, the attempts the
// store recorded with the requests the receiver saw. The history must hold
// every request, and no answer the receiver did not give: answered
// attempts ≤ requests ≤ every attempt (an attempt that failed without a
// response, a timeout say, may or may not have reached the receiver's
// handler), no more known 2xx (or 500) attempts than 2xx (or 500)
// answers, attempt numbers 1..n without a gap, and the delivery's attempt
// count n.
func checkHistory(t *testing.T, db storeReader, rcv *receiver, subIDs []string, events int) historyReport {
	t.Helper()
	hist := db.history(t)
	var rep historyReport
	bad := func(format string, args ...any) {
		rep.nContradictions++
		if len(rep.contradictions) < maxProblems {
			rep.contradictions = append(rep.contradictions, fmt.Sprintf(format, args...))
		}
	}
	for e := range events {
		for s, sub := range subIDs {
			p := pair{e, s}
			var got, got2xx, got500 int
			for _, a := range rcv.answersTo(p) {
				got++
				switch {
				case a.status >= 200 && a.status < 300:
					got2xx++
				case a.status == 500:
					got500++
				}
			}
			rep.requests += got
			id := ids.Delivery(eventID(e), sub)
			h, ok := hist[id]
			if !ok {
				bad("%v: delivery %s is not in the store (%d requests seen)", p, id, got)
				continue
			}
			rep.rows += h.known + h.unknown
			rep.unknown += h.unknown
			switch {
			case got < h.answered || got > h.known+h.unknown:
				bad("%v: the receiver saw %d requests; the history holds %d attempts with an outcome (%d answered) and %d without", p, got, h.known, h.answered, h.unknown)
			case h.known2xx > got2xx || h.known500 > got500:
				bad("%v: the history holds %d attempts answered 2xx and %d answered 500; the receiver answered %d and %d", p, h.known2xx, h.known500, got2xx, got500)
			case h.maxNumber != h.known+h.unknown || h.attempted != h.maxNumber:
				bad("%v: %d attempts recorded, numbered up to %d, the delivery counting %d", p, h.known+h.unknown, h.maxNumber, h.attempted)
			}
		}
	}
	return rep
}

// reportHistory logs the comparison and fails the test on a contradiction.
func reportHistory(t *testing.T, rep historyReport) {
	t.Helper()
	t.Logf("attempt history: %d attempts recorded (%d with their outcome unknown) for %d requests received",
		rep.rows, rep.unknown, rep.requests)
	for _, c := range rep.contradictions {
		t.Errorf("history contradicts the receiver: %s", c)
	}
	if rep.nContradictions > len(rep.contradictions) {
		t.Errorf("... and %d more contradictions", rep.nContradictions-len(rep.contradictions))
	}
}
