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

// CreateSubscription inserts sub, its secrets sealed with the store's
// keyring. Repeating a create with identical content succeeds (whatever
// the limit); a create whose ID exists with different content fails with
// store.ErrConflict. An empty State is stored as enabled. Timeout and
// RetrySchedule are stored with millisecond precision. The insert is one
// idempotent statement (ON CONFLICT DO NOTHING); only when it inserts
// nothing is the existing row read and compared.
//
// When maxPerTenant is above zero, the transaction that inserted a row
// counts the tenant's subscriptions and, above maxPerTenant, fails with
// store.ErrLimitExceeded, writing nothing. The count follows the
// subscription revision's increment, which every subscription write makes
// in its transaction: that row lock orders concurrent creates, so the
// count (a statement of its own, which under PostgreSQL's READ COMMITTED
// sees every create committed before the lock was granted; CockroachDB is
// SERIALIZABLE) cannot miss a concurrent create of the same tenant.
func (s *Store) CreateSubscription(ctx context.Context, sub *store.Subscription, maxPerTenant int) error {
	if sub.ID == "" {
		return errors.New("crdb: create subscription: empty id")
	}
	if sub.State != "" && !rowcodec.ValidState(sub.State) {
		return fmt.Errorf("crdb: create subscription %s: invalid state %q", sub.ID, sub.State)
	}
	row, err := rowcodec.EncodeSubscription(sub, s.kr)
	if err != nil {
		return fmt.Errorf("crdb: create subscription %s: %w", sub.ID, err)
	}
	return s.inTx(ctx, "create subscription "+sub.ID, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO subscriptions (`+rowcodec.SubscriptionColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT (id) DO NOTHING`, row.Args()...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			if err := bumpRevision(ctx, tx); err != nil {
				return err
			}
			if maxPerTenant <= 0 {
				return nil
			}
			var count int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM subscriptions WHERE tenant = $1`, sub.Tenant).Scan(&count); err != nil {
				return fmt.Errorf("count the tenant's subscriptions: %w", err)
			}
			if count > int64(maxPerTenant) {
				return fmt.Errorf("%w: tenant %s has %d subscriptions, its limit", store.ErrLimitExceeded, sub.Tenant, count-1)
			}
			return nil
		}
		var existing rowcodec.Subscription
		if err := tx.QueryRow(ctx, `SELECT `+rowcodec.SubscriptionColumns+` FROM subscriptions WHERE id = $1`, sub.ID).Scan(existing.Dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		// Re-encode the stored row: the server normalises JSONB text.
		stored, err := existing.Decode(s.kr)
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		canon, err := rowcodec.EncodeSubscription(&stored, s.kr)
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		if !canon.Equal(&row) {
			return store.ErrConflict
		}
		return nil
	})
}

// GetSubscription returns the subscription id within scope, its secrets
// opened; store.ErrNotFound if it does not exist or lies outside scope.
func (s *Store) GetSubscription(ctx context.Context, scope store.Scope, id string) (*store.Subscription, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, err)
	}
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE id = $1`
	a := []any{id}
	if restricted {
		q += ` AND tenant = $2`
		a = append(a, tenant)
	}
	var r rowcodec.Subscription
	err = s.run(ctx, "get subscription "+id, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, a...).Scan(r.Dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	sub, err := r.Decode(s.kr)
	if err != nil {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, err)
	}
	return &sub, nil
}

// ListSubscriptions returns up to f.Limit (default 100, at most 1000)
// subscriptions within f.Scope ordered by ID, filtered by state when set,
// and the token of the next page ("" after the last).
func (s *Store) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(f.Scope)
	if err != nil {
		return nil, "", fmt.Errorf("crdb: list subscriptions: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE true`
	var a args
	if restricted {
		q += ` AND tenant = ` + a.add(tenant)
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
	err = s.run(ctx, "list subscriptions", func(ctx context.Context) error {
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
			sub, err := r.Decode(s.kr)
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
	row, err := rowcodec.EncodeSubscription(&updated, s.kr)
	if err != nil {
		return fmt.Errorf("crdb: update subscription %s: %w", sub.ID, err)
	}
	// The secrets are sealed anew, and the plaintext column (of a row
	// migrated from before version 4 and not sealed yet) is cleared.
	q := `UPDATE subscriptions SET url = $1, description = $2, event_types = $3, secrets_sealed = $4,
    secrets_key_id = $5, secrets = NULL, headers = $6, timeout_ms = $7, retry_schedule = $8, rate_limit = $9,
    state = $10, disabled_reason = $11, failing_since = $12, updated_at = $13, send_trace_context = $14
WHERE id = $15`
	a := []any{row.URL, row.Description, row.EventTypes, row.SecretsSealed, row.SecretsKeyID, row.Headers, row.TimeoutMS,
		row.RetrySchedule, row.RateLimit, row.State, row.DisabledReason, row.FailingSince, row.UpdatedAt,
		row.SendTraceContext, row.ID}
	if row.Tenant != "" {
		q += ` AND tenant = $16`
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
// not exist or lies outside scope. Its deliveries and attempts are kept as
// history.
func (s *Store) DeleteSubscription(ctx context.Context, scope store.Scope, id string) error {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return fmt.Errorf("crdb: delete subscription %s: %w", id, err)
	}
	q := `DELETE FROM subscriptions WHERE id = $1`
	a := []any{id}
	if restricted {
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
// FailingSince. store.ErrNotFound if the subscription does not exist or
// lies outside scope.
func (s *Store) SetSubscriptionState(ctx context.Context, scope store.Scope, id string, state store.SubscriptionState, reason string, now time.Time) error {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return fmt.Errorf("crdb: set subscription %s state: %w", id, err)
	}
	if !rowcodec.ValidState(state) {
		return fmt.Errorf("crdb: set subscription %s state: invalid state %q", id, state)
	}
	var q string
	var a args
	if state == store.SubscriptionEnabled {
		q = `UPDATE subscriptions SET state = ` + a.add(string(state)) + `, disabled_reason = '',
    failing_since = NULL, updated_at = ` + a.add(rowcodec.Nanos(now)) + ` WHERE id = ` + a.add(id)
	} else {
		q = `UPDATE subscriptions SET state = ` + a.add(string(state)) + `, disabled_reason = ` + a.add(reason) + `,
    updated_at = ` + a.add(rowcodec.Nanos(now)) + ` WHERE id = ` + a.add(id)
	}
	if restricted {
		q += ` AND tenant = ` + a.add(tenant)
	}
	return s.inTx(ctx, "set subscription state "+id, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, q, a...)
		if err := requireOne(tag.RowsAffected(), err); err != nil {
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
