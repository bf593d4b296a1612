package crdb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// sqlRecordAttempts records a batch of attempt results in one statement
// (one round trip, one implicit transaction), from parallel arrays:
//
//   - inserted inserts the attempts; ON CONFLICT DO NOTHING ignores an
//     attempt already recorded, and RETURNING yields only those inserted
//     now (recorded joins them back to their input rows);
//   - advanced moves each delivery to its highest-numbered newly recorded
//     attempt (latest), provided the delivery's recorded count is below
//     that number; a final status clears next_attempt_at; updated_at
//     becomes the attempt's end if that is later;
//   - dropped removes the scheduled retry of a delivery for an attempt at
//     or below a newly recorded attempt with a final status.
//
// The data-modifying sub-statements share the statement's snapshot and
// each touches a different table; advanced and dropped learn what was
// inserted only from inserted's RETURNING rows, which is all they need.
// The final SELECT reads every sub-statement so each certainly runs.
const sqlRecordAttempts = `WITH incoming AS (
    SELECT * FROM unnest($1::TEXT[], $2::INT8[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::INT8[], $7::INT8[],
        $8::INT8[], $9::BYTEA[], $10::TEXT[], $11::TEXT[], $12::BOOL[], $13::INT8[])
        AS t (delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns,
            status_code, response_body, error, status, final, ended_at)
),
inserted AS (
    INSERT INTO attempts (delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns,
        status_code, response_body, error)
    SELECT delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns,
        status_code, response_body, error
    FROM incoming
    ON CONFLICT (delivery_id, number) DO NOTHING
    RETURNING delivery_id, number
),
recorded AS (
    SELECT i.* FROM incoming AS i JOIN inserted ON inserted.delivery_id = i.delivery_id AND inserted.number = i.number
),
latest AS (
    SELECT DISTINCT ON (delivery_id) delivery_id, number, status, status_code, error, final, ended_at
    FROM recorded
    ORDER BY delivery_id, number DESC
),
advanced AS (
    UPDATE deliveries AS d SET
        status = latest.status,
        attempts = latest.number,
        last_status_code = latest.status_code,
        last_error = latest.error,
        next_attempt_at = CASE WHEN latest.final THEN NULL ELSE d.next_attempt_at END,
        updated_at = GREATEST(d.updated_at, latest.ended_at)
    FROM latest
    WHERE d.id = latest.delivery_id AND d.attempts < latest.number
    RETURNING d.id
),
dropped AS (
    DELETE FROM scheduled_retries
    WHERE (delivery_id, attempt) IN (
        SELECT r.delivery_id, r.attempt
        FROM scheduled_retries AS r
        JOIN (SELECT delivery_id, max(number) AS number FROM recorded WHERE final GROUP BY delivery_id) AS f
            ON f.delivery_id = r.delivery_id
        WHERE r.attempt <= f.number)
    RETURNING delivery_id
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM advanced), (SELECT count(*) FROM dropped)`

// finalStatus reports whether a status ends the retry cycle, so nothing is
// scheduled for the delivery any more.
func finalStatus(st store.DeliveryStatus) bool {
	return st == store.DeliverySucceeded || st == store.DeliveryDead || st == store.DeliveryParked
}

// RecordAttempts stores the attempts and advances their deliveries in one
// statement: one round trip and one (implicit, server-retried) transaction
// per batch, whatever its size. An attempt whose (delivery, number) is
// already recorded is ignored entirely, and so is every repeat of one
// within the batch after its first. A delivery takes the Status, number
// (as Attempts), status code and error of its highest-numbered attempt
// recorded by this call, provided that number exceeds its recorded
// Attempts; UpdatedAt becomes that attempt's end (StartedAt + Duration) if
// that is later. A final status (succeeded, dead, parked) clears
// NextAttemptAt, and removes the delivery's scheduled retry for that
// attempt or an earlier one. The outcome does not depend on the order of
// results within the batch (except which of two repeats comes first).
func (s *Store) RecordAttempts(ctx context.Context, results []store.AttemptResult) error {
	if len(results) == 0 {
		return nil
	}
	type key struct {
		id string
		n  int
	}
	seen := make(map[key]bool, len(results))
	batch := make([]store.AttemptResult, 0, len(results))
	for _, r := range results {
		a := r.Attempt
		if a.DeliveryID == "" || a.Number < 1 {
			return fmt.Errorf("crdb: record attempts: attempt %q #%d: invalid delivery id or number", a.DeliveryID, a.Number)
		}
		if k := (key{a.DeliveryID, a.Number}); !seen[k] {
			seen[k] = true
			batch = append(batch, r)
		}
	}
	// A stable order makes concurrent batches lock shared rows in the same
	// order (no deadlocks on PostgreSQL, fewer restarts on CockroachDB).
	slices.SortFunc(batch, func(x, y store.AttemptResult) int {
		return cmp.Or(cmp.Compare(x.Attempt.DeliveryID, y.Attempt.DeliveryID), cmp.Compare(x.Attempt.Number, y.Attempt.Number))
	})
	n := len(batch)
	var (
		ids, events, subs, tenants = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		errs, statuses             = make([]string, n), make([]string, n)
		numbers, started, durs     = make([]int64, n), make([]int64, n), make([]int64, n)
		codes, ended               = make([]int64, n), make([]int64, n)
		bodies                     = make([][]byte, n)
		finals                     = make([]bool, n)
	)
	for i, r := range batch {
		a := r.Attempt
		ids[i], events[i], subs[i], tenants[i] = a.DeliveryID, a.EventID, a.SubscriptionID, a.Tenant
		errs[i], statuses[i] = a.Error, string(r.Status)
		numbers[i], started[i], durs[i] = int64(a.Number), rowcodec.Nanos(a.StartedAt), int64(a.Duration)
		codes[i], ended[i] = int64(a.StatusCode), rowcodec.Nanos(a.StartedAt.Add(a.Duration))
		bodies[i] = a.ResponseBody // nil is stored as NULL and read back as nil
		finals[i] = finalStatus(r.Status)
	}
	return s.run(ctx, "record attempts", func(ctx context.Context) error {
		var inserted, advanced, dropped int64
		err := s.pool.QueryRow(ctx, sqlRecordAttempts, ids, numbers, events, subs, tenants, started, durs,
			codes, bodies, errs, statuses, finals, ended).Scan(&inserted, &advanced, &dropped)
		return err
	})
}

const attemptColumns = `delivery_id, number, event_id, subscription_id, tenant, started_at,
    duration_ns, status_code, response_body, error`

// ListAttempts returns up to f.Limit (default 100, at most 1000) attempts
// matching every set filter, newest first (StartedAt descending, then
// DeliveryID descending, then Number descending), and the token of the
// next page.
func (s *Store) ListAttempts(ctx context.Context, f store.AttemptFilter) ([]store.Attempt, string, error) {
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + attemptColumns + ` FROM attempts WHERE true`
	var a args
	if f.Tenant != "" {
		q += ` AND tenant = ` + a.add(f.Tenant)
	}
	if f.DeliveryID != "" {
		q += ` AND delivery_id = ` + a.add(f.DeliveryID)
	}
	if f.SubscriptionID != "" {
		q += ` AND subscription_id = ` + a.add(f.SubscriptionID)
	}
	if f.EventID != "" {
		q += ` AND event_id = ` + a.add(f.EventID)
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 3)
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list attempts: %w", err)
		}
		started, err := rowcodec.TokenInt64(parts[0])
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list attempts: %w", err)
		}
		num, err := rowcodec.TokenInt64(parts[1])
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list attempts: %w", err)
		}
		ps, pd, pn := a.add(started), a.add(parts[2]), a.add(num)
		q += ` AND (started_at < ` + ps + ` OR (started_at = ` + ps + ` AND (delivery_id < ` + pd +
			` OR (delivery_id = ` + pd + ` AND number < ` + pn + `))))`
	}
	q += ` ORDER BY started_at DESC, delivery_id DESC, number DESC LIMIT ` + a.add(limit+1)

	var out []store.Attempt
	err := s.run(ctx, "list attempts", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				at                         store.Attempt
				number, code, dur, started int64
			)
			if err := rows.Scan(&at.DeliveryID, &number, &at.EventID, &at.SubscriptionID, &at.Tenant, &started,
				&dur, &code, &at.ResponseBody, &at.Error); err != nil {
				return err
			}
			at.Number = int(number)
			at.StatusCode = int(code)
			at.Duration = time.Duration(dur)
			at.StartedAt = rowcodec.FromNanos(started)
			out = append(out, at)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = rowcodec.EncodeToken(strconv.FormatInt(rowcodec.Nanos(last.StartedAt), 10), strconv.Itoa(last.Number), last.DeliveryID)
	}
	return out, next, nil
}
