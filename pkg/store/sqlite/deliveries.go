package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"

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

const sqlInsertDelivery = `INSERT INTO deliveries (` + deliveryColumns + `)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`

// deliveryScan receives one deliveryColumns row.
type deliveryScan struct {
	d                    store.Delivery
	status               string
	attempts, code       int64
	next                 sql.NullInt64
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
	d.NextAttemptAt = fromNullNanos(r.next)
	d.CreatedAt = rowcodec.FromNanos(r.createdAt)
	d.UpdatedAt = rowcodec.FromNanos(r.updatedAt)
	return d
}

// checkDeliveryIDs reports a delivery without an id.
func checkDeliveryIDs(ds []store.Delivery) error {
	for _, d := range ds {
		if d.ID == "" {
			return errors.New("empty delivery id")
		}
	}
	return nil
}

// insertDeliveries inserts ds in tx. A delivery it inserts (not one that
// exists) with a non-zero NextAttemptAt also gets a scheduled retry of its
// next attempt (Attempts+1: attempt 1 for a new delivery) due then.
func (s *Store) insertDeliveries(ctx context.Context, tx *sql.Tx, ds []store.Delivery) error {
	st := tx.StmtContext(ctx, s.stmts.insertDelivery)
	var schedule *sql.Stmt // bound when first needed
	for i := range ds {
		d := &ds[i]
		status, updated := rowcodec.DeliveryDefaults(d)
		next := nullNanos(d.NextAttemptAt)
		res, err := st.ExecContext(ctx, d.ID, d.EventID, d.SubscriptionID, d.Tenant, d.EventType,
			string(status), d.Attempts, next, d.LastStatusCode, d.LastError,
			rowcodec.Nanos(d.CreatedAt), rowcodec.Nanos(updated))
		if err != nil {
			return fmt.Errorf("delivery %s: %w", d.ID, err)
		}
		if !next.Valid {
			continue
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delivery %s: %w", d.ID, err)
		} else if n == 0 {
			continue // it existed: its schedule is its own
		}
		if schedule == nil {
			schedule = tx.StmtContext(ctx, s.stmts.scheduleInsert)
		}
		if _, err := schedule.ExecContext(ctx, d.ID, d.Attempts+1, next.Int64, ""); err != nil { // no attempt scheduled it
			return fmt.Errorf("schedule attempt %d of %s: %w", d.Attempts+1, d.ID, err)
		}
	}
	return nil
}

// GetDelivery returns the delivery id within scope; store.ErrNotFound if
// it does not exist or lies outside scope.
func (s *Store) GetDelivery(ctx context.Context, scope store.Scope, id string) (*store.Delivery, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get delivery %s: %w", id, err)
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE id = ?`
	args := []any{id}
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	var r deliveryScan
	err = s.read.QueryRowContext(ctx, q, args...).Scan(r.dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get delivery %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get delivery %s: %w", id, err)
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
		return nil, "", fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + deliveryColumns + ` FROM deliveries WHERE 1 = 1`
	var args []any
	add := func(cond string, v ...any) {
		q += ` AND ` + cond
		args = append(args, v...)
	}
	if restricted {
		add(`tenant = ?`, tenant)
	}
	if f.SubscriptionID != "" {
		add(`subscription_id = ?`, f.SubscriptionID)
	}
	if f.EventID != "" {
		add(`event_id = ?`, f.EventID)
	}
	if f.Status != "" {
		add(`status = ?`, string(f.Status))
	}
	if !f.CreatedAfter.IsZero() {
		add(`created_at >= ?`, f.CreatedAfter.UnixNano())
	}
	if !f.CreatedBefore.IsZero() {
		add(`created_at < ?`, f.CreatedBefore.UnixNano())
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 2)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list deliveries: %w", err)
		}
		c, err := rowcodec.TokenInt64(parts[0])
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list deliveries: %w", err)
		}
		add(`(created_at < ? OR (created_at = ? AND id < ?))`, c, c, parts[1])
	}
	q += ` ORDER BY created_at DESC, id DESC LIMIT ?`
	args = append(args, limit+1)
	out, err := s.queryDeliveries(ctx, s.read, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list deliveries: %w", err)
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = rowcodec.EncodeToken(strconv.FormatInt(rowcodec.Nanos(last.CreatedAt), 10), last.ID)
	}
	return out, next, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) queryDeliveries(ctx context.Context, db querier, q string, args ...any) ([]store.Delivery, error) {
	rows, err := db.QueryContext(ctx, q, args...)
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
