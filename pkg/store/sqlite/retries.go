package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// The retry path's statements (prepared once, see writerStmts).
const (
	// sqlScheduleUpdate moves a delivery to the retry's status and due
	// time unless the retry's attempt is already recorded.
	sqlScheduleUpdate = `UPDATE deliveries SET status = ?, next_attempt_at = ?,
    updated_at = CASE WHEN updated_at > ? THEN updated_at ELSE ? END WHERE id = ? AND attempts < ?`
	// sqlScheduleInsert upserts a delivery's scheduled retry with the
	// traceparent of what scheduled it (NULL for ""), dropping any lease on
	// it.
	sqlScheduleInsert = `INSERT INTO scheduled_retries (delivery_id, attempt, due_at, claimed_until, trace_parent)
VALUES (?, ?, ?, NULL, NULLIF(?, ''))
ON CONFLICT (delivery_id) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at, claimed_until = NULL,
    trace_parent = excluded.trace_parent`
	// sqlClaimRetry leases a delivery's scheduled retry until ?.
	sqlClaimRetry = `UPDATE scheduled_retries SET claimed_until = ? WHERE delivery_id = ?`
	// sqlCompleteRetry deletes a scheduled retry if it is still the one
	// released (same attempt and due time).
	sqlCompleteRetry = `DELETE FROM scheduled_retries WHERE delivery_id = ? AND attempt = ? AND due_at = ?`
)

// ScheduleRetries upserts one scheduled retry per delivery (replacing an
// earlier one and dropping any lease on it) and sets each delivery to
// retrying (pending when the retry is of attempt 1) with NextAttemptAt =
// DueAt, in one transaction. A retry for a delivery that does not exist,
// or whose recorded Attempts is already at or above the retry's Attempt
// (stale), is skipped.
func (s *Store) ScheduleRetries(ctx context.Context, rs []store.ScheduledRetry) error {
	if len(rs) == 0 {
		return nil
	}
	return s.inWriteTx(ctx, "schedule retries", func(ctx context.Context, tx *sql.Tx) error {
		upd := tx.StmtContext(ctx, s.stmts.scheduleUpdate)
		ins := tx.StmtContext(ctx, s.stmts.scheduleInsert)
		for _, r := range rs {
			due := rowcodec.Nanos(r.DueAt)
			status := store.DeliveryRetrying
			if r.Attempt == 1 {
				status = store.DeliveryPending // a first attempt put off
			}
			res, err := upd.ExecContext(ctx, string(status), due, due, due, r.DeliveryID, r.Attempt)
			if err != nil {
				return fmt.Errorf("delivery %s: %w", r.DeliveryID, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return fmt.Errorf("delivery %s: %w", r.DeliveryID, err)
			} else if n == 0 {
				s.logger.InfoContext(ctx, "retry for an unknown delivery or an attempt already made skipped",
					slog.String("delivery_id", r.DeliveryID), slog.Int("attempt", r.Attempt))
				continue
			}
			if _, err := ins.ExecContext(ctx, r.DeliveryID, r.Attempt, due, r.TraceParent); err != nil {
				return fmt.Errorf("retry of %s: %w", r.DeliveryID, err)
			}
		}
		return nil
	})
}

// ClaimDueRetries leases, in one transaction, up to limit retries with
// DueAt <= now whose lease is absent or expired (claimed_until < now),
// earliest due first, setting their lease to now+lease. Because every
// write goes through the single writer connection, two claimers never
// obtain the same retry while its lease is live. Each claimed retry comes
// with its delivery and event; a retry whose delivery or event is no
// longer stored is never returned.
func (s *Store) ClaimDueRetries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]store.DueRetry, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.DueRetry
	err := s.inWriteTx(ctx, "claim due retries", func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT r.attempt, r.due_at, COALESCE(r.trace_parent, ''), `+deliveryColumnsOf("d")+`,
    e.id, e.tenant, e.event_type, e.payload, e.labels, e.occurred_at, e.received_at
FROM scheduled_retries r
JOIN deliveries d ON d.id = r.delivery_id
JOIN events e ON e.id = d.event_id
WHERE r.due_at <= ? AND (r.claimed_until IS NULL OR r.claimed_until < ?)
ORDER BY r.due_at, r.delivery_id
LIMIT ?`, rowcodec.Nanos(now), rowcodec.Nanos(now), limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				dr                     store.DueRetry
				attempt, due           int64
				ds                     deliveryScan
				labels                 string
				occurredAt, receivedAt int64
			)
			dest := append([]any{&attempt, &due, &dr.TraceParent}, ds.dest()...)
			dest = append(dest, &dr.Event.ID, &dr.Event.Tenant, &dr.Event.Type, &dr.Event.Payload, &labels, &occurredAt, &receivedAt)
			if err := rows.Scan(dest...); err != nil {
				rows.Close()
				return err
			}
			if err := decodeEventExtras(&dr.Event, labels, occurredAt, receivedAt); err != nil {
				rows.Close()
				return err
			}
			dr.Delivery = ds.delivery()
			dr.DeliveryID = dr.Delivery.ID
			dr.Attempt = int(attempt)
			dr.DueAt = rowcodec.FromNanos(due)
			out = append(out, dr)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		claim := tx.StmtContext(ctx, s.stmts.claimRetry)
		until := rowcodec.Nanos(now.Add(lease))
		for _, dr := range out {
			if _, err := claim.ExecContext(ctx, until, dr.DeliveryID); err != nil {
				return fmt.Errorf("claim %s: %w", dr.DeliveryID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CompleteRetries deletes each retry whose delivery, attempt and due time
// all match; a retry rescheduled since (a different Attempt or DueAt) is
// kept.
func (s *Store) CompleteRetries(ctx context.Context, rs []store.ScheduledRetry) error {
	if len(rs) == 0 {
		return nil
	}
	return s.inWriteTx(ctx, "complete retries", func(ctx context.Context, tx *sql.Tx) error {
		del := tx.StmtContext(ctx, s.stmts.completeRetry)
		for _, r := range rs {
			if _, err := del.ExecContext(ctx, r.DeliveryID, r.Attempt, rowcodec.Nanos(r.DueAt)); err != nil {
				return fmt.Errorf("retry of %s: %w", r.DeliveryID, err)
			}
		}
		return nil
	})
}

// MarkDead sets the deliveries to dead with LastError = reason and
// UpdatedAt = now, clears NextAttemptAt and removes their scheduled
// retries, in one transaction. Unknown IDs are ignored.
func (s *Store) MarkDead(ctx context.Context, deliveryIDs []string, reason string, now time.Time) error {
	return s.setFinal(ctx, "mark dead", deliveryIDs, store.DeliveryDead, &reason, now)
}

// ParkDeliveries sets the deliveries to parked with UpdatedAt = now,
// clears NextAttemptAt and removes their scheduled retries, in one
// transaction; RedriveParked brings them back. Unknown IDs are ignored.
func (s *Store) ParkDeliveries(ctx context.Context, deliveryIDs []string, now time.Time) error {
	return s.setFinal(ctx, "park deliveries", deliveryIDs, store.DeliveryParked, nil, now)
}

func (s *Store) setFinal(ctx context.Context, op string, ids []string, status store.DeliveryStatus, reason *string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return s.inWriteTx(ctx, op, func(ctx context.Context, tx *sql.Tx) error {
		var reasonArg sql.NullString
		if reason != nil {
			reasonArg = sql.NullString{String: *reason, Valid: true}
		}
		upd, err := tx.PrepareContext(ctx, `UPDATE deliveries SET status = ?, next_attempt_at = NULL,
    last_error = COALESCE(?, last_error), updated_at = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer upd.Close()
		del, err := tx.PrepareContext(ctx, `DELETE FROM scheduled_retries WHERE delivery_id = ?`)
		if err != nil {
			return err
		}
		defer del.Close()
		for _, id := range ids {
			if _, err := upd.ExecContext(ctx, string(status), reasonArg, rowcodec.Nanos(now), id); err != nil {
				return fmt.Errorf("delivery %s: %w", id, err)
			}
			if _, err := del.ExecContext(ctx, id); err != nil {
				return fmt.Errorf("retry of %s: %w", id, err)
			}
		}
		return nil
	})
}

// RedriveParked moves, in one transaction, up to limit parked deliveries
// whose subscription exists and is enabled (oldest first) to retrying,
// with a scheduled retry of attempt Attempts+1 due now, and returns how
// many it moved. Repeated calls move the rest.
func (s *Store) RedriveParked(ctx context.Context, now time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var moved int
	err := s.inWriteTx(ctx, "redrive parked", func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT d.id, d.attempts FROM deliveries d
JOIN subscriptions s ON s.id = d.subscription_id
WHERE d.status = ? AND s.state = ?
ORDER BY d.created_at, d.id
LIMIT ?`, string(store.DeliveryParked), string(store.SubscriptionEnabled), limit)
		if err != nil {
			return err
		}
		type item struct {
			id       string
			attempts int64
		}
		var items []item
		for rows.Next() {
			var it item
			if err := rows.Scan(&it.id, &it.attempts); err != nil {
				rows.Close()
				return err
			}
			items = append(items, it)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(items) == 0 {
			return nil
		}
		upd, err := tx.PrepareContext(ctx, `UPDATE deliveries SET status = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer upd.Close()
		ins := tx.StmtContext(ctx, s.stmts.scheduleInsert)
		n := rowcodec.Nanos(now)
		for _, it := range items {
			if _, err := upd.ExecContext(ctx, string(store.DeliveryRetrying), n, n, it.id); err != nil {
				return fmt.Errorf("delivery %s: %w", it.id, err)
			}
			if _, err := ins.ExecContext(ctx, it.id, it.attempts+1, n, ""); err != nil { // no attempt scheduled it
				return fmt.Errorf("retry of %s: %w", it.id, err)
			}
		}
		moved = len(items)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}
