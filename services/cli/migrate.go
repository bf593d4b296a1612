package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

// migrateStoreUsage is the help text of migrate's --store, which takes a
// SQLite file besides a service binary's postgres URL.
const migrateStoreUsage = "where the store is: postgres://USER@HOST:PORT/DB?sslmode=... (or postgresql://) " +
	"for CockroachDB or PostgreSQL, or sqlite:PATH for the SQLite file of hookline dev (migrates on open)"

// newMigrateCommand returns `hookline migrate`: bring the store's schema up
// to date. lookupEnv reads the HOOKLINE_* variables (os.LookupEnv when nil).
func newMigrateCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	var store, logLevel, logFormat string
	var keys bootstrap.SecretKeys
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the store's pending schema migrations",
		Long: `migrate brings the schema of the store named by --store (or $HOOKLINE_STORE) up
to date and prints the versions it applied.

For a postgres:// or postgresql:// URL (CockroachDB, or PostgreSQL) it applies
every pending migration under the migration lease, so concurrent runs are safe.
Run it before starting or upgrading the service binaries, for example as a
Kubernetes Job: they do not migrate by default (--store-migrate) and refuse to
start on an outdated schema.

For sqlite:PATH (the store of hookline dev; the service binaries do not take
it) it opens the SQLite file, which applies its migrations whenever it is
opened; nothing else is needed.

Sealing signing secrets still stored in plaintext (a store from before secrets
were encrypted) needs the keys: --secret-keys-file or --secret-keys, as the
services get them; without them migrate fails if such secrets exist. For
sqlite:PATH they default to the secret-keys file beside it, which hookline dev
makes.

migrate runs until it is done or interrupted; it exits with status 1 on failure.`,
		Example: `  hookline migrate --store 'postgresql://root@localhost:26257/hookline?sslmode=disable'
  HOOKLINE_STORE=sqlite:.hookline/hookline.db hookline migrate`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.ApplyEnv(cmd.LocalFlags(), lookupEnv); err != nil {
				return err
			}
			loc, storeErr := bootstrap.ParseStoreLocation(store)
			var ring *keyring.Keyring
			var keysErr error
			if keys.Keys != "" || keys.File != "" || loc.Kind == bootstrap.StoreSQLite {
				ring, keysErr = cliKeyring(&keys, loc) // a postgres schema migrates without: keys are needed only to seal plaintext secrets
			}
			// newLogger stops at the first bad flag; check each on its own
			// so that every error is reported.
			_, levelErr := newLogger(io.Discard, logLevel, "text")
			_, formatErr := newLogger(io.Discard, "info", logFormat)
			if err := errors.Join(storeErr, keysErr, levelErr, formatErr); err != nil {
				return err
			}
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return err
			}
			return runMigrate(cmd.Context(), cmd.OutOrStdout(), loc, ring, logger)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&store, "store", "", migrateStoreUsage)
	keys.RegisterFlags(fs)
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	config.AnnotateUsage(fs)
	return cmd
}

// runMigrate migrates the store at loc and reports what it did on w.
func runMigrate(ctx context.Context, w io.Writer, loc bootstrap.StoreLocation, ring *keyring.Keyring, logger *slog.Logger) error {
	if ctx == nil {
		ctx = context.Background()
	}
	switch loc.Kind {
	case bootstrap.StoreSQLite:
		// Opening a SQLite store migrates it. The cli package links SQLite
		// anyway (hookline dev); the service binaries, built on bootstrap,
		// do not.
		st, err := sqlite.Open(ctx, loc.Path, sqlite.Options{Keyring: ring}, logger)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", loc, err)
		}
		if err := st.Close(); err != nil {
			return fmt.Errorf("migrate %s: close: %w", loc, err)
		}
		fmt.Fprintf(w, "%s: schema up to date (the SQLite store applies its migrations whenever it is opened)\n", loc)
		return nil
	case bootstrap.StorePostgres:
		applied, err := crdb.MigrateWith(ctx, loc.URL, crdb.Options{Keyring: ring}, logger)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", loc, err)
		}
		printMigrated(w, applied)
		return nil
	}
	return fmt.Errorf("migrate %s: unknown kind of store", loc)
}

// printMigrated reports the applied versions, with their names when the
// embedded migrations know them.
func printMigrated(w io.Writer, applied []int) {
	names := map[int]string{}
	latest := 0
	if ms, err := crdb.Migrations(crdb.DialectCockroach); err == nil {
		for _, m := range ms {
			names[m.Version] = m.Name
			latest = max(latest, m.Version)
		}
	}
	if len(applied) == 0 {
		if latest > 0 {
			fmt.Fprintf(w, "schema up to date at version %d\n", latest)
		} else {
			fmt.Fprintln(w, "schema up to date")
		}
		return
	}
	applied = slices.Sorted(slices.Values(applied))
	for _, v := range applied {
		if name := names[v]; name != "" {
			fmt.Fprintf(w, "applied migration %d (%s)\n", v, name)
		} else {
			fmt.Fprintf(w, "applied migration %d\n", v)
		}
	}
	fmt.Fprintf(w, "schema up to date at version %d\n", applied[len(applied)-1])
}

// cliKeyring loads the keyring given by keys; for a SQLite store without
// one it falls back to the secret-keys file beside the database, as
// hookline dev makes it.
func cliKeyring(keys *bootstrap.SecretKeys, loc bootstrap.StoreLocation) (*keyring.Keyring, error) {
	if keys.Keys == "" && keys.File == "" && loc.Kind == bootstrap.StoreSQLite {
		k, err := keyring.Load(filepath.Join(filepath.Dir(loc.Path), devserver.SecretKeysFileName))
		if err != nil {
			return nil, fmt.Errorf("--secret-keys-file not given, and the default beside the SQLite file: %w", err)
		}
		return k, nil
	}
	return keys.Load()
}
