package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/timestamppb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// parseTimeFlag accepts an RFC 3339 time or a duration meaning "that long
// before now" (such as 2h). The empty string is unset (nil).
func parseTimeFlag(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return nil, fmt.Errorf("--%s %s: duration must not be negative", flag, v)
		}
		return timestamppb.New(now.Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: want an RFC 3339 time or a duration such as 2h: %w", flag, v, err)
	}
	return timestamppb.New(t), nil
}

// deliveryFilter holds the filter flags of `deliveries list`.
type deliveryFilter struct {
	subscription, event, status, after, before string
}

// addFlags adds the filter flags to fs.
func (f *deliveryFilter) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.subscription, "subscription", "", "only deliveries to this subscription id")
	fs.StringVar(&f.event, "event", "", "only deliveries of this event id")
	fs.StringVar(&f.status, "status", "", "only deliveries with this status: pending, succeeded, retrying, parked or dead")
	fs.StringVar(&f.after, "created-after", "", "only deliveries created at or after this time (RFC 3339, or a duration ago such as 2h)")
	fs.StringVar(&f.before, "created-before", "", "only deliveries created before this time (RFC 3339, or a duration ago)")
}

// request checks the filter flags, reading durations as that long before
// now, and returns the ListDeliveries request of tenant they describe; the
// paging fields are left for the caller.
func (f *deliveryFilter) request(tenant string, now time.Time) (*hooklinev1.ListDeliveriesRequest, error) {
	st, err := parseEnum("status", f.status, deliveryStatusPrefix, hooklinev1.DeliveryStatus_value)
	if err != nil {
		return nil, err
	}
	from, err := parseTimeFlag("created-after", f.after, now)
	if err != nil {
		return nil, err
	}
	to, err := parseTimeFlag("created-before", f.before, now)
	if err != nil {
		return nil, err
	}
	return &hooklinev1.ListDeliveriesRequest{
		Tenant:         tenant,
		SubscriptionId: f.subscription,
		EventId:        f.event,
		Status:         hooklinev1.DeliveryStatus(st),
		CreatedAfter:   from,
		CreatedBefore:  to,
	}, nil
}

// newDeliveriesCommand returns `hookline deliveries` with its list and get
// subcommands.
func newDeliveriesCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "deliveries",
		Aliases: []string{"delivery"},
		Short:   "Inspect deliveries (one event to one subscription)",
	}
	tenant := tenantFlag(cmd)

	var lf listFlags
	var filter deliveryFilter
	listCmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List deliveries, newest first",
		Example: `  hookline deliveries list --tenant acme --status retrying
  hookline deliveries list --tenant acme --subscription sub_123 --created-after 1h --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := filter.request(tenant(cmd), time.Now())
			if err != nil {
				return err
			}
			return g.run(cmd, func(ctx context.Context, c *client) error {
				return list(ctx, c, &lf, deliveryHeader, deliveryRow,
					func(ctx context.Context, size int32, token string) ([]*hooklinev1.Delivery, string, error) {
						req.PageSize, req.PageToken = size, token
						resp, err := c.admin.ListDeliveries(ctx, req)
						return resp.GetDeliveries(), resp.GetNextPageToken(), err
					})
			})
		},
	}
	fl := listCmd.Flags()
	filter.addFlags(fl)
	addListFlags(fl, &lf)

	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show a delivery",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				d, err := c.admin.GetDelivery(ctx, &hooklinev1.GetDeliveryRequest{Id: args[0], Tenant: tenant(cmd)})
				if err != nil {
					return rpcError(err)
				}
				return c.out.object(d, deliveryLines(d))
			})
		},
	}
	cmd.AddCommand(listCmd, get)
	return cmd
}

func newAttemptsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "attempts",
		Aliases: []string{"attempt"},
		Short:   "Inspect delivery attempts (HTTP requests made)",
	}
	tenant := tenantFlag(cmd)

	var lf listFlags
	var delivery, subscription, event string
	listCmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List attempts, newest first",
		Long: `List attempts, newest first. TRACE is the trace id of the attempt's span,
to look it up in the tracing system; "-" when the attempt was not traced.`,
		Example: `  hookline attempts list --tenant acme --delivery dlv_123`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				return list(ctx, c, &lf, attemptHeader, attemptRow,
					func(ctx context.Context, size int32, token string) ([]*hooklinev1.Attempt, string, error) {
						resp, err := c.admin.ListAttempts(ctx, &hooklinev1.ListAttemptsRequest{
							Tenant:         tenant(cmd),
							DeliveryId:     delivery,
							SubscriptionId: subscription,
							EventId:        event,
							PageSize:       size,
							PageToken:      token,
						})
						return resp.GetAttempts(), resp.GetNextPageToken(), err
					})
			})
		},
	}
	fl := listCmd.Flags()
	fl.StringVar(&delivery, "delivery", "", "only attempts of this delivery id")
	fl.StringVar(&subscription, "subscription", "", "only attempts to this subscription id")
	fl.StringVar(&event, "event", "", "only attempts delivering this event id")
	addListFlags(fl, &lf)
	cmd.AddCommand(listCmd)
	return cmd
}

func newRedeliverCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "redeliver DELIVERY_ID",
		Short: "Send a delivery again now, whatever its status",
		Long: `Schedule a new attempt of a delivery now, whatever its status (including
dead-lettered deliveries). The delivery keeps its id, so the receiver sees the
same webhook-id.`,
		Args: cobra.ExactArgs(1),
	}
	tenant := tenantFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return g.run(cmd, func(ctx context.Context, c *client) error {
			d, err := c.admin.Redeliver(ctx, &hooklinev1.RedeliverRequest{DeliveryId: args[0], Tenant: tenant(cmd)})
			if err != nil {
				return rpcError(err)
			}
			return c.out.object(d, deliveryLines(d))
		})
	}
	return cmd
}

func newEventsCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "events",
		Aliases: []string{"event"},
		Short:   "Inspect accepted events",
	}
	tenant := tenantFlag(cmd)
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an event and its payload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.run(cmd, func(ctx context.Context, c *client) error {
				e, err := c.admin.GetEvent(ctx, &hooklinev1.GetEventRequest{Id: args[0], Tenant: tenant(cmd)})
				if err != nil {
					return rpcError(err)
				}
				return c.out.object(e, eventLines(e))
			})
		},
	}
	cmd.AddCommand(get)
	return cmd
}
