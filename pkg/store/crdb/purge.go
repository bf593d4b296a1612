package crdb

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// purgeSteps are Purge's deletes, in order. Each takes the cutoff as $1
// and the rows left to delete as its last parameter; a step sees what the
// earlier ones deleted (they run in one transaction, one after another),
// which is what lets one call delete a delivery whose attempts it has just
// deleted.
//
// Each step picks its victims in a MATERIALIZED CTE, so that the LIMIT
// subquery runs exactly once (PostgreSQL could otherwise re-run it for
// every row of a nested loop).
var purgeSteps = []struct {
	name string
	sql  string
	args []any // between the cutoff and the limit
}{
	{"attempts", `WITH victims AS MATERIALIZED (
    SELECT a.delivery_id, a.number
    FROM attempts AS a LEFT JOIN deliveries AS d ON d.id = a.delivery_id
    WHERE (d.id IS NULL AND a.started_at < $1)
       OR (d.status IN ($2, $3) AND d.created_at < $1)
    LIMIT $4
)
DELETE FROM attempts WHERE (delivery_id, number) IN (SELECT delivery_id, number FROM victims)`,
		[]any{string(store.DeliverySucceeded), string(store.DeliveryDead)}},
	{"deliveries", `WITH victims AS MATERIALIZED (
    SELECT d.id
    FROM deliveries AS d
    WHERE d.status IN ($2, $3) AND d.created_at < $1
        AND NOT EXISTS (SELECT 1 FROM attempts AS a WHERE a.delivery_id = d.id)
    LIMIT $4
)
DELETE FROM deliveries WHERE id IN (SELECT id FROM victims)`,
		[]any{string(store.DeliverySucceeded), string(store.DeliveryDead)}},
	{"events", `WITH victims AS MATERIALIZED (
    SELECT e.id
    FROM events AS e
    WHERE e.received_at < $1
        AND NOT EXISTS (SELECT 1 FROM deliveries AS d WHERE d.event_id = e.id)
    LIMIT $2
)
DELETE FROM events WHERE id IN (SELECT id FROM victims)`, nil},
	{"idempotency keys", `WITH victims AS MATERIALIZED (
    SELECT k.tenant, k.idempotency_key FROM idempotency_keys AS k WHERE k.created_at < $1 LIMIT $2
)
DELETE FROM idempotency_keys WHERE (tenant, idempotency_key) IN (SELECT tenant, idempotency_key FROM victims)`, nil},
}

// Purge deletes, in one transaction (crdbpgxv5.ExecuteTx), up to limit
// rows in total, in this order, exactly as the SQLite store does:
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
// their attempts and their events are never removed. A bounded limit keeps
// each transaction small, as CockroachDB wants.
func (s *Store) Purge(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	b := rowcodec.Nanos(before)
	total := 0
	err := s.inTx(ctx, "purge", func(ctx context.Context, tx pgx.Tx) error {
		total = 0 // the transaction may run more than once
		for _, st := range purgeSteps {
			left := limit - total
			if left <= 0 {
				return nil
			}
			a := append(append([]any{b}, st.args...), left)
			tag, err := tx.Exec(ctx, st.sql, a...)
			if err != nil {
				return fmt.Errorf("%s: %w", st.name, err)
			}
			total += int(tag.RowsAffected())
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
