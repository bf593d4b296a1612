package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// publishFlags are the flags of `hookline publish`.
type publishFlags struct {
	tenant         string
	eventType      string
	data           string
	idempotencyKey string
	labels         []string
	occurredAt     string
}

func newPublishCommand(g *globals) *cobra.Command {
	var f publishFlags
	cmd := &cobra.Command{
		Use:   "publish --tenant T --type TYPE --data JSON",
		Short: "Publish one event",
		Long: `Publish one event to the ingest API and print its id and whether the
idempotency key had already been used (duplicate).

--data takes the JSON payload inline, @FILE to read it from a file, or @- to
read it from standard input.`,
		Example: `  hookline publish --tenant acme --type order.created --data '{"id":1}'
  hookline publish --tenant acme --type order.created --data @order.json --idempotency-key order-1 --label region=eu`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := buildPublishRequest(cmd, f)
			if err != nil {
				return err
			}
			return g.run(cmd, func(ctx context.Context, c *client) error {
				resp, err := c.ingest.Publish(ctx, req)
				if err != nil {
					return rpcError(err)
				}
				return c.out.object(resp, []kv{
					{"event id", resp.GetEventId()},
					{"duplicate", strconv.FormatBool(resp.GetDuplicate())},
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.tenant, "tenant", "", "tenant publishing the event (env "+EnvTenant+")")
	fl.StringVar(&f.eventType, "type", "", "event type, such as order.created")
	fl.StringVar(&f.data, "data", "", "JSON payload, @FILE or @- (standard input)")
	fl.StringVar(&f.idempotencyKey, "idempotency-key", "", "idempotency key; publishing again with it returns the first event id")
	fl.StringArrayVar(&f.labels, "label", nil, "label KEY=VALUE (repeatable)")
	fl.StringVar(&f.occurredAt, "occurred-at", "", "time the event happened (RFC 3339); defaults to the receive time")
	return cmd
}

// buildPublishRequest turns the publish flags into a PublishRequest.
func buildPublishRequest(cmd *cobra.Command, f publishFlags) (*hooklinev1.PublishRequest, error) {
	if f.eventType == "" {
		return nil, errors.New("--type is required")
	}
	payload, err := readData(cmd, "data", f.data)
	if err != nil {
		return nil, err
	}
	if payload == nil {
		return nil, errors.New("--data is required")
	}
	labels, err := parseKeyValues("label", f.labels)
	if err != nil {
		return nil, err
	}
	req := &hooklinev1.PublishRequest{
		Tenant:         flagOrEnv(cmd, "tenant", f.tenant, EnvTenant),
		EventType:      f.eventType,
		Payload:        payload,
		IdempotencyKey: f.idempotencyKey,
		Labels:         labels,
	}
	if f.occurredAt != "" {
		t, err := time.Parse(time.RFC3339Nano, f.occurredAt)
		if err != nil {
			return nil, fmt.Errorf("--occurred-at: %w", err)
		}
		req.OccurredAt = timestamppb.New(t)
	}
	return req, nil
}

// readData resolves a JSON payload flag: inline JSON, @FILE, or @- for
// standard input. It returns nil for an empty value and an error when the
// payload is not valid JSON.
func readData(cmd *cobra.Command, flag, v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	var data []byte
	switch {
	case v == "@-":
		b, err := io.ReadAll(cmd.InOrStdin())
		if err != nil {
			return nil, fmt.Errorf("--%s: reading standard input: %w", flag, err)
		}
		data = b
	case strings.HasPrefix(v, "@"):
		b, err := os.ReadFile(v[1:])
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		data = b
	default:
		data = []byte(v)
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("--%s: payload is not valid JSON", flag)
	}
	return data, nil
}

// parseKeyValues parses repeated KEY=VALUE flags into a map. A value may
// contain '='; the key must not be empty.
func parseKeyValues(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--%s %q: want KEY=VALUE", flag, it)
		}
		m[k] = v
	}
	return m, nil
}
