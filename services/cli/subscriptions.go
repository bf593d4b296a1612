package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/hookline/hookline/pkg/retry"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// subscriptionFlags are the settable fields of a subscription, shared by
// `subscriptions create` and `subscriptions update`.
type subscriptionFlags struct {
	url           string
	description   string
	eventTypes    []string
	headers       []string
	timeout       time.Duration
	retrySchedule string
	rateLimit     int
	// sendTraceContext is --send-trace-context: whether deliveries carry
	// the W3C trace context to the endpoint.
	sendTraceContext bool
}

// subscriptionFields maps each flag to the Subscription field it sets, in
// update-mask order.
var subscriptionFields = []struct{ flag, path string }{
	{"url", "url"},
	{"description", "description"},
	{"event-type", "event_types"},
	{"header", "headers"},
	{"timeout", "timeout"},
	{"retry-schedule", "retry_schedule"},
	{"rate-limit", "rate_limit"},
	{"send-trace-context", "send_trace_context"},
}

func addSubscriptionFlags(fs *pflag.FlagSet, f *subscriptionFlags) {
	fs.StringVar(&f.url, "url", "", "endpoint URL receiving the webhooks (http or https)")
	fs.StringVar(&f.description, "description", "", "human-readable description")
	fs.StringSliceVar(&f.eventTypes, "event-type", nil, "event type pattern such as order.* or * (repeatable, or comma-separated)")
	fs.StringArrayVar(&f.headers, "header", nil, "extra HTTP header KEY=VALUE sent with every delivery (repeatable)")
	fs.DurationVar(&f.timeout, "timeout", 0, "per-attempt HTTP timeout of deliveries, such as 15s (unset: server default)")
	fs.StringVar(&f.retrySchedule, "retry-schedule", "", "comma-separated delays between attempts, such as 5s,1m,1h (unset: server default)")
	fs.IntVar(&f.rateLimit, "rate-limit", 0, "maximum attempts per second to the endpoint; 0 is unlimited")
	fs.BoolVar(&f.sendTraceContext, "send-trace-context", false,
		"send each attempt's W3C trace context (traceparent and tracestate headers) to the endpoint; --send-trace-context=false stops it")
}

// subscriptionFromFlags builds a Subscription from the flags that were given
// on the command line, and returns the update-mask paths of those flags.
func subscriptionFromFlags(fs *pflag.FlagSet, f *subscriptionFlags) (*hooklinev1.Subscription, []string, error) {
	s := &hooklinev1.Subscription{}
	var paths []string
	for _, fld := range subscriptionFields {
		if !fs.Changed(fld.flag) {
			continue
		}
		paths = append(paths, fld.path)
		switch fld.flag {
		case "url":
			s.Url = f.url
		case "description":
			s.Description = f.description
		case "event-type":
			for _, t := range f.eventTypes {
				if t = strings.TrimSpace(t); t != "" {
					s.EventTypes = append(s.EventTypes, t)
				}
			}
		case "header":
			h, err := parseKeyValues("header", f.headers)
			if err != nil {
				return nil, nil, err
			}
			s.Headers = h
		case "timeout":
			if f.timeout <= 0 {
				return nil, nil, fmt.Errorf("--timeout %s: must be positive", f.timeout)
			}
			s.Timeout = durationpb.New(f.timeout)
		case "retry-schedule":
			sched, err := retry.ParseSchedule(f.retrySchedule)
			if err != nil {
				return nil, nil, fmt.Errorf("--retry-schedule: %w", err)
			}
			for _, d := range sched {
				s.RetrySchedule = append(s.RetrySchedule, durationpb.New(d))
			}
		case "rate-limit":
			if f.rateLimit < 0 || f.rateLimit > math.MaxInt32 {
				return nil, nil, fmt.Errorf("--rate-limit %d: must be between 0 and %d", f.rateLimit, math.MaxInt32)
			}
			s.RateLimit = int32(f.rateLimit)
		case "send-trace-context":
			s.SendTraceContext = f.sendTraceContext
		}
	}
	return s, paths, nil
}

// buildCreateRequest builds the CreateSubscription request from the parsed
// flags of `subscriptions create`.
func buildCreateRequest(tenant string, fs *pflag.FlagSet, f *subscriptionFlags) (*hooklinev1.CreateSubscriptionRequest, error) {
	s, _, err := subscriptionFromFlags(fs, f)
	if err != nil {
		return nil, err
	}
	if s.GetUrl() == "" {
		return nil, errors.New("--url is required")
	}
	s.Tenant = tenant
	return &hooklinev1.CreateSubscriptionRequest{Subscription: s}, nil
}

// buildUpdateRequest builds the UpdateSubscription request from the parsed
// flags of `subscriptions update`: only the flags given go in the mask.
func buildUpdateRequest(id, tenant string, fs *pflag.FlagSet, f *subscriptionFlags) (*hooklinev1.UpdateSubscriptionRequest, error) {
	s, paths, err := subscriptionFromFlags(fs, f)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		names := make([]string, len(subscriptionFields))
		for i, fld := range subscriptionFields {
			names[i] = "--" + fld.flag
		}
		return nil, fmt.Errorf("nothing to update: give at least one of %s", strings.Join(names, ", "))
	}
	s.Id = id
	s.Tenant = tenant
	return &hooklinev1.UpdateSubscriptionRequest{
		Subscription: s,
		UpdateMask:   &fieldmaskpb.FieldMask{Paths: paths},
	}, nil
}

// newSubscriptionsCommand returns `hookline subscriptions` and its
// subcommands, each built by a helper below.
func newSubscriptionsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subscription", "subs", "sub"},
		Short:   "Create, inspect and manage webhook subscriptions",
	}
	tenant := tenantFlag(cmd)
	get := subscriptionByIDCommand(g, tenant, "get", "Show a subscription", func(ctx context.Context, c *client, id, tenant string) (*hooklinev1.Subscription, error) {
		return c.admin.GetSubscription(ctx, &hooklinev1.GetSubscriptionRequest{Id: id, Tenant: tenant})
	})
	enable := subscriptionByIDCommand(g, tenant, "enable", "Enable a subscription and redrive its parked deliveries", func(ctx context.Context, c *client, id, tenant string) (*hooklinev1.Subscription, error) {
		return c.admin.EnableSubscription(ctx, &hooklinev1.EnableSubscriptionRequest{Id: id, Tenant: tenant})
	})
	cmd.AddCommand(
		newSubscriptionCreateCommand(g, tenant),
		newSubscriptionListCommand(g, tenant),
		get,
		newSubscriptionUpdateCommand(g, tenant),
		newSubscriptionDeleteCommand(g, tenant),
		enable,
		newSubscriptionDisableCommand(g, tenant),
		newSubscriptionRotateCommand(g, tenant),
		newSubscriptionTestCommand(g, tenant),
		newSubscriptionSecretCommand(g, tenant),
	)
	return cmd
}

// subscriptionCall is an admin API call that returns a subscription.
type subscriptionCall func(ctx context.Context, c *client) (*hooklinev1.Subscription, error)

// runSubscriptionCall dials, makes call and prints the subscription it
// returns. When the call fails nothing is printed and its error is
// returned through rpcError (a gRPC status as a *StatusError).
func runSubscriptionCall(g *globals, cmd *cobra.Command, call subscriptionCall) error {
	return g.run(cmd, func(ctx context.Context, c *client) error {
		s, err := call(ctx, c)
		if err != nil {
			return rpcError(err)
		}
		return c.out.object(s, subscriptionLines(s))
	})
}

// subscriptionByIDCommand builds a command "USE ID" that calls fn with the
// ID argument and the tenant, and prints the subscription it returns.
func subscriptionByIDCommand(g *globals, tenant func(*cobra.Command) string, use, short string, fn func(ctx context.Context, c *client, id, tenant string) (*hooklinev1.Subscription, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSubscriptionCall(g, cmd, func(ctx context.Context, c *client) (*hooklinev1.Subscription, error) {
				return fn(ctx, c, args[0], tenant(cmd))
			})
		},
	}
}

// newSubscriptionCreateCommand returns `subscriptions create`; its flags
// are checked before anything is dialled.
func newSubscriptionCreateCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var cf subscriptionFlags
	create := &cobra.Command{
		Use:   "create --tenant T --url URL --event-type PATTERN...",
		Short: "Create a subscription and print its signing secret",
		Long: `Create a subscription. Hookline generates its signing secret, printed here
(and later only by 'hookline subscriptions secret ID', which needs the manage
scope); give it to the receiver, for example to 'hookline listen --secret'.

Note: within this command --timeout is the per-attempt HTTP timeout of the
subscription, not the deadline of the API call.`,
		Example: `  hookline subscriptions create --tenant acme --url https://example.com/hooks \
      --event-type 'order.*' --event-type invoice.paid --retry-schedule 5s,1m,10m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := buildCreateRequest(tenant(cmd), cmd.Flags(), &cf)
			if err != nil {
				return err
			}
			return runSubscriptionCall(g, cmd, func(ctx context.Context, c *client) (*hooklinev1.Subscription, error) {
				return c.admin.CreateSubscription(ctx, req)
			})
		},
	}
	addSubscriptionFlags(create.Flags(), &cf)
	return create
}

// newSubscriptionUpdateCommand returns `subscriptions update`; only the
// flags given go in the update mask, and they are checked before anything
// is dialled.
func newSubscriptionUpdateCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var uf subscriptionFlags
	update := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change a subscription; only the flags given are changed",
		Long: `Change a subscription. Only the fields whose flags are given are changed
(they form the update mask); --header and --event-type replace the whole list.
--retry-schedule '' restores the server's default schedule, and
--send-trace-context=false stops sending the trace context.

Note: within this command --timeout is the per-attempt HTTP timeout of the
subscription, not the deadline of the API call.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := buildUpdateRequest(args[0], tenant(cmd), cmd.Flags(), &uf)
			if err != nil {
				return err
			}
			return runSubscriptionCall(g, cmd, func(ctx context.Context, c *client) (*hooklinev1.Subscription, error) {
				return c.admin.UpdateSubscription(ctx, req)
			})
		},
	}
	addSubscriptionFlags(update.Flags(), &uf)
	return update
}

// newSubscriptionListCommand returns `subscriptions list`, filtered by
// --state and paged by the list flags.
func newSubscriptionListCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var lf listFlags
	var state string
	listCmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List subscriptions",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := parseEnum("state", state, subscriptionStatePrefix, hooklinev1.SubscriptionState_value)
			if err != nil {
				return err
			}
			return g.run(cmd, func(ctx context.Context, c *client) error {
				return list(ctx, c, &lf, subscriptionHeader, subscriptionRow,
					func(ctx context.Context, size int32, token string) ([]*hooklinev1.Subscription, string, error) {
						resp, err := c.admin.ListSubscriptions(ctx, &hooklinev1.ListSubscriptionsRequest{
							Tenant:    tenant(cmd),
							State:     hooklinev1.SubscriptionState(st),
							PageSize:  size,
							PageToken: token,
						})
						return resp.GetSubscriptions(), resp.GetNextPageToken(), err
					})
			})
		},
	}
	listCmd.Flags().StringVar(&state, "state", "", "only subscriptions in this state: enabled or disabled")
	addListFlags(listCmd.Flags(), &lf)
	return listCmd
}

// newSubscriptionDisableCommand returns `subscriptions disable ID`, with
// its optional --reason.
func newSubscriptionDisableCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var reason string
	disable := subscriptionByIDCommand(g, tenant, "disable", "Disable a subscription; new deliveries are parked", func(ctx context.Context, c *client, id, tenant string) (*hooklinev1.Subscription, error) {
		return c.admin.DisableSubscription(ctx, &hooklinev1.DisableSubscriptionRequest{Id: id, Tenant: tenant, Reason: reason})
	})
	disable.Flags().StringVar(&reason, "reason", "", "why the subscription is disabled")
	return disable
}

// newSubscriptionRotateCommand returns `subscriptions rotate-secret ID`.
// --previous-ttl is sent only when given, and a negative one is refused
// before anything is dialled.
func newSubscriptionRotateCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var previousTTL time.Duration
	var previousTTLSet bool
	rotate := subscriptionByIDCommand(g, tenant, "rotate-secret", "Generate a new signing secret", func(ctx context.Context, c *client, id, tenant string) (*hooklinev1.Subscription, error) {
		req := &hooklinev1.RotateSubscriptionSecretRequest{Id: id, Tenant: tenant}
		if previousTTLSet {
			req.PreviousSecretTtl = durationpb.New(previousTTL)
		}
		return c.admin.RotateSubscriptionSecret(ctx, req)
	})
	rotate.Long = `Generate a new signing secret. The previous secret keeps signing requests
for --previous-ttl (0 expires it immediately; unset uses the server's default
grace period), so receivers can accept both while they switch over.`
	rotate.Flags().DurationVar(&previousTTL, "previous-ttl", 0, "how long the previous secret keeps signing, such as 24h (default: server's grace period)")
	rotate.PreRunE = func(cmd *cobra.Command, _ []string) error {
		previousTTLSet = cmd.Flags().Changed("previous-ttl")
		if previousTTL < 0 {
			return fmt.Errorf("--previous-ttl %s: must not be negative", previousTTL)
		}
		return nil
	}
	return rotate
}

// newSubscriptionDeleteCommand returns `subscriptions delete ID`, which
// prints the response in JSON mode and a confirmation line otherwise.
func newSubscriptionDeleteCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID",
		Aliases: []string{"rm"},
		Short:   "Delete a subscription",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.admin.DeleteSubscription(ctx, &hooklinev1.DeleteSubscriptionRequest{Id: args[0], Tenant: tenant(cmd)})
				if err != nil {
					return rpcError(err)
				}
				if c.out.json {
					return c.out.jsonLine(resp)
				}
				_, err = fmt.Fprintf(c.out.w, "deleted subscription %s\n", args[0])
				return err
			})
		},
	}
}

// newSubscriptionTestCommand returns `subscriptions test ID`; --data is
// read before anything is dialled.
func newSubscriptionTestCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	var testType, testData string
	test := &cobra.Command{
		Use:   "test ID",
		Short: "Send a test event to one subscription",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			payload, err := readData(cmd, "data", testData)
			if err != nil {
				return err
			}
			return g.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.admin.SendTestEvent(ctx, &hooklinev1.SendTestEventRequest{
					Id: args[0], Tenant: tenant(cmd), EventType: testType, Payload: payload,
				})
				if err != nil {
					return rpcError(err)
				}
				return c.out.object(resp, []kv{
					{"event id", resp.GetEventId()},
					{"delivery id", resp.GetDeliveryId()},
				})
			})
		},
	}
	test.Flags().StringVar(&testType, "type", "", "event type of the test event (default hookline.test)")
	test.Flags().StringVar(&testData, "data", "", "JSON payload, @FILE or @- (default: generated)")
	return test
}

// newSubscriptionSecretCommand returns `subscriptions secret ID`, which
// prints the values of the subscription's active signing secrets.
func newSubscriptionSecretCommand(g *globals, tenant func(*cobra.Command) string) *cobra.Command {
	return &cobra.Command{
		Use:   "secret ID",
		Short: "Print the subscription's active signing secrets (needs the manage scope)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.admin.GetSubscriptionSecret(ctx, &hooklinev1.GetSubscriptionSecretRequest{Id: args[0], Tenant: tenant(cmd)})
				if err != nil {
					return rpcError(err)
				}
				if c.out.json {
					return c.out.jsonLine(resp)
				}
				var lines []kv
				for i, sec := range resp.GetSecrets() {
					label, v := "signing secret", sec.GetValue()
					if i > 0 {
						label = "previous secret"
					}
					if sec.GetExpireTime() != nil {
						v += " (expires " + fmtTime(sec.GetExpireTime()) + ")"
					}
					lines = append(lines, kv{label, v})
				}
				return c.out.fields(lines)
			})
		},
	}
}
