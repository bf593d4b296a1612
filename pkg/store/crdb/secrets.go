package crdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// ErrPlaintextSecrets means some subscriptions' signing secrets are still
// stored in the clear: the database was migrated to version 4 by a
// migration that did not finish sealing them, or without a keyring. Open
// without Options.Migrate refuses such a database; `hookline migrate` (or
// MigrateWith with a keyring) seals them.
var ErrPlaintextSecrets = errors.New("subscriptions hold signing secrets in the clear: run `hookline migrate` with the secret keyring")

// Statements of the signing secrets' sealing (see the 0004 migration).
const (
	// sqlLegacySecrets reads a batch of the rows whose secrets are still
	// in the clear (left by the schema before version 4).
	sqlLegacySecrets = `SELECT id, secrets::TEXT FROM subscriptions WHERE secrets IS NOT NULL ORDER BY id LIMIT $1`
	// sqlSealLegacySecrets stores the sealed form of each row read by
	// sqlLegacySecrets and clears its plaintext, provided the row still
	// holds the plaintext that was sealed.
	sqlSealLegacySecrets = `UPDATE subscriptions AS s SET secrets_sealed = t.sealed, secrets_key_id = $1, secrets = NULL
FROM unnest($2::TEXT[], $3::BYTEA[], $4::TEXT[]) AS t (id, sealed, plain)
WHERE s.id = t.id AND s.secrets = t.plain::JSONB`
	// sqlCountPlaintextSecrets counts the rows still in the clear.
	sqlCountPlaintextSecrets = `SELECT count(*) FROM subscriptions WHERE secrets IS NOT NULL`
	// sqlSecretKeyIDs lists the keys the stored secrets are sealed with.
	sqlSecretKeyIDs = `SELECT DISTINCT secrets_key_id FROM subscriptions WHERE secrets_key_id <> ''`
	// sqlSecretsToReseal locks a batch of rows sealed with another key
	// than the current one ($1).
	sqlSecretsToReseal = `SELECT id, secrets_key_id, secrets_sealed FROM subscriptions
WHERE secrets_key_id <> $1 AND secrets_key_id <> '' ORDER BY id LIMIT $2 FOR UPDATE`
	// sqlReseal stores each row's secrets sealed again with the current
	// key ($1), provided the row still holds what was read.
	sqlReseal = `UPDATE subscriptions AS s SET secrets_sealed = t.sealed, secrets_key_id = $1
FROM unnest($2::TEXT[], $3::BYTEA[], $4::TEXT[], $5::BYTEA[]) AS t (id, sealed, old_key_id, old_sealed)
WHERE s.id = t.id AND s.secrets_key_id = t.old_key_id AND s.secrets_sealed = t.old_sealed`
)

// sealBatch is how many rows one statement seals.
const sealBatch = 100

// codeUndefinedColumn is the SQLSTATE of a column that does not exist: a
// schema ahead of this binary may have dropped the plaintext column.
const codeUndefinedColumn = "42703"

// sealLegacySecrets is the Go step of migration 0004: it seals, with kr's
// current key, the secrets of every row that still holds them in the
// clear, a batch per statement, and clears the plaintext in the same
// statement. Each row is written only if it still holds the plaintext
// that was read, so it is safe to run concurrently with other migrators
// and with updates (which never write plaintext); a run interrupted at
// any point leaves every row either sealed or in the clear, and the next
// run finishes the work. It runs whenever migrations do, pending or not.
// Without a keyring it succeeds only if nothing is left to seal.
func sealLegacySecrets(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring, logger *slog.Logger) error {
	sealed, fruitless := 0, 0
	for {
		type legacy struct{ id, plain string }
		var batch []legacy
		err := retryLoop(ctx, logger, "read plaintext secrets", retryable, func(ctx context.Context) error {
			batch = batch[:0]
			rows, err := pool.Query(ctx, sqlLegacySecrets, sealBatch)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var l legacy
				if err := rows.Scan(&l.id, &l.plain); err != nil {
					return err
				}
				batch = append(batch, l)
			}
			return rows.Err()
		})
		if sqlState(err) == codeUndefinedColumn {
			return nil // a later schema dropped the plaintext column
		}
		if err != nil {
			return fmt.Errorf("seal plaintext secrets: %w", err)
		}
		if len(batch) == 0 {
			if sealed > 0 {
				logger.InfoContext(ctx, "sealed plaintext signing secrets", slog.Int("subscriptions", sealed),
					slog.String("key_id", kr.Current()))
			}
			return nil
		}
		if kr == nil {
			var n int64
			if err := pool.QueryRow(ctx, sqlCountPlaintextSecrets).Scan(&n); err != nil {
				return fmt.Errorf("seal plaintext secrets: %w", err)
			}
			return fmt.Errorf("seal plaintext secrets: %d subscriptions hold them in the clear, and no keyring was given to seal them with: %w",
				n, ErrPlaintextSecrets)
		}
		ids, seals, plains := make([]string, len(batch)), make([][]byte, len(batch)), make([]string, len(batch))
		for i, l := range batch {
			secrets, err := rowcodec.DecodeSecrets(l.plain)
			if err != nil {
				return fmt.Errorf("seal plaintext secrets of %s: decode: %w", l.id, err)
			}
			js, err := rowcodec.EncodeSecrets(secrets)
			if err != nil {
				return fmt.Errorf("seal plaintext secrets of %s: %w", l.id, err)
			}
			_, sealedJS, err := rowcodec.SealSecrets(kr, l.id, js)
			if err != nil {
				return fmt.Errorf("seal plaintext secrets: %w", err)
			}
			ids[i], seals[i], plains[i] = l.id, sealedJS, l.plain
		}
		var n int64
		err = retryLoop(ctx, logger, "seal plaintext secrets", retryable, func(ctx context.Context) error {
			tag, err := pool.Exec(ctx, sqlSealLegacySecrets, kr.Current(), ids, seals, plains)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return fmt.Errorf("seal plaintext secrets: %w", err)
		}
		sealed += int(n)
		// A batch of which nothing was sealed was changed meanwhile (by
		// another migrator, most likely): read again, but not forever.
		if n == 0 {
			if fruitless++; fruitless == maxRuns {
				return fmt.Errorf("seal plaintext secrets: rows keep changing under the migration (%d batches sealed nothing)", fruitless)
			}
		} else {
			fruitless = 0
		}
	}
}

// checkNoPlaintextSecrets fails, wrapping ErrPlaintextSecrets, when some
// subscriptions still hold their secrets in the clear.
func checkNoPlaintextSecrets(ctx context.Context, pool *pgxpool.Pool) error {
	var n int64
	err := pool.QueryRow(ctx, sqlCountPlaintextSecrets).Scan(&n)
	if sqlState(err) == codeUndefinedColumn {
		return nil // a later schema dropped the plaintext column
	}
	if err != nil {
		return fmt.Errorf("check for plaintext secrets: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("%d subscriptions: %w", n, ErrPlaintextSecrets)
	}
	return nil
}

// checkSecretKeys fails, wrapping store.ErrMissingSecretKey and naming the
// key ids, when some secrets are sealed with a key kr lacks: one query of
// the distinct key ids, answered from an index.
func checkSecretKeys(ctx context.Context, pool *pgxpool.Pool, kr *keyring.Keyring) error {
	rows, err := pool.Query(ctx, sqlSecretKeyIDs)
	if err != nil {
		return fmt.Errorf("read secret key ids: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read secret key ids: %w", err)
	}
	return rowcodec.MissingKeys(kr, ids)
}

// ReencryptSecrets seals again, with the keyring's current key, the
// secrets of up to limit subscriptions (in ID order) sealed with another
// key, and returns how many it moved: 0 once every row is sealed with the
// current key. One transaction locks the rows it reads (SELECT ... FOR
// UPDATE), and writes each back in one statement only if it still holds
// the key id and sealed bytes that were read, so it is safe beside
// concurrent updates (which seal with the current key themselves) and
// other re-encryptions, and safe to run again. The subscription revision is
// left alone: no subscription's content changes. A row sealed with a key
// the keyring lacks is an error wrapping store.ErrMissingSecretKey.
func (s *Store) ReencryptSecrets(ctx context.Context, limit int) (int, error) {
	if limit < 1 {
		return 0, fmt.Errorf("crdb: reencrypt secrets: limit %d: want at least 1", limit)
	}
	current := s.kr.Current()
	moved := 0
	err := s.inTx(ctx, "reencrypt secrets", func(ctx context.Context, tx pgx.Tx) error {
		moved = 0
		rows, err := tx.Query(ctx, sqlSecretsToReseal, current, limit)
		if err != nil {
			return err
		}
		var ids, oldKeys []string
		var oldSealed [][]byte
		for rows.Next() {
			var id, keyID string
			var sealed []byte
			if err := rows.Scan(&id, &keyID, &sealed); err != nil {
				rows.Close()
				return err
			}
			ids, oldKeys, oldSealed = append(ids, id), append(oldKeys, keyID), append(oldSealed, sealed)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) == 0 {
			return nil
		}
		resealed := make([][]byte, len(ids))
		for i, id := range ids {
			plain, err := rowcodec.OpenSecrets(s.kr, id, oldKeys[i], oldSealed[i])
			if err != nil {
				return err
			}
			if _, resealed[i], err = rowcodec.SealSecrets(s.kr, id, plain); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, sqlReseal, current, ids, resealed, oldKeys, oldSealed)
		if err != nil {
			return err
		}
		moved = int(tag.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, err
	}
	return moved, nil
}
