package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/apikey"
)

// newKeysCommand returns `hookline keys`: issue, list and revoke API keys,
// and make an operator key for the configuration.
func newKeysCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "keys",
		Aliases: []string{"key"},
		Short:   "Issue, list and revoke API keys",
		Long: `API keys authenticate calls to the Hookline API. Each is bound to a tenant and
to scopes: publish (publish events), read (get and list), manage (read, plus
changing subscriptions, redelivering, reading signing secrets and issuing keys
of its tenant) and operator (everything, for every tenant). A key is shown once,
when created; Hookline keeps only its hash. Send it as --api-key or
$HOOKLINE_API_KEY.`,
	}
	tenant := tenantFlag(cmd)
	cmd.AddCommand(
		newKeysCreateCommand(g, tenant),
		newKeysListCommand(g, tenant),
		newKeysRevokeCommand(g, tenant),
		newKeysNewOperatorCommand(),
	)
	return cmd
}

func newKeysCreateCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var scopes []string
	var name string
	var expiresIn time.Duration
	create := &cobra.Command{
		Use:   "create --tenant T --scope publish,read [--name N] [--expires-in 2160h]",
		Short: "Issue an API key and print it, once",
		Example: `  hookline keys create --tenant acme --scope publish --name checkout-service
  hookline keys create --tenant acme --scope manage --expires-in 720h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if expiresIn < 0 {
				return fmt.Errorf("--expires-in %s: must not be negative", expiresIn)
			}
			if _, err := apikey.ParseScopes(scopes); err != nil {
				return fmt.Errorf("--scope: %w", err)
			}
			req := &hooklinev1.CreateAPIKeyRequest{Tenant: tenant(cmd), Name: name, Scopes: scopes}
			if expiresIn > 0 {
				req.ExpireTime = timestamppb.New(time.Now().Add(expiresIn))
			}
			return g.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.admin.CreateAPIKey(ctx, req)
				if err != nil {
					return rpcError(err)
				}
				if c.out.json {
					return c.out.jsonLine(resp)
				}
				lines := append(apiKeyLines(resp.GetApiKey()), kv{"key", resp.GetKey()})
				if err := c.out.fields(lines); err != nil {
					return err
				}
				fmt.Fprintln(c.out.errw, "The key is shown this once: store it now (for example as HOOKLINE_API_KEY).")
				return nil
			})
		},
	}
	create.Flags().StringSliceVar(&scopes, "scope", nil, "scopes of the key: publish, read, manage, or operator alone (comma-separated or repeated)")
	create.Flags().StringVar(&name, "name", "", "what the key is for, shown in keys list")
	create.Flags().DurationVar(&expiresIn, "expires-in", 0, "the key stops working after this long, such as 2160h (0: never)")
	return create
}

var apiKeyHeader = []string{"ID", "TENANT", "NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "REVOKED"}

func apiKeyRow(k *hooklinev1.APIKey) []string {
	return []string{
		k.GetId(), orDash(k.GetTenant()), orDash(k.GetName()), strings.Join(k.GetScopes(), ","),
		fmtTime(k.GetCreateTime()), fmtTime(k.GetExpireTime()), fmtTime(k.GetLastUsedTime()), fmtTime(k.GetRevokeTime()),
	}
}

func apiKeyLines(k *hooklinev1.APIKey) []kv {
	return []kv{
		{"id", k.GetId()},
		{"tenant", orDash(k.GetTenant())},
		{"name", orDash(k.GetName())},
		{"scopes", strings.Join(k.GetScopes(), ", ")},
		{"created", fmtTime(k.GetCreateTime())},
		{"expires", fmtTime(k.GetExpireTime())},
		{"last used", fmtTime(k.GetLastUsedTime())},
		{"revoked", fmtTime(k.GetRevokeTime())},
	}
}

func newKeysListCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var lf listFlags
	var revoked bool
	listCmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List API keys by their public prefix (never the keys themselves)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				return list(ctx, c, &lf, apiKeyHeader, apiKeyRow,
					func(ctx context.Context, size int32, token string) ([]*hooklinev1.APIKey, string, error) {
						resp, err := c.admin.ListAPIKeys(ctx, &hooklinev1.ListAPIKeysRequest{
							Tenant: tenant(cmd), IncludeRevoked: revoked, PageSize: size, PageToken: token,
						})
						return resp.GetApiKeys(), resp.GetNextPageToken(), err
					})
			})
		},
	}
	listCmd.Flags().BoolVar(&revoked, "include-revoked", false, "also list revoked keys")
	addListFlags(listCmd.Flags(), &lf)
	return listCmd
}

func newKeysRevokeCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API key (by its hk_ prefix); it stops working within seconds on every replica",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				k, err := c.admin.RevokeAPIKey(ctx, &hooklinev1.RevokeAPIKeyRequest{Id: args[0], Tenant: tenant(cmd)})
				if err != nil {
					return rpcError(err)
				}
				return c.out.object(k, apiKeyLines(k))
			})
		},
	}
}

// newKeysNewOperatorCommand returns `keys new-operator`, which makes an
// operator key offline: the key for the operator to keep and the hash for
// the services' configuration, so that the configuration never holds the
// key itself.
func newKeysNewOperatorCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "new-operator",
		Short: "Make an operator key for --ingest-operator-keys (offline: nothing is stored)",
		Long: `Make an operator key without calling the API: it prints the key, to keep in a
secret manager, and its hash, to put into the ingest service's configuration
(--ingest-operator-keys, $HOOKLINE_INGEST_OPERATOR_KEYS or the file of
--ingest-operator-keys-file). The configuration then never holds the key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key, _, err := apikey.Generate()
			if err != nil {
				return err
			}
			p, err := newPrinter(cmd, outputText)
			if err != nil {
				return err
			}
			return p.fields([]kv{{"key", key}, {"config", apikey.HashString(key)}})
		},
	}
}
