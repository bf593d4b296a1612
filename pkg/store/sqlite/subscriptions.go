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

// CreateSubscription inserts s, its secrets sealed with the store's
// keyring. Repeating a create with identical content succeeds (whatever
// the limit); a create whose ID exists with different content fails with
// store.ErrConflict. When maxPerTenant is above zero and the tenant would
// have more subscriptions than that, nothing is written and the error is
// store.ErrLimitExceeded: the count follows the insert in the same
// transaction, and SQLite runs one write transaction at a time. An empty
// State is stored as enabled. Timeout and RetrySchedule are stored with
// millisecond precision.
func (s *Store) CreateSubscription(ctx context.Context, sub *store.Subscription, maxPerTenant int) error {
	if sub.ID == "" {
		return errors.New("sqlite: create subscription: empty id")
	}
	if sub.State != "" && !rowcodec.ValidState(sub.State) {
		return fmt.Errorf("sqlite: create subscription %s: invalid state %q", sub.ID, sub.State)
	}
	row, err := rowcodec.EncodeSubscription(sub, s.kr)
	if err != nil {
		return fmt.Errorf("sqlite: create subscription %s: %w", sub.ID, err)
	}
	return s.inWriteTx(ctx, "create subscription "+sub.ID, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO subscriptions (`+rowcodec.SubscriptionColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, row.Args()...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			if maxPerTenant > 0 {
				var count int
				if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM subscriptions WHERE tenant = ?`, sub.Tenant).Scan(&count); err != nil {
					return fmt.Errorf("count the tenant's subscriptions: %w", err)
				}
				if count > maxPerTenant {
					return fmt.Errorf("%w: tenant %s has %d subscriptions, its limit", store.ErrLimitExceeded, sub.Tenant, count-1)
				}
			}
			return bumpRevision(ctx, tx)
		}
		var existing rowcodec.Subscription
		if err := tx.QueryRowContext(ctx, `SELECT `+rowcodec.SubscriptionColumns+` FROM subscriptions WHERE id = ?`, sub.ID).Scan(existing.Dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		if err := existing.Open(s.kr); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		if !existing.Equal(&row) {
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
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, err)
	}
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE id = ?`
	args := []any{id}
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	var r rowcodec.Subscription
	err = s.read.QueryRowContext(ctx, q, args...).Scan(r.Dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, err)
	}
	sub, err := r.Decode(s.kr)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get subscription %s: %w", id, err)
	}
	return &sub, nil
}

// ListSubscriptions returns up to f.Limit (default 100, at most 1000)
// subscriptions within f.Scope ordered by ID, filtered by state when set,
// and the token of the next page ("" after the last).
func (s *Store) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(f.Scope)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list subscriptions: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + rowcodec.SubscriptionColumns + ` FROM subscriptions WHERE 1 = 1`
	var args []any
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
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
		sub, err := r.Decode(s.kr)
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
	row, err := rowcodec.EncodeSubscription(&updated, s.kr)
	if err != nil {
		return fmt.Errorf("sqlite: update subscription %s: %w", sub.ID, err)
	}
	var tenant string
	var createdAt int64
	err = s.inWriteTx(ctx, "update subscription "+sub.ID, func(ctx context.Context, tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE subscriptions SET url = ?, description = ?, event_types = ?,
    secrets_sealed = ?, secrets_key_id = ?, headers = ?, timeout_ms = ?, retry_schedule = ?, rate_limit = ?, state = ?,
    disabled_reason = ?, failing_since = ?, updated_at = ?, send_trace_context = ?
WHERE id = ? AND (? = '' OR tenant = ?)
RETURNING tenant, created_at`,
			row.URL, row.Description, row.EventTypes, row.SecretsSealed, row.SecretsKeyID, row.Headers, row.TimeoutMS,
			row.RetrySchedule, row.RateLimit, row.State, row.DisabledReason, row.FailingSince, row.UpdatedAt,
			row.SendTraceContext, row.ID, row.Tenant, row.Tenant).Scan(&tenant, &createdAt)
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
// not exist or lies outside scope. Its deliveries and attempts are kept as
// history.
func (s *Store) DeleteSubscription(ctx context.Context, scope store.Scope, id string) error {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return fmt.Errorf("sqlite: delete subscription %s: %w", id, err)
	}
	q, args := `DELETE FROM subscriptions WHERE id = ?`, []any{id}
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	return s.inWriteTx(ctx, "delete subscription "+id, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		if err := requireOne(res, err); err != nil {
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
		return fmt.Errorf("sqlite: set subscription %s state: %w", id, err)
	}
	if !rowcodec.ValidState(state) {
		return fmt.Errorf("sqlite: set subscription %s state: invalid state %q", id, state)
	}
	q, args := `UPDATE subscriptions SET state = ?, disabled_reason = ?, updated_at = ? WHERE id = ?`,
		[]any{string(state), reason, rowcodec.Nanos(now), id}
	if state == store.SubscriptionEnabled {
		q, args = `UPDATE subscriptions SET state = ?, disabled_reason = '', failing_since = NULL, updated_at = ? WHERE id = ?`,
			[]any{string(state), rowcodec.Nanos(now), id}
	}
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	return s.inWriteTx(ctx, "set subscription state "+id, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
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

// ReencryptSecrets seals again, with the keyring's current key, the
// secrets of up to limit subscriptions (in ID order) sealed with another
// key, in one write transaction, and returns how many it moved: 0 once
// every row is sealed with the current key. Each row is read, opened,
// sealed and written back inside the transaction, and written only if it
// still holds what was read, so a concurrent update (which seals with the
// current key itself) is never overwritten. The subscription revision is
// left alone: no subscription's content changes. A row sealed with a key
// the keyring lacks is an error wrapping store.ErrMissingSecretKey.
func (s *Store) ReencryptSecrets(ctx context.Context, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("sqlite: reencrypt secrets: limit %d: want at least 1", limit)
	}
	current := s.kr.Current()
	moved := 0
	err := s.inWriteTx(ctx, "reencrypt secrets", func(ctx context.Context, tx *sql.Tx) error {
		moved = 0
		type row struct {
			id, keyID string
			sealed    []byte
		}
		rows, err := tx.QueryContext(ctx, `SELECT id, secrets_key_id, secrets_sealed FROM subscriptions
WHERE secrets_key_id <> ? ORDER BY id LIMIT ?`, current, limit)
		if err != nil {
			return err
		}
		var old []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.keyID, &r.sealed); err != nil {
				rows.Close()
				return err
			}
			old = append(old, r)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, r := range old {
			plain, err := rowcodec.OpenSecrets(s.kr, r.id, r.keyID, r.sealed)
			if err != nil {
				return err
			}
			keyID, sealed, err := rowcodec.SealSecrets(s.kr, r.id, plain)
			if err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `UPDATE subscriptions SET secrets_sealed = ?, secrets_key_id = ?
WHERE id = ? AND secrets_key_id = ? AND secrets_sealed = ?`, sealed, keyID, r.id, r.keyID, r.sealed)
			if err != nil {
				return fmt.Errorf("reseal %s: %w", r.id, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("reseal %s: %w", r.id, err)
			}
			moved += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
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
