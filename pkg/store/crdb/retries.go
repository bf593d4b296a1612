package crdb

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// sqlScheduleRetries sets a batch of deliveries to retrying ($4; pending,
// $5, when the retry is of attempt 1) and upserts
// their scheduled retries with their trace parents ($6; NULL for "",
// dropping any lease), in one statement. Only
// deliveries that exist and have not yet recorded the retry's attempt get
// a retry; RETURNING names them.
const sqlScheduleRetries = `WITH incoming AS (
    SELECT * FROM unnest($1::TEXT[], $2::INT8[], $3::INT8[], $6::TEXT[]) AS t (delivery_id, attempt, due_at, trace_parent)
),
retrying AS (
    UPDATE deliveries AS d SET
        status = CASE WHEN incoming.attempt = 1 THEN $5 ELSE $4 END,
        next_attempt_at = incoming.due_at,
        updated_at = GREATEST(d.updated_at, incoming.due_at)
    FROM incoming
    WHERE d.id = incoming.delivery_id AND d.attempts < incoming.attempt
    RETURNING d.id
)
INSERT INTO scheduled_retries (delivery_id, attempt, due_at, claimed_until, trace_parent)
SELECT i.delivery_id, i.attempt, i.due_at, NULL::INT8, NULLIF(i.trace_parent, '')
FROM incoming AS i JOIN retrying ON retrying.id = i.delivery_id
ON CONFLICT (delivery_id) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at, claimed_until = NULL,
    trace_parent = excluded.trace_parent
RETURNING delivery_id`

// ScheduleRetries upserts one scheduled retry per delivery (replacing an
// earlier one and dropping any lease on it) and sets each delivery to
// retrying (pending when the retry is of attempt 1) with NextAttemptAt = DueAt (UpdatedAt becomes DueAt if that is
// later), in one statement. Of several retries for one delivery in the
// batch the last counts. A retry for a delivery that does not exist, or
// whose recorded Attempts is already at or above the retry's Attempt
// (stale), is skipped (and logged).
func (s *Store) ScheduleRetries(ctx context.Context, rs []store.ScheduledRetry) error {
	if len(rs) == 0 {
		return nil
	}
	last := make(map[string]store.ScheduledRetry, len(rs))
	for _, r := range rs {
		last[r.DeliveryID] = r
	}
	ids := make([]string, 0, len(last))
	for id := range last {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a stable lock order across concurrent batches
	attempts, dues, traces := make([]int64, len(ids)), make([]int64, len(ids)), make([]string, len(ids))
	for i, id := range ids {
		attempts[i], dues[i], traces[i] = int64(last[id].Attempt), rowcodec.Nanos(last[id].DueAt), last[id].TraceParent
	}
	scheduled := make(map[string]bool, len(ids))
	err := s.run(ctx, "schedule retries", func(ctx context.Context) error {
		clear(scheduled)
		rows, err := s.pool.Query(ctx, sqlScheduleRetries, ids, attempts, dues, string(store.DeliveryRetrying), string(store.DeliveryPending), traces)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			scheduled[id] = true
		}
		return rows.Err()
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !scheduled[id] {
			s.logger.InfoContext(ctx, "retry for an unknown delivery or an attempt already made skipped",
				slog.String("delivery_id", id), slog.Int("attempt", last[id].Attempt))
		}
	}
	return nil
}

// sqlClaimDueRetries leases due retries in one statement. picked chooses,
// earliest due first, up to $3 due retries whose lease is absent or over
// and whose delivery and event exist, locking them FOR UPDATE SKIP LOCKED:
// rows another claimer is locking are passed over instead of waited for,
// and a row another claimer has just leased fails the predicate when
// re-read (PostgreSQL re-checks a locked row's latest version;
// CockroachDB's serializable isolation restarts the statement). picked is
// MATERIALIZED, so it runs exactly once: PostgreSQL may otherwise plan it
// as the inner side of a nested loop and re-run it per outer row, where
// each run skips the rows the statement has already updated and picks
// more, exceeding the limit. claimed sets the lease (repeating the check)
// and the final SELECT joins each claimed retry to its delivery and event.
var sqlClaimDueRetries = `WITH picked AS MATERIALIZED (
    SELECT r.delivery_id
    FROM scheduled_retries AS r
    WHERE r.due_at <= $2 AND (r.claimed_until IS NULL OR r.claimed_until < $2)
        AND EXISTS (
            SELECT 1 FROM deliveries AS d JOIN events AS e ON e.id = d.event_id
            WHERE d.id = r.delivery_id)
    ORDER BY r.due_at, r.delivery_id
    LIMIT $3
    FOR UPDATE OF r SKIP LOCKED
),
claimed AS (
    UPDATE scheduled_retries SET claimed_until = $1
    WHERE delivery_id IN (SELECT delivery_id FROM picked)
        AND due_at <= $2 AND (claimed_until IS NULL OR claimed_until < $2)
    RETURNING delivery_id, attempt, due_at, trace_parent
)
SELECT c.attempt, c.due_at, COALESCE(c.trace_parent, ''), ` + deliveryColumnsOf("d") + `, ` + eventColumnsOf("e") + `
FROM claimed AS c
JOIN deliveries AS d ON d.id = c.delivery_id
JOIN events AS e ON e.id = d.event_id
ORDER BY c.due_at, c.delivery_id`

// ClaimDueRetries leases, in one statement, up to limit retries with
// DueAt <= now whose lease is absent or expired (a lease is live up to and
// including its end), earliest due first, setting their lease to
// now+lease. It is safe across replicas: two claimers (in any number of
// processes) never obtain the same retry while its lease is live, because
// candidate rows are locked FOR UPDATE SKIP LOCKED and re-checked. Each
// claimed retry comes with its delivery and event; a retry whose delivery
// or event is no longer stored is neither claimed nor returned.
func (s *Store) ClaimDueRetries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.DueRetry, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.DueRetry
	err := s.run(ctx, "claim due retries", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, sqlClaimDueRetries, rowcodec.Nanos(now.Add(lease)), rowcodec.Nanos(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				attempt, due int64
				ds           deliveryScan
				es           eventScan
			)
			var trace string
			dest := append([]any{&attempt, &due, &trace}, ds.dest()...)
			if err := rows.Scan(append(dest, es.dest()...)...); err != nil {
				return err
			}
			ev, err := es.event()
			if err != nil {
				return err
			}
			dr := store.DueRetry{Delivery: ds.delivery(), Event: ev}
			dr.TraceParent = trace
			dr.DeliveryID = dr.Delivery.ID
			dr.Attempt = int(attempt)
			dr.DueAt = rowcodec.FromNanos(due)
			out = append(out, dr)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CompleteRetries deletes, in one statement, each retry whose delivery,
// attempt and due time all match; a retry rescheduled since (a different
// Attempt or DueAt) is kept.
func (s *Store) CompleteRetries(ctx context.Context, rs []store.ScheduledRetry) error {
	if len(rs) == 0 {
		return nil
	}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b store.ScheduledRetry) int { return cmp.Compare(a.DeliveryID, b.DeliveryID) })
	ids, attempts, dues := make([]string, len(sorted)), make([]int64, len(sorted)), make([]int64, len(sorted))
	for i, r := range sorted {
		ids[i], attempts[i], dues[i] = r.DeliveryID, int64(r.Attempt), rowcodec.Nanos(r.DueAt)
	}
	return s.run(ctx, "complete retries", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, `DELETE FROM scheduled_retries
WHERE (delivery_id, attempt, due_at) IN (SELECT * FROM unnest($1::TEXT[], $2::INT8[], $3::INT8[]))`, ids, attempts, dues)
		return err
	})
}

// sqlSetFinal moves deliveries to a final status and removes their
// scheduled retries, in one statement.
const sqlSetFinal = `WITH updated AS (
    UPDATE deliveries SET status = $1, next_attempt_at = NULL, last_error = COALESCE($2::TEXT, last_error),
        updated_at = $3
    WHERE id = ANY($4::TEXT[])
    RETURNING id
),
removed AS (
    DELETE FROM scheduled_retries WHERE delivery_id = ANY($4::TEXT[])
    RETURNING delivery_id
)
SELECT (SELECT count(*) FROM updated), (SELECT count(*) FROM removed)`

// MarkDead sets the deliveries to dead with LastError = reason and
// UpdatedAt = now, clears NextAttemptAt and removes their scheduled
// retries, in one statement. Unknown IDs are ignored.
func (s *Store) MarkDead(ctx context.Context, deliveryIDs []string, reason string, now time.Time) error {
	return s.setFinal(ctx, "mark dead", deliveryIDs, store.DeliveryDead, &reason, now)
}

// ParkDeliveries sets the deliveries to parked with UpdatedAt = now,
// clears NextAttemptAt and removes their scheduled retries, in one
// statement; RedriveParked brings them back. Unknown IDs are ignored.
func (s *Store) ParkDeliveries(ctx context.Context, deliveryIDs []string, now time.Time) error {
	return s.setFinal(ctx, "park deliveries", deliveryIDs, store.DeliveryParked, nil, now)
}

func (s *Store) setFinal(ctx context.Context, op string, ids []string, status store.DeliveryStatus, reason *string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	ids = slices.Clone(ids)
	slices.Sort(ids) // a stable lock order across concurrent calls
	ids = slices.Compact(ids)
	return s.run(ctx, op, func(ctx context.Context) error {
		var updated, removed int64
		return s.pool.QueryRow(ctx, sqlSetFinal, string(status), reason, rowcodec.Nanos(now), ids).Scan(&updated, &removed)
	})
}

// sqlRedriveParked moves up to $5 parked deliveries of enabled
// subscriptions, oldest first, to retrying with a retry of their next
// attempt due $2, in one statement. Candidates are locked FOR UPDATE SKIP
// LOCKED in a MATERIALIZED CTE (run exactly once; see sqlClaimDueRetries)
// and re-checked, so concurrent redrives move each delivery once.
const sqlRedriveParked = `WITH picked AS MATERIALIZED (
    SELECT d.id
    FROM deliveries AS d
    WHERE d.status = $3
        AND EXISTS (SELECT 1 FROM subscriptions AS s WHERE s.id = d.subscription_id AND s.state = $4)
    ORDER BY d.created_at, d.id
    LIMIT $5
    FOR UPDATE OF d SKIP LOCKED
),
moved AS (
    UPDATE deliveries SET status = $1, next_attempt_at = $2, updated_at = $2
    WHERE id IN (SELECT id FROM picked) AND status = $3
    RETURNING id, attempts
),
scheduled AS (
    INSERT INTO scheduled_retries (delivery_id, attempt, due_at, claimed_until, trace_parent)
    SELECT id, attempts + 1, $2::INT8, NULL::INT8, NULL::TEXT FROM moved
    ON CONFLICT (delivery_id) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at, claimed_until = NULL,
        trace_parent = excluded.trace_parent
    RETURNING delivery_id
)
SELECT count(*) FROM scheduled`

// RedriveParked moves, in one statement, up to limit parked deliveries
// whose subscription exists and is enabled (oldest first) to retrying,
// with NextAttemptAt = UpdatedAt = now and a scheduled retry of attempt
// Attempts+1 due now, and returns how many it moved. Repeated calls move
// the rest; concurrent calls move each delivery once.
func (s *Store) RedriveParked(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var moved int64
	err := s.run(ctx, "redrive parked", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, sqlRedriveParked, string(store.DeliveryRetrying), rowcodec.Nanos(now),
			string(store.DeliveryParked), string(store.SubscriptionEnabled), limit).Scan(&moved)
	})
	if err != nil {
		return 0, err
	}
	return int(moved), nil
}
