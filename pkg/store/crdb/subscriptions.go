package crdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
)

// secretJSON is the stored form of a store.Secret; times are unix ns.
type secretJSON struct {
	Value     string `json:"value"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

// subRow is a subscription in its column form, JSON columns as the text
// json.Marshal produces. Two subscriptions are the same content exactly
// when their subRows (both made by encodeSubscription) are equal.
type subRow struct {
	id, tenant, url, description string
	eventTypes, secrets, headers string
	timeoutMS                    int64
	retrySchedule                *string
	rateLimit                    int64
	state, disabledReason        string
	failingSince                 *int64
	createdAt, updatedAt         int64
}

const subColumns = `id, tenant, url, description, event_types, secrets, headers, timeout_ms,
    retry_schedule, rate_limit, state, disabled_reason, failing_since, created_at, updated_at`

func (r *subRow) dest() []any {
	return []any{&r.id, &r.tenant, &r.url, &r.description, &r.eventTypes, &r.secrets, &r.headers,
		&r.timeoutMS, &r.retrySchedule, &r.rateLimit, &r.state, &r.disabledReason, &r.failingSince,
		&r.createdAt, &r.updatedAt}
}

func (r *subRow) args() []any {
	return []any{r.id, r.tenant, r.url, r.description, r.eventTypes, r.secrets, r.headers,
		r.timeoutMS, r.retrySchedule, r.rateLimit, r.state, r.disabledReason, r.failingSince,
		r.createdAt, r.updatedAt}
}

// equal compares content, including the pointed-to optional values.
func (r *subRow) equal(o *subRow) bool {
	a, b := *r, *o
	if (a.retrySchedule == nil) != (b.retrySchedule == nil) || (a.failingSince == nil) != (b.failingSince == nil) {
		return false
	}
	if a.retrySchedule != nil && *a.retrySchedule != *b.retrySchedule {
		return false
	}
	if a.failingSince != nil && *a.failingSince != *b.failingSince {
		return false
	}
	a.retrySchedule, b.retrySchedule, a.failingSince, b.failingSince = nil, nil, nil, nil
	return a == b
}

func encodeSubscription(s *store.Subscription) (subRow, error) {
	r := subRow{
		id: s.ID, tenant: s.Tenant, url: s.URL, description: s.Description,
		timeoutMS: s.Timeout.Milliseconds(), rateLimit: int64(s.RateLimit),
		state: string(s.State), disabledReason: s.DisabledReason,
		failingSince: nullNanos(s.FailingSince),
		createdAt:    nanos(s.CreatedAt), updatedAt: nanos(s.UpdatedAt),
	}
	if r.state == "" {
		r.state = string(store.SubscriptionEnabled)
	}
	var err error
	types := s.EventTypes
	if types == nil {
		types = []string{}
	}
	if r.eventTypes, err = marshalJSON(types); err != nil {
		return r, fmt.Errorf("encode event types: %w", err)
	}
	secrets := make([]secretJSON, 0, len(s.Secrets))
	for _, sec := range s.Secrets {
		secrets = append(secrets, secretJSON{Value: sec.Value, CreatedAt: nanos(sec.CreatedAt), ExpiresAt: nanos(sec.ExpiresAt)})
	}
	if r.secrets, err = marshalJSON(secrets); err != nil {
		return r, fmt.Errorf("encode secrets: %w", err)
	}
	headers := s.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	if r.headers, err = marshalJSON(headers); err != nil { // map keys are sorted: stable text
		return r, fmt.Errorf("encode headers: %w", err)
	}
	if s.RetrySchedule != nil {
		ms := make([]int64, len(s.RetrySchedule))
		for i, d := range s.RetrySchedule {
			ms[i] = d.Milliseconds()
		}
		js, err := marshalJSON(ms)
		if err != nil {
			return r, fmt.Errorf("encode retry schedule: %w", err)
		}
		r.retrySchedule = &js
	}
	return r, nil
}

func (r *subRow) decode() (store.Subscription, error) {
	s := store.Subscription{
		ID: r.id, Tenant: r.tenant, URL: r.url, Description: r.description,
		Timeout: time.Duration(r.timeoutMS) * time.Millisecond, RateLimit: int(r.rateLimit),
		State: store.SubscriptionState(r.state), DisabledReason: r.disabledReason,
		FailingSince: fromNullNanos(r.failingSince),
		CreatedAt:    fromNanos(r.createdAt), UpdatedAt: fromNanos(r.updatedAt),
	}
	if err := unmarshalJSON(r.eventTypes, &s.EventTypes); err != nil {
		return s, fmt.Errorf("decode event types of %s: %w", r.id, err)
	}
	if len(s.EventTypes) == 0 {
		s.EventTypes = nil
	}
	var secrets []secretJSON
	if err := unmarshalJSON(r.secrets, &secrets); err != nil {
		return s, fmt.Errorf("decode secrets of %s: %w", r.id, err)
	}
	for _, sec := range secrets {
		s.Secrets = append(s.Secrets, store.Secret{Value: sec.Value, CreatedAt: fromNanos(sec.CreatedAt), ExpiresAt: fromNanos(sec.ExpiresAt)})
	}
	if err := unmarshalJSON(r.headers, &s.Headers); err != nil {
		return s, fmt.Errorf("decode headers of %s: %w", r.id, err)
	}
	if len(s.Headers) == 0 {
		s.Headers = nil
	}
	if r.retrySchedule != nil {
		var ms []int64
		if err := unmarshalJSON(*r.retrySchedule, &ms); err != nil {
			return s, fmt.Errorf("decode retry schedule of %s: %w", r.id, err)
		}
		s.RetrySchedule = make([]time.Duration, len(ms))
		for i, v := range ms {
			s.RetrySchedule[i] = time.Duration(v) * time.Millisecond
		}
	}
	return s, nil
}

func validState(st store.SubscriptionState) bool {
	return st == store.SubscriptionEnabled || st == store.SubscriptionDisabled
}

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
	if sub.State != "" && !validState(sub.State) {
		return fmt.Errorf("crdb: create subscription %s: invalid state %q", sub.ID, sub.State)
	}
	row, err := encodeSubscription(sub)
	if err != nil {
		return fmt.Errorf("crdb: create subscription %s: %w", sub.ID, err)
	}
	return s.inTx(ctx, "create subscription "+sub.ID, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO subscriptions (`+subColumns+`)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (id) DO NOTHING`, row.args()...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return bumpRevision(ctx, tx)
		}
		var existing subRow
		if err := tx.QueryRow(ctx, `SELECT `+subColumns+` FROM subscriptions WHERE id = $1`, sub.ID).Scan(existing.dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		// Re-encode the stored row: the server normalises JSONB text.
		stored, err := existing.decode()
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		canon, err := encodeSubscription(&stored)
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		if !canon.equal(&row) {
			return store.ErrConflict
		}
		return nil
	})
}

// GetSubscription returns the subscription id; store.ErrNotFound if it does
// not exist or tenant is non-empty and differs.
func (s *Store) GetSubscription(ctx context.Context, tenant, id string) (*store.Subscription, error) {
	q := `SELECT ` + subColumns + ` FROM subscriptions WHERE id = $1`
	a := []any{id}
	if tenant != "" {
		q += ` AND tenant = $2`
		a = append(a, tenant)
	}
	var r subRow
	err := s.run(ctx, "get subscription "+id, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, a...).Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	sub, err := r.decode()
	if err != nil {
		return nil, fmt.Errorf("crdb: get subscription %s: %w", id, err)
	}
	return &sub, nil
}

// ListSubscriptions returns up to f.Limit (default 100, at most 1000)
// subscriptions ordered by ID, filtered by tenant and state when set, and
// the token of the next page ("" after the last).
func (s *Store) ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error) {
	limit := pageLimit(f.Limit)
	q := `SELECT ` + subColumns + ` FROM subscriptions WHERE true`
	var a args
	if f.Tenant != "" {
		q += ` AND tenant = ` + a.add(f.Tenant)
	}
	if f.State != "" {
		q += ` AND state = ` + a.add(string(f.State))
	}
	if f.PageToken != "" {
		parts, err := decodeToken(f.PageToken, 1)
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
			var r subRow
			if err := rows.Scan(r.dest()...); err != nil {
				return err
			}
			sub, err := r.decode()
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
		next = encodeToken(out[limit-1].ID)
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
	if sub.State != "" && !validState(sub.State) {
		return fmt.Errorf("crdb: update subscription %s: invalid state %q", sub.ID, sub.State)
	}
	updated := *sub
	if updated.UpdatedAt.IsZero() {
		updated.UpdatedAt = time.Now().UTC()
	}
	row, err := encodeSubscription(&updated)
	if err != nil {
		return fmt.Errorf("crdb: update subscription %s: %w", sub.ID, err)
	}
	q := `UPDATE subscriptions SET url = $1, description = $2, event_types = $3, secrets = $4,
    headers = $5, timeout_ms = $6, retry_schedule = $7, rate_limit = $8, state = $9,
    disabled_reason = $10, failing_since = $11, updated_at = $12
WHERE id = $13`
	a := []any{row.url, row.description, row.eventTypes, row.secrets, row.headers, row.timeoutMS,
		row.retrySchedule, row.rateLimit, row.state, row.disabledReason, row.failingSince, row.updatedAt, row.id}
	if row.tenant != "" {
		q += ` AND tenant = $14`
		a = append(a, row.tenant)
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
	sub.CreatedAt = fromNanos(createdAt)
	sub.UpdatedAt = fromNanos(row.updatedAt)
	if sub.State == "" {
		sub.State = store.SubscriptionState(row.state)
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
	if !validState(state) {
		return fmt.Errorf("crdb: set subscription %s state: invalid state %q", id, state)
	}
	return s.inTx(ctx, "set subscription state "+id, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		var n int64
		if state == store.SubscriptionEnabled {
			tag, e := tx.Exec(ctx, `UPDATE subscriptions SET state = $1, disabled_reason = '',
    failing_since = NULL, updated_at = $2 WHERE id = $3`, string(state), nanos(now), id)
			n, err = tag.RowsAffected(), e
		} else {
			tag, e := tx.Exec(ctx, `UPDATE subscriptions SET state = $1, disabled_reason = $2,
    updated_at = $3 WHERE id = $4`, string(state), reason, nanos(now), id)
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
		tag, err := tx.Exec(ctx, `UPDATE subscriptions SET failing_since = $1 WHERE id = $2`, nullNanos(since), id)
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
