package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
	"github.com/hookline/hookline/pkg/store/storetest"
)

// TestMigrateTraceContext: rows written at schema version 4, before trace
// context was kept, read back after the migration as untraced: a
// subscription that sends no trace context, attempts and a scheduled
// retry without a traceparent; and Stats counts them.
func TestMigrateTraceContext(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v4.db")
	sub := storetest.NewSubscription("acme")
	ev := storetest.NewEvent("acme", "order.created", storetest.Base)
	d := storetest.NewDelivery(ev, sub, storetest.Base)
	a := storetest.NewAttempt(d, 1, storetest.Base.Add(time.Second))
	due := storetest.Base.Add(time.Minute)
	func() {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := migrateTo(t.Context(), db, testKeyring, testLogger(t), 4); err != nil {
			t.Fatalf("migrate to version 4: %v", err)
		}
		row, err := rowcodec.EncodeSubscription(sub, testKeyring)
		if err != nil {
			t.Fatal(err)
		}
		labels, payload, err := rowcodec.EventColumns(&ev)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []struct {
			sql  string
			args []any
		}{
			{`INSERT INTO subscriptions (id, tenant, url, description, event_types, secrets_sealed, secrets_key_id, headers, timeout_ms,
    retry_schedule, rate_limit, state, disabled_reason, failing_since, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, row.Args()[:16]},
			{`INSERT INTO events (id, tenant, event_type, payload, labels, occurred_at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				[]any{ev.ID, ev.Tenant, ev.Type, payload, labels, rowcodec.Nanos(ev.OccurredAt), rowcodec.Nanos(ev.ReceivedAt)}},
			{`INSERT INTO deliveries (id, event_id, subscription_id, tenant, event_type, status, attempts, next_attempt_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, 'retrying', 1, ?, ?, ?)`,
				[]any{d.ID, d.EventID, d.SubscriptionID, d.Tenant, d.EventType, rowcodec.Nanos(due), rowcodec.Nanos(d.CreatedAt), rowcodec.Nanos(d.CreatedAt)}},
			{`INSERT INTO attempts (delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns, status_code, response_body, error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				[]any{a.DeliveryID, a.Number, a.EventID, a.SubscriptionID, a.Tenant, rowcodec.Nanos(a.StartedAt), int64(a.Duration), a.StatusCode, a.ResponseBody, a.Error}},
			{`INSERT INTO scheduled_retries (delivery_id, attempt, due_at) VALUES (?, 2, ?)`, []any{d.ID, rowcodec.Nanos(due)}},
		} {
			if _, err := db.ExecContext(t.Context(), st.sql, st.args...); err != nil {
				t.Fatalf("write a version 4 row: %v\n%s", err, st.sql)
			}
		}
	}()

	s := openPath(t, path, testKeyring)
	got, err := s.GetSubscription(t.Context(), store.AllTenants(), sub.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.SendTraceContext || got.URL != sub.URL {
		t.Errorf("migrated subscription: SendTraceContext %v, URL %q; want false, %q", got.SendTraceContext, got.URL, sub.URL)
	}
	attempts, _, err := s.ListAttempts(t.Context(), store.AttemptFilter{Scope: store.AllTenants(), DeliveryID: d.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(attempts) != 1 || attempts[0].TraceParent != "" || attempts[0].StatusCode != a.StatusCode {
		t.Errorf("migrated attempts %+v; want attempt 1 without a traceparent", attempts)
	}
	claimed, err := s.ClaimDueRetries(t.Context(), due, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(claimed) != 1 || claimed[0].ScheduledRetry != (store.ScheduledRetry{DeliveryID: d.ID, Attempt: 2, DueAt: due}) {
		t.Errorf("claimed %+v; want attempt 2 of %s due %v without a traceparent", claimed, d.ID, due)
	}
	st, err := s.Stats(t.Context(), due)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deliveries[store.DeliveryRetrying] != 1 || st.Subscriptions[store.HealthHealthy] != 1 || st.ScheduledRetries[store.DueOverdue] != 1 {
		t.Errorf("stats after the migration %+v; want one retrying delivery, one healthy subscription, one overdue retry", st)
	}
}
