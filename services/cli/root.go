// Package cli implements the `hookline` command-line tool: a gRPC client of
// the ingest and admin APIs (publish, subscriptions, deliveries, attempts,
// redeliver, events), a local webhook receiver for development (listen), the
// all-in-one development server (dev), and the store's schema migrations
// (migrate).
package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/tlsfiles"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// Environment variables that supply defaults for flags.
const (
	EnvServer = "HOOKLINE_SERVER"
	EnvAPIKey = "HOOKLINE_API_KEY"
	// EnvToken is the variable of releases before API keys; EnvAPIKey wins.
	EnvToken  = "HOOKLINE_TOKEN"
	EnvTenant = "HOOKLINE_TENANT"
)

// DefaultServer is the gRPC address used when neither --server nor
// HOOKLINE_SERVER is set.
const DefaultServer = "127.0.0.1:7070"

// defaultRPCTimeout bounds one client command, pagination included.
const defaultRPCTimeout = 30 * time.Second

// Output formats accepted by --output.
const (
	outputText = "text"
	outputJSON = "json"
)

// globals holds the persistent flags of the root command. A fresh value is
// made by every NewRoot, so several roots can run concurrently.
type globals struct {
	server   string
	token    string
	output   string
	timeout  time.Duration
	tls      bool
	caFile   string
	certFile string
	keyFile  string
}

// NewRoot returns the root `hookline` command with every subcommand
// attached. Errors are returned, not printed: the caller prints them (see
// cmd/hookline) and sets the exit status.
func NewRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "hookline",
		Short: "Hookline webhook delivery platform",
		Long: `hookline is the command-line tool of Hookline, a webhook delivery platform: it
publishes events and manages subscriptions, deliveries and attempts through the
gRPC ingest and admin APIs (--server, default 127.0.0.1:7070 or $HOOKLINE_SERVER,
authenticated with --api-key or $HOOKLINE_API_KEY), runs a local webhook receiver that
verifies Standard Webhooks signatures (listen), runs the whole platform in one
process for development (dev), and applies the store's schema migrations
(migrate).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", DefaultServer, "gRPC address of the Hookline ingest/admin API (env "+EnvServer+")")
	pf.StringVar(&g.token, "api-key", "", "API key sent as the bearer credentials of every call (env "+EnvAPIKey+", or "+EnvToken+")")
	pf.StringVar(&g.token, "token", "", "deprecated alias of --api-key")
	_ = pf.MarkHidden("token")
	pf.StringVarP(&g.output, "output", "o", outputText, "output format: text or json (protojson, one object per line)")
	pf.DurationVar(&g.timeout, "timeout", defaultRPCTimeout, "deadline of the whole command's API calls; 0 for none")
	pf.BoolVar(&g.tls, "tls", false, "connect with TLS (implied by --ca-file, --cert-file)")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM CA bundle to verify the server with (TLS)")
	pf.StringVar(&g.certFile, "cert-file", "", "PEM client certificate for mutual TLS")
	pf.StringVar(&g.keyFile, "key-file", "", "PEM client key for mutual TLS")

	root.AddCommand(
		newDevCommand(),
		newListenCommand(),
		newMigrateCommand(nil),
		newPublishCommand(g),
		newSubscriptionsCommand(g),
		newDeliveriesCommand(g),
		newAttemptsCommand(g),
		newRedeliverCommand(g),
		newEventsCommand(g),
		newKeysCommand(g),
		newSecretsCommand(nil),
	)
	return root
}

// flagOrEnv returns the flag's value unless the flag was left at its default
// and env is set, in which case the environment wins.
func flagOrEnv(cmd *cobra.Command, name, value, env string) string {
	if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
		return value
	}
	if v, ok := os.LookupEnv(env); ok && v != "" {
		return v
	}
	return value
}

// client is a connection to the Hookline API plus the settings of one
// command invocation.
type client struct {
	conn   *grpc.ClientConn
	admin  hooklinev1.AdminServiceClient
	ingest hooklinev1.IngestServiceClient
	out    *printer
}

// bearer attaches "authorization: Bearer <token>" to every call.
type bearer struct {
	token string
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials. Tokens
// are allowed over plaintext so that local development servers work.
func (b bearer) RequireTransportSecurity() bool { return false }

// dial validates the global flags and connects to the API. The returned
// context carries --timeout; call the cancel function and client.close when
// done.
func (g *globals) dial(cmd *cobra.Command) (*client, context.Context, context.CancelFunc, error) {
	p, err := newPrinter(cmd, g.output)
	if err != nil {
		return nil, nil, nil, err
	}
	server := flagOrEnv(cmd, "server", g.server, EnvServer)
	token := g.token
	if !cmd.Flags().Changed("api-key") && !cmd.Flags().Changed("token") {
		token = cmp.Or(os.Getenv(EnvAPIKey), os.Getenv(EnvToken))
	}
	if server == "" {
		return nil, nil, nil, errors.New("--server must not be empty")
	}

	var creds credentials.TransportCredentials
	secure := g.tls || g.caFile != "" || g.certFile != "" || g.keyFile != ""
	if secure {
		cfg, err := g.tlsConfig()
		if err != nil {
			return nil, nil, nil, err
		}
		creds = credentials.NewTLS(cfg)
	} else {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{token: token}))
	}
	conn, err := grpc.NewClient(server, opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connecting to %s: %w", server, err)
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	var cancel context.CancelFunc
	if g.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, g.timeout)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	c := &client{
		conn:   conn,
		admin:  hooklinev1.NewAdminServiceClient(conn),
		ingest: hooklinev1.NewIngestServiceClient(conn),
		out:    p,
	}
	return c, ctx, cancel, nil
}

// tlsConfig is the client TLS configuration of the global flags.
func (g *globals) tlsConfig() (*tls.Config, error) {
	c := tlsfiles.ClientConfig{CAFile: g.caFile, CertFile: g.certFile, KeyFile: g.keyFile}
	if err := c.Validate(""); err != nil {
		return nil, err
	}
	return c.TLSConfig()
}

// run dials, calls fn and closes the connection. fn's gRPC errors are
// turned into "Code: message" errors.
func (g *globals) run(cmd *cobra.Command, fn func(ctx context.Context, c *client) error) error {
	c, ctx, cancel, err := g.dial(cmd)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.conn.Close()
	return fn(ctx, c)
}

// StatusError is a gRPC error as the CLI reports it: "Code: message", for
// example "InvalidArgument: subscription.url: scheme \"ftp\" is not http or
// https". status.FromError and status.Code still see the original status.
type StatusError struct {
	st *status.Status
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: %s", e.st.Code(), e.st.Message())
}

// GRPCStatus returns the status the server sent.
func (e *StatusError) GRPCStatus() *status.Status { return e.st }

// rpcError converts an error returned by a gRPC call into a *StatusError;
// non-status errors are returned unchanged.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	if st, ok := status.FromError(err); ok {
		return &StatusError{st: st}
	}
	return err
}

// tenantFlag adds a persistent --tenant flag to cmd, defaulting to
// $HOOKLINE_TENANT, and returns a function that reads it.
func tenantFlag(cmd *cobra.Command) func(*cobra.Command) string {
	var tenant string
	cmd.PersistentFlags().StringVar(&tenant, "tenant", "", "tenant that owns the resources (env "+EnvTenant+")")
	return func(c *cobra.Command) string {
		return flagOrEnv(c, "tenant", tenant, EnvTenant)
	}
}
