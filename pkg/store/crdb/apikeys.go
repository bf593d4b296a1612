package crdb

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// Statements of the API keys.
const (
	sqlInsertAPIKey = `INSERT INTO api_keys (` + rowcodec.APIKeyColumns + `)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`
	sqlGetAPIKey = `SELECT ` + rowcodec.APIKeyColumns + ` FROM api_keys WHERE id = $1`
	// sqlTouchAPIKeys moves each key's last use forward, never back; an
	// unknown id matches no row.
	sqlTouchAPIKeys = `UPDATE api_keys AS k SET last_used_at = t.at
FROM unnest($1::TEXT[], $2::INT8[]) AS t (id, at)
WHERE k.id = t.id AND (k.last_used_at IS NULL OR k.last_used_at < t.at)`
)

// CreateAPIKey inserts k, in one idempotent statement (ON CONFLICT DO
// NOTHING). Repeating a create with identical content (every field but
// RevokedAt and LastUsedAt) succeeds; a key whose ID exists with other
// content is store.ErrConflict. Only when the insert inserts nothing is
// the existing row read and compared.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	if err := rowcodec.CheckAPIKey(k); err != nil {
		return fmt.Errorf("crdb: %w", err)
	}
	row, err := rowcodec.EncodeAPIKey(k)
	if err != nil {
		return fmt.Errorf("crdb: create api key %s: %w", k.ID, err)
	}
	want, err := row.Decode()
	if err != nil {
		return fmt.Errorf("crdb: create api key %s: %w", k.ID, err)
	}
	return s.inTx(ctx, "create api key "+k.ID, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, sqlInsertAPIKey, row.Args()...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			return nil
		}
		var existing rowcodec.APIKey
		if err := tx.QueryRow(ctx, sqlGetAPIKey, k.ID).Scan(existing.Dest()...); err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		got, err := existing.Decode()
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
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
	err := s.run(ctx, "get api key "+id, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, sqlGetAPIKey, id).Scan(r.Dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("crdb: get api key %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	k, err := r.Decode()
	if err != nil {
		return nil, fmt.Errorf("crdb: get api key %s: %w", id, err)
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
		return nil, "", fmt.Errorf("crdb: list api keys: %w", err)
	}
	limit := rowcodec.PageLimit(f.Limit)
	q := `SELECT ` + rowcodec.APIKeyColumns + ` FROM api_keys WHERE true`
	var a args
	if restricted {
		q += ` AND tenant = ` + a.add(tenant)
	}
	if !f.IncludeRevoked {
		q += ` AND revoked_at IS NULL`
	}
	if f.PageToken != "" {
		parts, err := rowcodec.DecodeToken(f.PageToken, 1)
		if err != nil {
			return nil, "", fmt.Errorf("crdb: list api keys: %w", err)
		}
		q += ` AND id > ` + a.add(parts[0])
	}
	q += ` ORDER BY id LIMIT ` + a.add(limit+1)
	var out []store.APIKey
	err = s.run(ctx, "list api keys", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.pool.Query(ctx, q, a...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r rowcodec.APIKey
			if err := rows.Scan(r.Dest()...); err != nil {
				return err
			}
			k, err := r.Decode()
			if err != nil {
				return err
			}
			out = append(out, k)
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

// RevokeAPIKey sets RevokedAt to now unless the key is revoked already
// (the first revocation's time is kept), in one statement;
// store.ErrNotFound if the key does not exist or lies outside scope.
func (s *Store) RevokeAPIKey(ctx context.Context, scope store.Scope, id string, now time.Time) error {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return fmt.Errorf("crdb: revoke api key %s: %w", id, err)
	}
	if now.IsZero() {
		return fmt.Errorf("crdb: revoke api key %s: zero time", id)
	}
	var a args
	q := `UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ` + a.add(rowcodec.Nanos(now)) + `) WHERE id = ` + a.add(id)
	if restricted {
		q += ` AND tenant = ` + a.add(tenant)
	}
	return s.run(ctx, "revoke api key "+id, func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, q, a...)
		return requireOne(tag.RowsAffected(), err)
	})
}

// TouchAPIKeys records each key's last use in one statement (an implicit
// transaction): a time later than the recorded one replaces it; an
// earlier (or zero) time and an unknown key are ignored.
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
	slices.Sort(ids) // concurrent batches lock rows in the same order
	ats := make([]int64, len(ids))
	for i, id := range ids {
		ats[i] = rowcodec.Nanos(lastUsed[id])
	}
	return s.run(ctx, "touch api keys", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, sqlTouchAPIKeys, ids, ats)
		return err
	})
}
