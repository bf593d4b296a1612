package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// sqlInsertAttempt inserts an attempt; its trace_parent is NULL when the
// attempt was not traced ("").
const sqlInsertAttempt = `INSERT INTO attempts (delivery_id, number, event_id, subscription_id, tenant,
    started_at, duration_ns, status_code, response_body, error, trace_parent)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, '')) ON CONFLICT (delivery_id, number) DO NOTHING`

// sqlAdvanceDelivery moves a delivery to the outcome of attempt number ?
// only if no attempt at or above that number was recorded before. The
// first parameter says whether NextAttemptAt is cleared (a final status);
// otherwise the second, when not NULL (a retrying result's due time),
// becomes NextAttemptAt.
const sqlAdvanceDelivery = `UPDATE deliveries SET
    next_attempt_at = CASE WHEN ? THEN NULL ELSE COALESCE(?, next_attempt_at) END,
    status = ?, attempts = ?, last_status_code = ?, last_error = ?,
    updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
WHERE id = ? AND attempts < ?`

// sqlDropRetriesUpTo deletes a delivery's scheduled retry for an attempt
// that is already made, once the delivery is final.
const sqlDropRetriesUpTo = `DELETE FROM scheduled_retries WHERE delivery_id = ? AND attempt <= ?`

// RecordAttempts stores the attempts and their consequences, in one
// transaction with prepared statements. The batch is validated first
// (rowcodec.CheckAttemptResults), so an invalid result (a retrying one
// without NextAttemptAt) writes nothing of it. An attempt whose (delivery,
// number) is already recorded is ignored with all its consequences when it
// is the same attempt (same StartedAt), and recorded as a repeat otherwise
// (see recordRepeat and store.Store.RecordAttempts). A
// delivery takes the attempt's Status, number (as Attempts), status code
// and LastError (DeliveryError, or the attempt's Error) only when the
// number exceeds its recorded Attempts; UpdatedAt becomes the attempt's
// end (StartedAt + Duration) if that is later. A retrying result it
// advances to sets NextAttemptAt and schedules attempt Number+1 then,
// replacing the delivery's scheduled retry and dropping any lease on it. A
// final status (succeeded, dead, parked) clears NextAttemptAt and removes
// the delivery's scheduled retry for that attempt or an earlier one. The
// outcome does not depend on the order of results within the batch.
func (s *Store) RecordAttempts(ctx context.Context, results []store.AttemptResult) error {
	if len(results) == 0 {
		return nil
	}
	if err := rowcodec.CheckAttemptResults(results); err != nil {
		return fmt.Errorf("sqlite: record attempts: %w", err)
	}
	return s.inWriteTx(ctx, "record attempts", func(ctx context.Context, tx *sql.Tx) error {
		insert := tx.StmtContext(ctx, s.stmts.insertAttempt)
		advance := tx.StmtContext(ctx, s.stmts.advanceDelivery)
		var drop, schedule *sql.Stmt // bound when first needed
		for i := range results {
			r := &results[i]
			a := &r.Attempt
			res, err := insert.ExecContext(ctx, a.DeliveryID, a.Number, a.EventID, a.SubscriptionID, a.Tenant,
				rowcodec.Nanos(a.StartedAt), int64(a.Duration), a.StatusCode, a.ResponseBody, a.Error, a.TraceParent)
			if err != nil {
				return fmt.Errorf("attempt %s #%d: %w", a.DeliveryID, a.Number, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("attempt %s #%d: %w", a.DeliveryID, a.Number, err)
			} else if n == 0 {
				if err := recordRepeat(ctx, tx, r); err != nil {
					return fmt.Errorf("attempt %s #%d made again: %w", a.DeliveryID, a.Number, err)
				}
				continue
			}
			final := rowcodec.FinalStatus(r.Status)
			next := nullNanos(rowcodec.NextAttemptAt(r))
			end := rowcodec.Nanos(a.StartedAt.Add(a.Duration))
			res, err = advance.ExecContext(ctx, final, next, string(r.Status), a.Number, a.StatusCode,
				rowcodec.DeliveryLastError(r), end, end, a.DeliveryID, a.Number)
			if err != nil {
				return fmt.Errorf("advance delivery %s: %w", a.DeliveryID, err)
			}
			switch {
			case final:
				if drop == nil {
					drop = tx.StmtContext(ctx, s.stmts.dropRetries)
				}
				if _, err := drop.ExecContext(ctx, a.DeliveryID, a.Number); err != nil {
					return fmt.Errorf("drop retry of %s: %w", a.DeliveryID, err)
				}
			case next.Valid:
				if n, err := res.RowsAffected(); err != nil {
					return fmt.Errorf("advance delivery %s: %w", a.DeliveryID, err)
				} else if n == 0 {
					continue // a later attempt is recorded: its schedule stands
				}
				if schedule == nil {
					schedule = tx.StmtContext(ctx, s.stmts.scheduleInsert)
				}
				if _, err := schedule.ExecContext(ctx, a.DeliveryID, a.Number+1, next.Int64, a.TraceParent); err != nil {
					return fmt.Errorf("schedule attempt %d of %s: %w", a.Number+1, a.DeliveryID, err)
				}
			}
		}
		return nil
	})
}

// recordRepeat records r, whose attempt number is recorded already, when
// it is another request (see store.Store.RecordAttempts): under the
// delivery's next number, as history; a repeat that succeeded makes the
// delivery succeeded, any other leaves its status and moves its scheduled
// retry past the new number — or, when the delivery is retrying with no
// retry scheduled (the one it had was released, and the repeat may be
// that release's attempt), takes the repeat's own consequence, so that a
// retrying delivery always has a next attempt coming. The same attempt
// written again (same start time, under any number) is ignored.
func recordRepeat(ctx context.Context, tx *sql.Tx, r *store.AttemptResult) error {
	a := &r.Attempt
	started := rowcodec.Nanos(a.StartedAt)
	var dup int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM attempts WHERE delivery_id = ? AND started_at = ?`, a.DeliveryID, started).Scan(&dup); err != nil {
		return err
	}
	if dup > 0 {
		return nil // this very attempt, recorded already
	}
	var last int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(number), 0) FROM attempts WHERE delivery_id = ?`, a.DeliveryID).Scan(&last); err != nil {
		return err
	}
	n := last + 1
	if _, err := tx.ExecContext(ctx, sqlInsertAttempt, a.DeliveryID, n, a.EventID, a.SubscriptionID, a.Tenant,
		started, int64(a.Duration), a.StatusCode, a.ResponseBody, a.Error, a.TraceParent); err != nil {
		return err
	}
	end := rowcodec.Nanos(a.StartedAt.Add(a.Duration))
	if r.Status == store.DeliverySucceeded {
		if _, err := tx.ExecContext(ctx, sqlAdvanceDelivery, true, nil, string(r.Status), n, a.StatusCode,
			rowcodec.DeliveryLastError(r), end, end, a.DeliveryID, n); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, sqlDropRetriesUpTo, a.DeliveryID, n)
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET attempts = ?,
    updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END
WHERE id = ? AND attempts < ?`, n, end, end, a.DeliveryID, n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE scheduled_retries SET attempt = ? WHERE delivery_id = ? AND attempt <= ?`, n+1, a.DeliveryID, n); err != nil {
		return err
	}
	var scheduled int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM scheduled_retries WHERE delivery_id = ?`, a.DeliveryID).Scan(&scheduled); err != nil || scheduled > 0 {
		return err
	}
	next := rowcodec.NullNanos(rowcodec.NextAttemptAt(r))
	res, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = ?, last_status_code = ?, last_error = ?, next_attempt_at = ?
WHERE id = ? AND attempts = ? AND status = 'retrying'`, string(r.Status), a.StatusCode, rowcodec.DeliveryLastError(r), next, a.DeliveryID, n)
	if err != nil {
		return err
	}
	if owned, err := res.RowsAffected(); err != nil || owned == 0 || next == nil {
		return err
	}
	_, err = tx.ExecContext(ctx, sqlScheduleInsert, a.DeliveryID, n+1, *next, a.TraceParent)
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
		return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + attemptColumns + ` FROM attempts WHERE 1 = 1`
	var args []any
	add := func(cond string, v ...any) {
		q += ` AND ` + cond
		args = append(args, v...)
	}
	if restricted {
		add(`tenant = ?`, tenant)
	}
	if f.DeliveryID != "" {
		add(`delivery_id = ?`, f.DeliveryID)
	}
	if f.SubscriptionID != "" {
		add(`subscription_id = ?`, f.SubscriptionID)
	}
	if f.EventID != "" {
		add(`event_id = ?`, f.EventID)
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 3)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
		}
		started, err := rowcodec.TokenInt64(parts[0])
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
		}
		num, err := rowcodec.TokenInt64(parts[1])
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
		}
		add(`(started_at < ? OR (started_at = ? AND (delivery_id < ? OR (delivery_id = ? AND number < ?))))`,
			started, started, parts[2], parts[2], num)
	}
	q += ` ORDER BY started_at DESC, delivery_id DESC, number DESC LIMIT ?`
	args = append(args, limit+1)

	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
	}
	defer rows.Close()
	var out []store.Attempt
	for rows.Next() {
		var (
			a                 store.Attempt
			number, code, dur int64
			started           int64
		)
		if err := rows.Scan(&a.DeliveryID, &number, &a.EventID, &a.SubscriptionID, &a.Tenant, &started,
			&dur, &code, &a.ResponseBody, &a.Error, &a.TraceParent); err != nil {
			return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
		}
		a.Number = int(number)
		a.StatusCode = int(code)
		a.Duration = time.Duration(dur)
		a.StartedAt = rowcodec.FromNanos(started)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list attempts: %w", err)
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = rowcodec.EncodeToken(strconv.FormatInt(rowcodec.Nanos(last.StartedAt), 10), strconv.Itoa(last.Number), last.DeliveryID)
	}
	return out, next, nil
}
