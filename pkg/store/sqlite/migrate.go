package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one forward-only schema step, named NNNN_description.sql,
// and the Go step that completes it, if any (goSteps).
type migration struct {
	version int
	name    string
	sql     string
	step    goStep
}

// goStep is the part of a migration written in Go. It runs after the
// migration's SQL, in its transaction, with the store's keyring.
type goStep func(ctx context.Context, tx *sql.Tx, kr *keyring.Keyring) error

// goSteps are the Go steps of migrations, by version.
var goSteps = map[int]goStep{
	3: sealLegacySecrets,
}

// migrations returns the embedded migrations in version order. Versions
// must be unique and positive.
func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		prefix, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: want NNNN_name.sql", name)
		}
		v, err := strconv.Atoi(prefix)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %q: bad version %q", name, prefix)
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %q and %q share version %d", other, name, v)
		}
		seen[v] = name
		body, err := migrationFS.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		ms = append(ms, migration{version: v, name: name, sql: string(body), step: goSteps[v]})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies, in version order, every embedded migration not yet
// recorded in schema_migrations, each in its own transaction together with
// its Go step and its record. It returns the versions it applied (none for
// an up-to-date database). Concurrent openers are safe: the version check
// is repeated inside each IMMEDIATE transaction.
func migrate(ctx context.Context, db *sql.DB, kr *keyring.Keyring, logger *slog.Logger) ([]int, error) {
	return migrateTo(ctx, db, kr, logger, 0)
}

// migrateTo is migrate stopping after version upTo (0: the last), so that
// tests can build a database of an earlier version.
func migrateTo(ctx context.Context, db *sql.DB, kr *keyring.Keyring, logger *slog.Logger, upTo int) ([]int, error) {
	ms, err := migrations()
	if err != nil {
		return nil, err
	}
	if upTo > 0 {
		ms = slices.DeleteFunc(ms, func(m migration) bool { return m.version > upTo })
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    applied_at INTEGER NOT NULL
)`); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []int
	for _, m := range ms {
		did, err := applyMigration(ctx, db, m, kr)
		if err != nil {
			return applied, err
		}
		if did {
			applied = append(applied, m.version)
			logger.Info("applied migration", slog.Int("version", m.version), slog.String("name", m.name))
		}
	}
	return applied, nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration, kr *keyring.Keyring) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&n); err != nil {
		return false, fmt.Errorf("migration %s: check: %w", m.name, err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("migration %s: apply: %w", m.name, err)
	}
	if m.step != nil {
		if err := m.step(ctx, tx, kr); err != nil {
			return false, fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
		m.version, time.Now().UTC().UnixNano()); err != nil {
		return false, fmt.Errorf("migration %s: record: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return true, nil
}

// sealLegacySecrets is the Go step of 0003_sealed_secrets_api_keys: it
// seals every subscription's plaintext secrets (the JSON of the secrets
// column) with kr's current key into secrets_sealed and secrets_key_id,
// then drops the secrets column, so no plaintext is left in any row. It
// runs in the migration's transaction: interrupted, the whole migration
// is rolled back and runs again from its start at the next Open. The
// connection deletes securely meanwhile (secure_delete), so that the
// rewritten rows' old content is zeroed rather than left in free space.
func sealLegacySecrets(ctx context.Context, tx *sql.Tx, kr *keyring.Keyring) error {
	if _, err := tx.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return fmt.Errorf("seal secrets: %w", err)
	}
	type plain struct{ id, secrets string }
	rows, err := tx.QueryContext(ctx, `SELECT id, secrets FROM subscriptions ORDER BY id`)
	if err != nil {
		return fmt.Errorf("seal secrets: read: %w", err)
	}
	var todo []plain
	for rows.Next() {
		var p plain
		if err := rows.Scan(&p.id, &p.secrets); err != nil {
			rows.Close()
			return fmt.Errorf("seal secrets: read: %w", err)
		}
		todo = append(todo, p)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("seal secrets: read: %w", err)
	}
	if len(todo) > 0 && kr == nil {
		return errors.New("seal secrets: no keyring")
	}
	for _, p := range todo {
		secrets, err := rowcodec.DecodeSecrets(p.secrets)
		if err != nil {
			return fmt.Errorf("seal secrets of %s: decode: %w", p.id, err)
		}
		js, err := rowcodec.EncodeSecrets(secrets)
		if err != nil {
			return fmt.Errorf("seal secrets of %s: %w", p.id, err)
		}
		keyID, sealed, err := rowcodec.SealSecrets(kr, p.id, js)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE subscriptions SET secrets_sealed = ?, secrets_key_id = ?, secrets = '' WHERE id = ?`,
			sealed, keyID, p.id); err != nil {
			return fmt.Errorf("seal secrets of %s: %w", p.id, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE subscriptions DROP COLUMN secrets`); err != nil {
		return fmt.Errorf("seal secrets: drop the plaintext column: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `PRAGMA secure_delete = OFF`); err != nil {
		return fmt.Errorf("seal secrets: %w", err)
	}
	return nil
}
