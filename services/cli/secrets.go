package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

// reencryptBatch is how many subscriptions one reencrypt step re-seals.
const reencryptBatch = 500

// newSecretsCommand returns `hookline secrets`: the keys that seal the
// subscriptions' signing secrets in the store.
func newSecretsCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secrets",
		Short: "Manage the keys that seal signing secrets in the store",
		Long: `The store holds every subscription's signing secrets sealed with AES-256-GCM
under a keyring (--secret-keys-file or --secret-keys, given to every service):
the first key seals new writes, the others only open what they sealed.

To rotate: make a key (secrets new-key), put it first in the keyring of every
service and restart them; run 'hookline secrets reencrypt' to move the stored
secrets to it; then drop the old key. A service refuses to start while a
secret is sealed with a key its keyring lacks.`,
	}
	cmd.AddCommand(newSecretsReencryptCommand(lookupEnv), newSecretsNewKeyCommand())
	return cmd
}

func newSecretsNewKeyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "new-key ID",
		Short: "Print a new keyring entry (id:base64 of 32 random bytes); nothing is stored",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			entry, err := keyring.Generate(args[0])
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), entry)
			return err
		},
	}
}

func newSecretsReencryptCommand(lookupEnv func(string) (string, bool)) *cobra.Command {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	var storeFlag, logLevel string
	var keys bootstrap.SecretKeys
	cmd := &cobra.Command{
		Use:   "reencrypt",
		Short: "Seal every stored signing secret with the keyring's first key",
		Long: `reencrypt seals again, with the first key of the keyring, every subscription's
signing secrets sealed with another key, in batches, and prints how many it
moved. It is safe to run while the services run, and to run again: rows sealed
with the first key already are left alone.`,
		Example: `  hookline secrets reencrypt --store "$HOOKLINE_STORE" --secret-keys-file /etc/hookline/secret-keys`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.ApplyEnv(cmd.LocalFlags(), lookupEnv); err != nil {
				return err
			}
			loc, storeErr := bootstrap.ParseStoreLocation(storeFlag)
			ring, keysErr := cliKeyring(&keys, loc)
			_, levelErr := newLogger(io.Discard, logLevel, "text")
			if err := errors.Join(storeErr, keysErr, levelErr); err != nil {
				return err
			}
			logger, _ := newLogger(cmd.ErrOrStderr(), logLevel, "text")
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			st, err := openCLIStore(ctx, loc, ring, logger)
			if err != nil {
				return err
			}
			defer st.Close()
			total := 0
			for {
				n, err := st.ReencryptSecrets(ctx, reencryptBatch)
				total += n
				if err != nil {
					return fmt.Errorf("reencrypt after %d subscriptions: %w", total, err)
				}
				if n == 0 {
					break
				}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "re-sealed the secrets of %d subscriptions with key %q\n", total, ring.Current())
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&storeFlag, "store", "", migrateStoreUsage)
	keys.RegisterFlags(fs)
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	config.AnnotateUsage(fs)
	return cmd
}

// openCLIStore opens the store at loc for a maintenance command, without
// migrating a postgres store (an outdated schema is an error).
func openCLIStore(ctx context.Context, loc bootstrap.StoreLocation, ring *keyring.Keyring, logger *slog.Logger) (store.Store, error) {
	switch loc.Kind {
	case bootstrap.StoreSQLite:
		st, err := sqlite.Open(ctx, loc.Path, sqlite.Options{Keyring: ring}, logger)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", loc, err)
		}
		return st, nil
	case bootstrap.StorePostgres:
		st, err := crdb.Open(ctx, loc.URL, crdb.Options{Keyring: ring}, logger)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", loc, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("open %s: unknown kind of store", loc)
}
