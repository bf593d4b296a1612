package crdb

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

const deliveryColumns = `id, event_id, subscription_id, tenant, event_type, status, attempts,
    next_attempt_at, last_status_code, last_error, created_at, updated_at`

// deliveryColumnsOf is deliveryColumns qualified with a table alias.
func deliveryColumnsOf(alias string) string {
	return alias + `.id, ` + alias + `.event_id, ` + alias + `.subscription_id, ` + alias + `.tenant, ` +
		alias + `.event_type, ` + alias + `.status, ` + alias + `.attempts, ` + alias + `.next_attempt_at, ` +
		alias + `.last_status_code, ` + alias + `.last_error, ` + alias + `.created_at, ` + alias + `.updated_at`
}

// sqlInsertDeliveries inserts a batch of deliveries in one statement from
// parallel arrays; a delivery whose id exists is left as is.
const sqlInsertDeliveries = `INSERT INTO deliveries (` + deliveryColumns + `)
SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::INT8[],
    $8::INT8[], $9::INT8[], $10::TEXT[], $11::INT8[], $12::INT8[])
ON CONFLICT (id) DO NOTHING`

// sqlInsertDeliveriesScheduling is sqlInsertDeliveries for a batch in
// which some deliveries have a due time (next_attempt_at): each of those
// the statement inserts (RETURNING yields only those, not the ones that
// existed) also gets a scheduled retry of its next attempt, due then. It
// is used only for such batches, so fanout's inserts stay as they are.
const sqlInsertDeliveriesScheduling = `WITH inserted AS (
    INSERT INTO deliveries (` + deliveryColumns + `)
    SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::INT8[],
        $8::INT8[], $9::INT8[], $10::TEXT[], $11::INT8[], $12::INT8[])
    ON CONFLICT (id) DO NOTHING
    RETURNING id, attempts, next_attempt_at
)
INSERT INTO scheduled_retries (delivery_id, attempt, due_at, claimed_until, trace_parent)
SELECT id, attempts + 1, next_attempt_at, NULL::INT8, NULL::TEXT FROM inserted
WHERE next_attempt_at IS NOT NULL
ORDER BY id
ON CONFLICT (delivery_id) DO UPDATE SET attempt = excluded.attempt, due_at = excluded.due_at, claimed_until = NULL,
    trace_parent = excluded.trace_parent`

// deliveryScan receives one deliveryColumns row.
type deliveryScan struct {
	d                    store.Delivery
	status               string
	attempts, code       int64
	next                 *int64
	createdAt, updatedAt int64
}

func (r *deliveryScan) dest() []any {
	return []any{&r.d.ID, &r.d.EventID, &r.d.SubscriptionID, &r.d.Tenant, &r.d.EventType, &r.status,
		&r.attempts, &r.next, &r.code, &r.d.LastError, &r.createdAt, &r.updatedAt}
}

func (r *deliveryScan) delivery() store.Delivery {
	d := r.d
	d.Status = store.DeliveryStatus(r.status)
	d.Attempts = int(r.attempts)
	d.LastStatusCode = int(r.code)
	d.NextAttemptAt = rowcodec.FromNullNanos(r.next)
	d.CreatedAt = rowcodec.FromNanos(r.createdAt)
	d.UpdatedAt = rowcodec.FromNanos(r.updatedAt)
	return d
}

// deliveryArgs validates ds and returns sqlInsertDeliveries' arguments:
// one array per column, duplicates dropped, in id order, and whether a
// delivery has a due time (so that sqlInsertDeliveriesScheduling is
// needed).
func deliveryArgs(ds []store.Delivery) (args []any, due bool, err error) {
	uniq, err := uniqueByID(ds, func(d *store.Delivery) string { return d.ID }, "delivery")
	if err != nil {
		return nil, false, err
	}
	n := len(uniq)
	var (
		ids, events, subs, tenants = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		types, statuses, lastErrs  = make([]string, n), make([]string, n), make([]string, n)
		attempts, codes            = make([]int64, n), make([]int64, n)
		next                       = make([]*int64, n)
		created, updated           = make([]int64, n), make([]int64, n)
	)
	for i, d := range uniq {
		status, upd := rowcodec.DeliveryDefaults(&d)
		ids[i], events[i], subs[i], tenants[i] = d.ID, d.EventID, d.SubscriptionID, d.Tenant
		types[i], statuses[i], lastErrs[i] = d.EventType, string(status), d.LastError
		attempts[i], codes[i] = int64(d.Attempts), int64(d.LastStatusCode)
		next[i] = rowcodec.NullNanos(d.NextAttemptAt)
		due = due || next[i] != nil
		created[i], updated[i] = rowcodec.Nanos(d.CreatedAt), rowcodec.Nanos(upd)
	}
	return []any{ids, events, subs, tenants, types, statuses, attempts, next, codes, lastErrs, created, updated}, due, nil
}

// GetDelivery returns the delivery id within scope; store.ErrNotFound if
// it does not exist or lies outside scope.
func (s *Store) GetDelivery(ctx context.Context, scope store.Scope, id string) (*store.Delivery, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return nil, fmt.Errorf("crdb: get delivery %s: %w", id, err)
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE id = $1`
	a := []any{id}
	if restricted {
		q += ` AND tenant = $2`
		a = append(a, tenant)
	}
	var r deliveryScan
	err = s.run(ctx, "get delivery "+id, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, a...).Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("crdb: get delivery %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	d := r.delivery()
	return &d, nil
}

// ListDeliveries returns up to f.Limit (default 100, at most 1000)
// deliveries within f.Scope matching every set filter, newest first
// (CreatedAt descending, then ID descending), and the token of the next
// page.
func (s *Store) ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(f.Scope)
	if err != nil {
		return nil, "", fmt.Errorf("crdb: list deliveries: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE true`
	var a args
	if restricted {
		q += ` AND tenant = ` + a.add(tenant)
	}
	if f.SubscriptionID != "" {
		q += ` AND subscription_id = ` + a.add(f.SubscriptionID)
	}
	if f.EventID != "" {
		q += ` AND event_id = ` + a.add(f.EventID)
	}
	if f.Status != "" {
		q += ` AND status = ` + a.add(string(f.Status))
	}
	if !f.CreatedAfter.IsZero() {
		q += ` AND created_at >= ` + a.add(f.CreatedAfter.UnixNano())
	}
	if !f.CreatedBefore.IsZero() {
		q += ` AND created_at < ` + a.add(f.CreatedBefore.UnixNano())
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 2)
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list deliveries: %w", err)
		}
		c, err := rowcodec.TokenInt64(parts[0])
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list deliveries: %w", err)
		}
		pc, pid := a.add(c), a.add(parts[1])
		q += ` AND (created_at < ` + pc + ` OR (created_at = ` + pc + ` AND id < ` + pid + `))`
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ` + a.add(limit+1)
	var out []store.Delivery
	err = s.run(ctx, "list deliveries", func(ctx context.Context) error {
		var err error
		out, err = s.queryDeliveries(ctx, q, a...)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = rowcodec.EncodeToken(strconv.FormatInt(rowcodec.Nanos(last.CreatedAt), 10), last.ID)
	}
	return out, next, nil
}

func (s *Store) queryDeliveries(ctx context.Context, q string, a ...any) ([]store.Delivery, error) {
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Delivery
	for rows.Next() {
		var r deliveryScan
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, err
		}
		out = append(out, r.delivery())
	}
	return out, rows.Err()
}
