package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// CreateSubscription inserts s. Repeating a create with identical content
// succeeds; a create whose ID exists with different content fails with
// store.ErrConflict. An empty State is stored as enabled. Timeout and
// RetrySchedule are stored with millisecond precision.
func (s *Store) CreateSubscription(ctx context.Context, sub *store.Subscription) error {
	if sub.ID == "" {
		return errors.New("sqlite: create subscription: empty id")
	}
	if sub.State != "" && !rowcodec.ValidState(sub.State) {
		return fmt.Errorf("sqlite: create subscription %s: invalid state %q", sub.ID, sub.State)
	}
	row, err := rowcodec.EncodeSubscription(sub)
	if err != nil {
		return fmt.Errorf("sqlite: create subscription %s: %w", sub.ID, err)
	}
	return s.inWriteTx(ctx, "create subscription "+sub.ID, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (`+rowcodec.SubscriptionColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, row.Args()...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return bumpRevision(ctx, tx)
		}
		var existing rowcodec.Subscription
		if err := tx.QueryRowContext(ctx, `SELECT `+rowcodec.SubscriptionColumns+` FROM subscriptions WHERE id = ?`, sub.ID).Scan(existing.Dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		if !existing.Equal(&row) {
			return store.ErrConflict
		}
		return nil
	})
}

// GetSubscription returns the subscription id; store.ErrNotFound if it does
// not exist or tenant is non-empty and differs.
func (s *Store) GetSubscription(ctx context.Context, tenant, id string) (*store.Subscription, error) {
	var r rowcodec.Subscription
	err := s.read.QueryRowContext(ctx, `SELECT `+rowcodec.SubscriptionColumns+` FROM subscriptions WHERE id = ? AND (? = '' OR tenant = ?)`,
		id, tenant, tenant).Scan(r.Dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, err)
	}
	sub, err := r.Decode()
	if err != nil {
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, err)
	}
	return &sub, nil
}

// ListSubscriptions returns up to f.Limit (default 100, at most 1000)
// subscriptions ordered by ID, filtered by tenant and state when set, and
// the token of the next page ("" after the last).
func (s *Store) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE 1 = 1`
	var args []any
	if f.Tenant != "" {
		q += ` AND tenant = ?`
		args = append(args, f.Tenant)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, string(f.State))
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 1)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list subscriptions: %w", err)
		}
		q += ` AND id > ?`
		args = append(args, parts[0])
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list subscriptions: %w", err)
	}
	defer rows.Close()
	var out []store.Subscription
	for rows.Next() {
		var r rowcodec.Subscription
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, "", fmt.Errorf("sqlite: list subscriptions: %w", err)
		}
		sub, err := r.Decode()
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list subscriptions: %w", err)
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list subscriptions: %w", err)
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		next = rowcodec.EncodeToken(out[limit-1].ID)
	}
	return out, next, nil
}

// UpdateSubscription replaces every mutable field of subscription sub.ID
// with sub's. ID, Tenant and CreatedAt are immutable: a non-empty
// sub.Tenant must match the stored tenant (else store.ErrNotFound), and
// sub.Tenant and sub.CreatedAt are set from the stored row. UpdatedAt is
// sub.UpdatedAt, or the current time if that is zero (written back to sub).
func (s *Store) UpdateSubscription(ctx context.Context, sub *store.Subscription) error {
	if sub.State != "" && !rowcodec.ValidState(sub.State) {
		return fmt.Errorf("sqlite: update subscription %s: invalid state %q", sub.ID, sub.State)
	}
	updated := *sub
	if updated.UpdatedAt.IsZero() {
		updated.UpdatedAt = time.Now().UTC()
	}
	row, err := rowcodec.EncodeSubscription(&updated)
	if err != nil {
		return fmt.Errorf("sqlite: update subscription %s: %w", sub.ID, err)
	}
	var tenant string
	var createdAt int64
	err = s.inWriteTx(ctx, "update subscription "+sub.ID, func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE subscriptions SET url = ?, description = ?, event_types = ?,
    secrets = ?, headers = ?, timeout_ms = ?, retry_schedule = ?, rate_limit = ?, state = ?,
    disabled_reason = ?, failing_since = ?, updated_at = ?
WHERE id = ? AND (? = '' OR tenant = ?)
RETURNING tenant, created_at`,
			row.URL, row.Description, row.EventTypes, row.Secrets, row.Headers, row.TimeoutMS,
			row.RetrySchedule, row.RateLimit, row.State, row.DisabledReason, row.FailingSince, row.UpdatedAt,
			row.ID, row.Tenant, row.Tenant).Scan(&tenant, &createdAt)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		return bumpRevision(ctx, tx)
	})
	if err != nil {
		return err
	}
	sub.Tenant = tenant
	sub.CreatedAt = rowcodec.FromNanos(createdAt)
	sub.UpdatedAt = rowcodec.FromNanos(row.UpdatedAt)
	if sub.State == "" {
		sub.State = store.SubscriptionState(row.State)
	}
	return nil
}

// DeleteSubscription removes the subscription; store.ErrNotFound if it does
// not exist or tenant is non-empty and differs. Its deliveries and attempts
// are kept as history.
func (s *Store) DeleteSubscription(ctx context.Context, tenant, id string) error {
	return s.inWriteTx(ctx, "delete subscription "+id, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM subscriptions WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant)
		if err := requireOne(res, err); err != nil {
			return err
		}
		return bumpRevision(ctx, tx)
	})
}

// SetSubscriptionState sets the state and UpdatedAt = now. Disabling
// records reason as DisabledReason; enabling clears DisabledReason and
// FailingSince. store.ErrNotFound if the subscription does not exist.
func (s *Store) SetSubscriptionState(ctx context.Context, id string, state store.SubscriptionState, reason string, now time.Time) error {
	if !rowcodec.ValidState(state) {
		return fmt.Errorf("sqlite: set subscription %s state: invalid state %q", id, state)
	}
	return s.inWriteTx(ctx, "set subscription state "+id, func(ctx context.Context, tx *sql.Tx) error {
		var res sql.Result
		var err error
		if state == store.SubscriptionEnabled {
			res, err = tx.ExecContext(ctx, `UPDATE subscriptions SET state = ?, disabled_reason = '',
    failing_since = NULL, updated_at = ? WHERE id = ?`, string(state), rowcodec.Nanos(now), id)
		} else {
			res, err = tx.ExecContext(ctx, `UPDATE subscriptions SET state = ?, disabled_reason = ?,
    updated_at = ? WHERE id = ?`, string(state), reason, rowcodec.Nanos(now), id)
		}
		if err := requireOne(res, err); err != nil {
			return err
		}
		return bumpRevision(ctx, tx)
	})
}

// SetSubscriptionFailing sets FailingSince to since (the zero time clears
// it) without touching UpdatedAt. store.ErrNotFound if absent.
func (s *Store) SetSubscriptionFailing(ctx context.Context, id string, since time.Time) error {
	return s.inWriteTx(ctx, "set subscription failing "+id, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE subscriptions SET failing_since = ? WHERE id = ?`, nullNanos(since), id)
		if err := requireOne(res, err); err != nil {
			return err
		}
		return bumpRevision(ctx, tx)
	})
}

// SubscriptionsRevision returns the subscription revision: a counter that
// every committed subscription write (create, update, delete, state or
// failing change) increments in its own transaction.
func (s *Store) SubscriptionsRevision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.revision.QueryRowContext(ctx).Scan(&rev); err != nil {
		return 0, fmt.Errorf("sqlite: subscriptions revision: %w", err)
	}
	return rev, nil
}

// sqlSubscriptionsRevision reads the subscription revision.
const sqlSubscriptionsRevision = `SELECT revision FROM subscription_revision WHERE id = 1`

// bumpRevision increments the subscription revision inside tx.
func bumpRevision(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, `UPDATE subscription_revision SET revision = revision + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bump subscription revision: %w", err)
	}
	return nil
}

// requireOne turns an Exec result that touched no row into ErrNotFound.
func requireOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}
