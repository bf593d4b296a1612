package crdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// CreateSubscription inserts sub. Repeating a create with identical content
// succeeds; a create whose ID exists with different content fails with
// store.ErrConflict. An empty State is stored as enabled. Timeout and
// RetrySchedule are stored with millisecond precision. The insert is one
// idempotent statement (ON CONFLICT DO NOTHING); only when it inserts
// nothing is the existing row read and compared.
func (s *Store) CreateSubscription(ctx context.Context, sub *store.Subscription) error {
	if sub.ID == "" {
		return errors.New("crdb: create subscription: empty id")
	}
	if sub.State != "" && !rowcodec.ValidState(sub.State) {
		return fmt.Errorf("crdb: create subscription %s: invalid state %q", sub.ID, sub.State)
	}
	row, err := rowcodec.EncodeSubscription(sub)
	if err != nil {
		return fmt.Errorf("crdb: create subscription %s: %w", sub.ID, err)
	}
	return s.inTx(ctx, "create subscription "+sub.ID, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO subscriptions (`+rowcodec.SubscriptionColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING`, row.Args()...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return bumpRevision(ctx, tx)
		}
		var existing rowcodec.Subscription
		if err := tx.QueryRow(ctx, `SELECT `+rowcodec.SubscriptionColumns+` FROM subscriptions WHERE id = $1`, sub.ID).Scan(existing.Dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		// Re-encode the stored row: the server normalises JSONB text.
		stored, err := existing.Decode()
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		canon, err := rowcodec.EncodeSubscription(&stored)
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		if !canon.Equal(&row) {
			return store.ErrConflict
		}
		return nil
	})
}

// GetSubscription returns the subscription id; store.ErrNotFound if it does
// not exist or tenant is non-empty and differs.
func (s *Store) GetSubscription(ctx context.Context, tenant, id string) (*store.Subscription, error) {
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE id = $1`
	a := []any{id}
	if tenant != "" {
		q += ` AND tenant = $2`
		a = append(a, tenant)
	}
	var r rowcodec.Subscription
	err := s.run(ctx, "get subscription "+id, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, a...).Scan(r.Dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	sub, err := r.Decode()
	if err != nil {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, err)
	}
	return &sub, nil
}

// ListSubscriptions returns up to f.Limit (default 100, at most 1000)
// subscriptions ordered by ID, filtered by tenant and state when set, and
// the token of the next page ("" after the last).
func (s *Store) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE true`
	var a args
	if f.Tenant != "" {
		q += ` AND tenant = ` + a.add(f.Tenant)
	}
	if f.State != "" {
		q += ` AND state = ` + a.add(string(f.State))
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 1)
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list subscriptions: %w", err)
		}
		q += ` AND id > ` + a.add(parts[0])
	}
	q += ` ORDER BY id LIMIT ` + a.add(limit+1)
	var out []store.Subscription
	err := s.run(ctx, "list subscriptions", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r rowcodec.Subscription
			if err := rows.Scan(r.Dest()...); err != nil {
				return err
			}
			sub, err := r.Decode()
			if err != nil {
				return err
			}
			out = append(out, sub)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, "", err
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		next = rowcodec.EncodeToken(out[limit-1].ID)
	}
	return out, next, nil
}

// UpdateSubscription replaces every mutable field of subscription sub.ID
// with sub's, in one statement. ID, Tenant and CreatedAt are immutable: a
// non-empty sub.Tenant must match the stored tenant (else
// store.ErrNotFound), and sub.Tenant and sub.CreatedAt are set from the
// stored row. UpdatedAt is sub.UpdatedAt, or the current time if that is
// zero (written back to sub).
func (s *Store) UpdateSubscription(ctx context.Context, sub *store.Subscription) error {
	if sub.State != "" && !rowcodec.ValidState(sub.State) {
		return fmt.Errorf("crdb: update subscription %s: invalid state %q", sub.ID, sub.State)
	}
	updated := *sub
	if updated.UpdatedAt.IsZero() {
		updated.UpdatedAt = time.Now().UTC()
	}
	row, err := rowcodec.EncodeSubscription(&updated)
	if err != nil {
		return fmt.Errorf("crdb: update subscription %s: %w", sub.ID, err)
	}
	q := `UPDATE subscriptions SET url = $1, description = $2, event_types = $3, secrets = $4,
    headers = $5, timeout_ms = $6, retry_schedule = $7, rate_limit = $8, state = $9,
    disabled_reason = $10, failing_since = $11, updated_at = $12
WHERE id = $13`
	a := []any{row.URL, row.Description, row.EventTypes, row.Secrets, row.Headers, row.TimeoutMS,
		row.RetrySchedule, row.RateLimit, row.State, row.DisabledReason, row.FailingSince, row.UpdatedAt, row.ID}
	if row.Tenant != "" {
		q += ` AND tenant = $14`
		a = append(a, row.Tenant)
	}
	q += ` RETURNING tenant, created_at`
	var tenant string
	var createdAt int64
	err = s.inTx(ctx, "update subscription "+sub.ID, func(ctx context.Context, tx pgx.Tx) error {
		err := tx.QueryRow(ctx, q, a...).Scan(&tenant, &createdAt)
		if errors.Is(err, pgx.ErrNoRows) {
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
	q := `DELETE FROM subscriptions WHERE id = $1`
	a := []any{id}
	if tenant != "" {
		q += ` AND tenant = $2`
		a = append(a, tenant)
	}
	return s.inTx(ctx, "delete subscription "+id, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q, a...)
		if err := requireOne(tag.RowsAffected(), err); err != nil {
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
		return fmt.Errorf("crdb: set subscription %s state: invalid state %q", id, state)
	}
	return s.inTx(ctx, "set subscription state "+id, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		var n int64
		if state == store.SubscriptionEnabled {
			tag, e := tx.Exec(ctx, `UPDATE subscriptions SET state = $1, disabled_reason = '',
    failing_since = NULL, updated_at = $2 WHERE id = $3`, string(state), rowcodec.Nanos(now), id)
			n, err = tag.RowsAffected(), e
		} else {
			tag, e := tx.Exec(ctx, `UPDATE subscriptions SET state = $1, disabled_reason = $2,
    updated_at = $3 WHERE id = $4`, string(state), reason, rowcodec.Nanos(now), id)
			n, err = tag.RowsAffected(), e
		}
		if err := requireOne(n, err); err != nil {
			return err
		}
		return bumpRevision(ctx, tx)
	})
}

// SetSubscriptionFailing sets FailingSince to since (the zero time clears
// it) without touching UpdatedAt. store.ErrNotFound if absent.
func (s *Store) SetSubscriptionFailing(ctx context.Context, id string, since time.Time) error {
	return s.inTx(ctx, "set subscription failing "+id, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE subscriptions SET failing_since = $1 WHERE id = $2`, rowcodec.NullNanos(since), id)
		if err := requireOne(tag.RowsAffected(), err); err != nil {
			return err
		}
		return bumpRevision(ctx, tx)
	})
}

// requireOne turns a statement that touched no row into store.ErrNotFound.
func requireOne(n int64, err error) error {
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// SubscriptionsRevision returns the subscription revision: a counter that
// every committed subscription write (create, update, delete, state or
// failing change) increments in its own transaction.
func (s *Store) SubscriptionsRevision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.run(ctx, "subscriptions revision", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT revision FROM subscription_revision WHERE id = 1`).Scan(&rev)
	})
	return rev, err
}

// bumpRevision increments the subscription revision inside tx.
func bumpRevision(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `UPDATE subscription_revision SET revision = revision + 1 WHERE id = 1`); err != nil {
		return fmt.Errorf("bump subscription revision: %w", err)
	}
	return nil
}
