package crdb

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// The statements of RecordAttempts. A batch travels as parallel arrays
// (one element per result, sorted by delivery id then number) through
// unnest, and its effects are written by one statement whose
// data-modifying sub-statements share its snapshot:
//
//   - inserted inserts the attempts (trace_parent NULL for ""); ON
//     CONFLICT DO NOTHING ignores an attempt already recorded, and
//     RETURNING yields only those inserted now (recorded joins them back
//     to their input rows), so an attempt recorded before is ignored with
//     all its consequences;
//   - advanced moves each delivery to its highest-numbered newly recorded
//     attempt (latest), provided the delivery's recorded count is below
//     that number: its status, number, status code and last error (the
//     result's delivery_error, or the attempt's error); a final status
//     clears next_attempt_at, a retrying one sets it to next_at (NULL for
//     any other status, which keeps it); updated_at becomes the attempt's
//     end if that is later.
//
// Then either (no retrying result in the batch, the common case: most
// attempts succeed)
//
//   - dropped removes a delivery's scheduled retry for an attempt at or
//     below the number of a final result of the batch;
//
// or (sqlRecordAttemptsScheduling)
//
//   - scheduled upserts, for each delivery that advanced to a retrying
//     result, the retry of its next attempt due next_at with that
//     result's trace_parent, replacing any earlier one and dropping its
//     lease (as ScheduleRetries does).
//
// CockroachDB refuses a statement that modifies one table twice, so one
// statement cannot both upsert and delete scheduled retries: a batch with
// retrying and final results sends sqlDropSettledRetries after
// sqlRecordAttemptsScheduling, in one pgx batch (one round trip, run by the
// server as one implicit transaction). Only the upsert needs to know what
// the statement recorded; removing retries of attempts already made is
// idempotent on its own, which is why dropped and sqlDropSettledRetries
// act on every final result of the batch, recorded now or before: a
// delivery's scheduled retry is always of an attempt above its recorded
// count when it is stored, so a retry at or below an attempt that is
// recorded is stale (the scheduled retry a newly recorded retrying result
// stores is above every final result of the batch for its delivery, or the
// delivery would not have advanced).
//
// The final SELECT reads every sub-statement so each certainly runs.
const (
	sqlRecordAttemptsHead = `WITH incoming AS (
    SELECT * FROM unnest($1::TEXT[], $2::INT8[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::INT8[], $7::INT8[],
        $8::INT8[], $9::BYTEA[], $10::TEXT[], $11::TEXT[], $12::BOOL[], $13::INT8[], $14::TEXT[], $15::INT8[],
        $16::TEXT[])
        AS t (delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns,
            status_code, response_body, error, status, final, ended_at, delivery_error, next_at, trace_parent)
),
inserted AS (
    INSERT INTO attempts (delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns,
        status_code, response_body, error, trace_parent)
    SELECT delivery_id, number, event_id, subscription_id, tenant, started_at, duration_ns,
        status_code, response_body, error, NULLIF(trace_parent, '')
    FROM incoming
    ON CONFLICT (delivery_id, number) DO NOTHING
    RETURNING delivery_id, number
),
recorded AS (
    SELECT i.* FROM incoming AS i JOIN inserted ON inserted.delivery_id = i.delivery_id AND inserted.number = i.number
),
latest AS (
    SELECT DISTINCT ON (delivery_id) delivery_id, number, status, status_code,
        CASE WHEN delivery_error = '' THEN error ELSE delivery_error END AS last_error, final, ended_at, next_at,
        NULLIF(trace_parent, '') AS trace_parent
    FROM recorded
    ORDER BY delivery_id, number DESC
),
advanced AS (
    UPDATE deliveries AS d SET
        status = latest.status,
        attempts = latest.number,
        last_status_code = latest.status_code,
        last_error = latest.last_error,
        next_attempt_at = CASE WHEN latest.final THEN NULL ELSE COALESCE(latest.next_at, d.next_attempt_at) END,
        updated_at = GREATEST(d.updated_at, latest.ended_at)
    FROM latest
    WHERE d.id = latest.delivery_id AND d.attempts < latest.number
    RETURNING d.id
),
`

	// sqlRecordAttempts records a batch without retrying results.
	sqlRecordAttempts = sqlRecordAttemptsHead + `dropped AS (
    DELETE FROM scheduled_retries
    WHERE (delivery_id, attempt) IN (
        SELECT r.delivery_id, r.attempt
        FROM scheduled_retries AS r
        JOIN (SELECT delivery_id, max(number) AS number FROM incoming WHERE final GROUP BY delivery_id) AS f
            ON f.delivery_id = r.delivery_id
        WHERE r.attempt <= f.number)
    RETURNING delivery_id
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM advanced), (SELECT count(*) FROM dropped)`

	// sqlRecordAttemptsScheduling records a batch with retrying results;
	// the batch's final results are settled by sqlDropSettledRetries.
	sqlRecordAttemptsScheduling = sqlRecordAttemptsHead + `scheduled AS (
    INSERT INTO scheduled_retries (delivery_id, attempt, due_at, claimed_until, trace_parent)
    SELECT latest.delivery_id, latest.number + 1, latest.next_at, NULL::INT8, latest.trace_parent
    FROM latest JOIN advanced ON advanced.id = latest.delivery_id
    WHERE latest.next_at IS NOT NULL
    ORDER BY latest.delivery_id
    ON CONFLICT (delivery_id) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at, claimed_until = NULL,
        trace_parent = excluded.trace_parent
    RETURNING delivery_id
)
SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM advanced), (SELECT count(*) FROM scheduled)`

	// sqlDropSettledRetries removes each delivery's ($1) scheduled retry
	// for an attempt at or below its highest final result's number ($2).
	sqlDropSettledRetries = `DELETE FROM scheduled_retries
WHERE (delivery_id, attempt) IN (
    SELECT r.delivery_id, r.attempt
    FROM scheduled_retries AS r
    JOIN unnest($1::TEXT[], $2::INT8[]) AS f (delivery_id, number) ON f.delivery_id = r.delivery_id
    WHERE r.attempt <= f.number)`
)

// RecordAttempts stores the attempts and their consequences in one round
// trip and one (implicit, server-retried) transaction per batch, whatever
// its size: one statement, or two in one pgx batch when the batch holds
// both retrying and final results (see the statements above). The batch
// is validated first (rowcodec.CheckAttemptResults), so an invalid result
// (a retrying one without NextAttemptAt) writes nothing of it. An attempt
// whose (delivery, number) is already recorded, or repeated within the
// batch, is ignored with all its consequences when it is the same attempt
// (same StartedAt), and recorded as a repeat otherwise, in a second
// transaction that only such a batch pays for (see recordRepeat). A delivery takes the Status, number (as Attempts), status code
// and LastError (DeliveryError, or the attempt's Error) of its
// highest-numbered attempt recorded by this call, provided that number
// exceeds its recorded Attempts; UpdatedAt becomes that attempt's end
// (StartedAt + Duration) if that is later. A retrying result it advances
// to sets NextAttemptAt and schedules attempt Number+1 then, replacing the
// delivery's scheduled retry and dropping any lease on it. A final status
// (succeeded, dead, parked) clears NextAttemptAt, and removes the
// delivery's scheduled retry for that attempt or an earlier one. The
// outcome does not depend on the order of results within the batch (except
// which of two repeats comes first). Running a batch again changes
// nothing, so it is safe to retry after an ambiguous commit.
func (s *Store) RecordAttempts(ctx context.Context, results []store.AttemptResult) error {
	if len(results) == 0 {
		return nil
	}
	if err := rowcodec.CheckAttemptResults(results); err != nil {
		return fmt.Errorf("crdb: record attempts: %w", err)
	}
	type key struct {
		id string
		n  int
	}
	seen := make(map[key]bool, len(results))
	batch := make([]store.AttemptResult, 0, len(results))
	var twins []store.AttemptResult // a number repeated within the batch
	for _, r := range results {
		if k := (key{r.Attempt.DeliveryID, r.Attempt.Number}); !seen[k] {
			seen[k] = true
			batch = append(batch, r)
		} else {
			twins = append(twins, r)
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
		errs, statuses, dlvErrs    = make([]string, n), make([]string, n), make([]string, n)
		traces                     = make([]string, n)
		numbers, started, durs     = make([]int64, n), make([]int64, n), make([]int64, n)
		codes, ended               = make([]int64, n), make([]int64, n)
		bodies                     = make([][]byte, n)
		finals                     = make([]bool, n)
		next                       = make([]*int64, n)
		retrying                   bool
		// The highest final result of each delivery, for
		// sqlDropSettledRetries; batch is sorted, so a delivery's
		// results are adjacent and its last final one is the highest.
		finalIDs     []string
		finalNumbers []int64
	)
	for i := range batch {
		r := &batch[i]
		a := &r.Attempt
		ids[i], events[i], subs[i], tenants[i] = a.DeliveryID, a.EventID, a.SubscriptionID, a.Tenant
		errs[i], statuses[i], dlvErrs[i], traces[i] = a.Error, string(r.Status), r.DeliveryError, a.TraceParent
		numbers[i], started[i], durs[i] = int64(a.Number), rowcodec.Nanos(a.StartedAt), int64(a.Duration)
		codes[i], ended[i] = int64(a.StatusCode), rowcodec.Nanos(a.StartedAt.Add(a.Duration))
		bodies[i] = a.ResponseBody // nil is stored as NULL and read back as nil
		finals[i] = rowcodec.FinalStatus(r.Status)
		next[i] = rowcodec.NullNanos(rowcodec.NextAttemptAt(r))
		retrying = retrying || next[i] != nil
		if finals[i] {
			if k := len(finalIDs) - 1; k >= 0 && finalIDs[k] == a.DeliveryID {
				finalNumbers[k] = int64(a.Number)
			} else {
				finalIDs, finalNumbers = append(finalIDs, a.DeliveryID), append(finalNumbers, int64(a.Number))
			}
		}
	}
	args := []any{ids, numbers, events, subs, tenants, started, durs, codes, bodies, errs, statuses, finals, ended, dlvErrs, next, traces}
	var inserted int64
	err := s.run(ctx, "record attempts", func(ctx context.Context) error {
		var advanced, settled int64
		switch {
		case !retrying:
			return s.pool.QueryRow(ctx, sqlRecordAttempts, args...).Scan(&inserted, &advanced, &settled)
		case len(finalIDs) == 0:
			return s.pool.QueryRow(ctx, sqlRecordAttemptsScheduling, args...).Scan(&inserted, &advanced, &settled)
		}
		var b pgx.Batch
		b.Queue(sqlRecordAttemptsScheduling, args...)
		b.Queue(sqlDropSettledRetries, finalIDs, finalNumbers)
		br := s.pool.SendBatch(ctx, &b)
		if err := br.QueryRow().Scan(&inserted, &advanced, &settled); err != nil {
			_ = br.Close()
			return err
		}
		return br.Close()
	})
	if err != nil || (inserted == int64(n) && len(twins) == 0) {
		return err
	}
	// Some numbers were recorded already: written again, or made again.
	return s.inTx(ctx, "record repeated attempts", func(ctx context.Context, tx pgx.Tx) error {
		for _, rs := range [][]store.AttemptResult{batch, twins} {
			for i := range rs {
				if err := recordRepeat(ctx, tx, &rs[i]); err != nil {
					return fmt.Errorf("attempt %s #%d made again: %w", rs[i].Attempt.DeliveryID, rs[i].Attempt.Number, err)
				}
			}
		}
		return nil
	})
}

// The statements of recordRepeat.
const (
	sqlAttemptStartedSeen = `SELECT count(*) FROM attempts WHERE delivery_id = $1 AND started_at = $2`
	sqlLastAttemptNumber  = `SELECT coalesce(max(number), 0) FROM attempts WHERE delivery_id = $1`
	sqlInsertRepeat       = `INSERT INTO attempts (delivery_id, number, event_id, subscription_id, tenant, started_at,
    duration_ns, status_code, response_body, error, trace_parent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULLIF($11::TEXT, ''))`
	sqlRepeatSucceeded = `UPDATE deliveries SET status = $3, attempts = $2, last_status_code = $4, last_error = $5,
    next_attempt_at = NULL, updated_at = GREATEST(updated_at, $6)
WHERE id = $1 AND attempts < $2`
	sqlRepeatCounted = `UPDATE deliveries SET attempts = $2, updated_at = GREATEST(updated_at, $3)
WHERE id = $1 AND attempts < $2`
	sqlDropRetriesUpTo = `DELETE FROM scheduled_retries WHERE delivery_id = $1 AND attempt <= $2`
	sqlShiftRetry      = `UPDATE scheduled_retries SET attempt = $2 + 1 WHERE delivery_id = $1 AND attempt <= $2`
	sqlRetryScheduled  = `SELECT count(*) FROM scheduled_retries WHERE delivery_id = $1`
	// sqlRepeatOwnsRetrying gives a retrying delivery with nothing
	// scheduled the repeat's own consequence: its status, last result and
	// next due time (NULL for a final status).
	sqlRepeatOwnsRetrying = `UPDATE deliveries SET status = $3, last_status_code = $4, last_error = $5, next_attempt_at = $6
WHERE id = $1 AND attempts = $2 AND status = 'retrying'`
	sqlScheduleAfterRepeat = `INSERT INTO scheduled_retries (delivery_id, attempt, due_at, claimed_until, trace_parent)
VALUES ($1, $2 + 1, $3, NULL::INT8, NULLIF($4::TEXT, ''))
ON CONFLICT (delivery_id) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at, claimed_until = NULL,
    trace_parent = excluded.trace_parent`
)

// recordRepeat records r, unless an attempt of its delivery with its
// start time is recorded already (the same attempt, written again), as a
// repeat (see store.Store.RecordAttempts): under the delivery's next
// number; a repeat that succeeded makes the delivery succeeded, any other
// leaves its status and moves its scheduled retry past the new number —
// or, when the delivery is retrying with no retry scheduled (the one it
// had was released, and the repeat may be that release's attempt), takes
// the repeat's own consequence, so that a retrying delivery always has a
// next attempt coming. Only a batch with a number recorded before pays
// for it.
func recordRepeat(ctx context.Context, tx pgx.Tx, r *store.AttemptResult) error {
	a := &r.Attempt
	started := rowcodec.Nanos(a.StartedAt)
	var seen int64
	if err := tx.QueryRow(ctx, sqlAttemptStartedSeen, a.DeliveryID, started).Scan(&seen); err != nil {
		return err
	}
	if seen > 0 {
		return nil
	}
	var last int64
	if err := tx.QueryRow(ctx, sqlLastAttemptNumber, a.DeliveryID).Scan(&last); err != nil {
		return err
	}
	n := last + 1
	if _, err := tx.Exec(ctx, sqlInsertRepeat, a.DeliveryID, n, a.EventID, a.SubscriptionID, a.Tenant,
		started, int64(a.Duration), int64(a.StatusCode), a.ResponseBody, a.Error, a.TraceParent); err != nil {
		return err
	}
	end := rowcodec.Nanos(a.StartedAt.Add(a.Duration))
	if r.Status == store.DeliverySucceeded {
		if _, err := tx.Exec(ctx, sqlRepeatSucceeded, a.DeliveryID, n, string(r.Status), int64(a.StatusCode), rowcodec.DeliveryLastError(r), end); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sqlDropRetriesUpTo, a.DeliveryID, n)
		return err
	}
	if _, err := tx.Exec(ctx, sqlRepeatCounted, a.DeliveryID, n, end); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, sqlShiftRetry, a.DeliveryID, n); err != nil {
		return err
	}
	var scheduled int64
	if err := tx.QueryRow(ctx, sqlRetryScheduled, a.DeliveryID).Scan(&scheduled); err != nil || scheduled > 0 {
		return err
	}
	next := rowcodec.NullNanos(rowcodec.NextAttemptAt(r))
	tag, err := tx.Exec(ctx, sqlRepeatOwnsRetrying, a.DeliveryID, n, string(r.Status), int64(a.StatusCode), rowcodec.DeliveryLastError(r), next)
	if err != nil || tag.RowsAffected() == 0 || next == nil {
		return err
	}
	_, err = tx.Exec(ctx, sqlScheduleAfterRepeat, a.DeliveryID, n, *next, a.TraceParent)
	return err
}

const attemptColumns = `delivery_id, number, event_id, subscription_id, tenant, started_at,
    duration_ns, status_code, response_body, error, COALESCE(trace_parent, '')`

// ListAttempts returns up to f.Limit (default 100, at most 1000) attempts
// within f.Scope matching every set filter, newest first (StartedAt
// descending, then DeliveryID descending, then Number descending), and the
// token of the next page.
func (s *Store) ListAttempts(ctx context.Context, f store.AttemptFilter) ([]store.Attempt, string, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(f.Scope)
	if err != nil {
		return nil, "", fmt.Errorf("crdb: list attempts: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + attemptColumns + ` FROM attempts WHERE true`
	var a args
	if restricted {
		q += ` AND tenant = ` + a.add(tenant)
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
	err = s.run(ctx, "list attempts", func(ctx context.Context) error {
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
				&dur, &code, &at.ResponseBody, &at.Error, &at.TraceParent); err != nil {
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
