package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// CreateAPIKey inserts k. Repeating a create with identical content
// (every field but RevokedAt and LastUsedAt) succeeds; a key whose ID
// exists with other content is store.ErrConflict.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	if err := rowcodec.CheckAPIKey(k); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	row, err := rowcodec.EncodeAPIKey(k)
	if err != nil {
		return fmt.Errorf("sqlite: create api key %s: %w", k.ID, err)
	}
	return s.inWriteTx(ctx, "create api key "+k.ID, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO api_keys (`+rowcodec.APIKeyColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`, row.Args()...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 1 {
			return nil
		}
		var existing rowcodec.APIKey
		if err := tx.QueryRowContext(ctx, `SELECT `+rowcodec.APIKeyColumns+` FROM api_keys WHERE id = ?`, k.ID).Scan(existing.Dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		got, err := existing.Decode()
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		want, err := row.Decode()
		if err != nil {
			return err
		}
		if !rowcodec.SameAPIKey(&got, &want) {
			return store.ErrConflict
		}
		return nil
	})
}

// GetAPIKey returns the key id of any tenant, revoked and expired ones
// included; store.ErrNotFound if it does not exist.
func (s *Store) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	var r rowcodec.APIKey
	err := s.read.QueryRowContext(ctx, `SELECT `+rowcodec.APIKeyColumns+` FROM api_keys WHERE id = ?`, id).Scan(r.Dest()...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get api key %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get api key %s: %w", id, err)
	}
	k, err := r.Decode()
	if err != nil {
		return nil, fmt.Errorf("sqlite: get api key %s: %w", id, err)
	}
	return &k, nil
}

// ListAPIKeys returns up to f.Limit (default 100, at most 1000) keys
// within f.Scope ordered by ID, revoked ones only with f.IncludeRevoked,
// and the token of the next page ("" after the last). A tenant's scope
// never includes operator keys (tenant "").
func (s *Store) ListAPIKeys(ctx context.Context, f store.APIKeyFilter) ([]store.APIKey, string, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(f.Scope)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + rowcodec.APIKeyColumns + ` FROM api_keys WHERE 1 = 1`
	var args []any
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	if !f.IncludeRevoked {
		q += ` AND revoked_at IS NULL`
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 1)
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
		}
		q += ` AND id > ?`
		args = append(args, parts[0])
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, limit+1)
	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
	}
	defer rows.Close()
	var out []store.APIKey
	for rows.Next() {
		var r rowcodec.APIKey
		if err := rows.Scan(r.Dest()...); err != nil {
			return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
		}
		k, err := r.Decode()
		if err != nil {
			return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("sqlite: list api keys: %w", err)
	}
	var next string
	if len(out) > limit {
		out = out[:limit]
		next = rowcodec.EncodeToken(out[limit-1].ID)
	}
	return out, next, nil
}

// RevokeAPIKey sets RevokedAt to now unless the key is revoked already
// (the first revocation's time is kept); store.ErrNotFound if the key does
// not exist or lies outside scope.
func (s *Store) RevokeAPIKey(ctx context.Context, scope store.Scope, id string, now time.Time) error {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return fmt.Errorf("sqlite: revoke api key %s: %w", id, err)
	}
	if now.IsZero() {
		return fmt.Errorf("sqlite: revoke api key %s: zero time", id)
	}
	q, args := `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, []any{rowcodec.Nanos(now), id}
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	return s.inWriteTx(ctx, "revoke api key "+id, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, q, args...)
		return requireOne(res, err)
	})
}

// TouchAPIKeys records each key's last use, in one write transaction: a
// time later than the recorded one replaces it; an earlier (or zero) time
// and an unknown key are ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	ids := make([]string, 0, len(lastUsed))
	for id, at := range lastUsed {
		if !at.IsZero() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return s.inWriteTx(ctx, "touch api keys", func(ctx context.Context, tx *sql.Tx) error {
		st, err := tx.PrepareContext(ctx, `UPDATE api_keys SET last_used_at = ?
WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)`)
		if err != nil {
			return err
		}
		defer st.Close()
		for _, id := range ids {
			at := rowcodec.Nanos(lastUsed[id])
			if _, err := st.ExecContext(ctx, at, id, at); err != nil {
				return fmt.Errorf("key %s: %w", id, err)
			}
		}
		return nil
	})
}
