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

// Purge deletes, in one transaction, up to limit rows in total, in this
// order:
//
//  1. attempts of terminal (succeeded or dead) deliveries created before
//     before, and attempts older than before whose delivery is gone;
//  2. terminal deliveries created before before that have no attempts
//     left;
//  3. events received before before that no delivery refers to any more
//     (so events of pending, retrying or parked deliveries stay);
//  4. idempotency keys created before before.
//
// It returns how many rows it deleted; calling it until it returns 0
// removes everything eligible. Pending, retrying and parked deliveries,
// their attempts and their events are never removed.
func (s *Store) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	b := rowcodec.Nanos(before)
	steps := []struct {
		name string
		sql  string
		args []any
	}{
		{"attempts", `DELETE FROM attempts WHERE (delivery_id, number) IN (
    SELECT a.delivery_id, a.number FROM attempts a
    LEFT JOIN deliveries d ON d.id = a.delivery_id
    WHERE (d.id IS NULL AND a.started_at < ?)
       OR (d.status IN (?, ?) AND d.created_at < ?)
    LIMIT ?)`, []any{b, string(store.DeliverySucceeded), string(store.DeliveryDead), b}},
		{"deliveries", `DELETE FROM deliveries WHERE id IN (
    SELECT d.id FROM deliveries d
    WHERE d.status IN (?, ?) AND d.created_at < ?
      AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = d.id)
    LIMIT ?)`, []any{string(store.DeliverySucceeded), string(store.DeliveryDead), b}},
		{"events", `DELETE FROM events WHERE id IN (
    SELECT e.id FROM events e
    WHERE e.received_at < ?
      AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)
    LIMIT ?)`, []any{b}},
		{"idempotency keys", `DELETE FROM idempotency_keys WHERE (tenant, idempotency_key) IN (
    SELECT tenant, idempotency_key FROM idempotency_keys WHERE created_at < ? LIMIT ?)`, []any{b}},
	}
	total := 0
	err := s.inWriteTx(ctx, "purge", func(ctx context.Context, tx *sql.Tx) error {
		for _, st := range steps {
			left := limit - total
			if left <= 0 {
				return nil
			}
			res, err := tx.ExecContext(ctx, st.sql, append(st.args, left)...)
			if err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
			total += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if total > 0 {
		s.logger.DebugContext(ctx, "purged", slog.Int("rows", total), slog.Time("before", before))
	}
	return total, nil
}
