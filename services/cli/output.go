package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// printer writes command results as text (tables and "key: value" lines)
// or as JSON lines (protojson, one message per line).
type printer struct {
	w    io.Writer
	errw io.Writer
	json bool
}

func newPrinter(cmd *cobra.Command, format string) (*printer, error) {
	p := &printer{w: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
	switch format {
	case outputText, "":
	case outputJSON:
		p.json = true
	default:
		return nil, fmt.Errorf("--output %q: want %q or %q", format, outputText, outputJSON)
	}
	return p, nil
}

// jsonLine writes m as one line of compact protojson.
func (p *printer) jsonLine(m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: false}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding %s as JSON: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	// protojson deliberately varies its whitespace; compact it so the output
	// is stable.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return fmt.Errorf("compacting JSON: %w", err)
	}
	buf.WriteByte('\n')
	if _, err := p.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// kv is one "key: value" line of a single-object view.
type kv struct {
	key, value string
}

// fields writes aligned "key: value" lines.
func (p *printer) fields(lines []kv) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 1, ' ', 0)
	for _, l := range lines {
		fmt.Fprintf(tw, "%s:\t%s\n", l.key, l.value)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// table writes an aligned table with a header row.
func (p *printer) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	return nil
}

// object prints one message: JSON line, or the given key/value lines.
func (p *printer) object(m proto.Message, lines []kv) error {
	if p.json {
		return p.jsonLine(m)
	}
	return p.fields(lines)
}

func fmtTime(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func fmtDuration(d *durationpb.Duration) string {
	if d == nil {
		return "-"
	}
	return d.AsDuration().String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// enumName turns DELIVERY_STATUS_SUCCEEDED into "succeeded".
func enumName(full, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(full, prefix))
}

const (
	subscriptionStatePrefix = "SUBSCRIPTION_STATE_"
	deliveryStatusPrefix    = "DELIVERY_STATUS_"
)

func stateName(s hooklinev1.SubscriptionState) string {
	return enumName(s.String(), subscriptionStatePrefix)
}

func statusName(s hooklinev1.DeliveryStatus) string {
	return enumName(s.String(), deliveryStatusPrefix)
}

// parseEnum resolves a user-supplied name ("succeeded", "SUCCEEDED" or
// "DELIVERY_STATUS_SUCCEEDED") against an enum's value map. The empty
// string is the unspecified value 0.
func parseEnum(flag, s, prefix string, values map[string]int32) (int32, error) {
	if s == "" {
		return 0, nil
	}
	name := strings.ToUpper(strings.ReplaceAll(s, "-", "_"))
	if !strings.HasPrefix(name, prefix) {
		name = prefix + name
	}
	if v, ok := values[name]; ok && v != 0 {
		return v, nil
	}
	var valid []string
	for n, v := range values {
		if v != 0 {
			valid = append(valid, enumName(n, prefix))
		}
	}
	slices.Sort(valid)
	return 0, fmt.Errorf("--%s %q: want one of %s", flag, s, strings.Join(valid, ", "))
}

func fmtMap(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

func fmtDurations(ds []*durationpb.Duration) string {
	if len(ds) == 0 {
		return "default"
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = fmtDuration(d)
	}
	return strings.Join(parts, ",")
}

func subscriptionLines(s *hooklinev1.Subscription) []kv {
	lines := []kv{
		{"id", s.GetId()},
		{"tenant", s.GetTenant()},
		{"state", stateName(s.GetState())},
	}
	if s.GetDisabledReason() != "" {
		lines = append(lines, kv{"disabled reason", s.GetDisabledReason()})
	}
	lines = append(lines,
		kv{"url", s.GetUrl()},
		kv{"description", orDash(s.GetDescription())},
		kv{"event types", orDash(strings.Join(s.GetEventTypes(), ", "))},
		kv{"headers", fmtMap(s.GetHeaders())},
		kv{"timeout", orDefault(s.GetTimeout())},
		kv{"retry schedule", fmtDurations(s.GetRetrySchedule())},
		kv{"rate limit", rateLimit(s.GetRateLimit())},
		kv{"trace context", traceContext(s.GetSendTraceContext())},
	)
	for i, sec := range s.GetSecrets() {
		label := "signing secret"
		if i > 0 {
			label = "previous secret"
		}
		v := sec.GetValue()
		if v == "" {
			v = "(hidden: hookline subscriptions secret " + s.GetId() + ")"
		}
		if sec.GetExpireTime() != nil {
			v += " (expires " + fmtTime(sec.GetExpireTime()) + ")"
		}
		lines = append(lines, kv{label, v})
	}
	if s.GetFailingSince() != nil {
		lines = append(lines, kv{"failing since", fmtTime(s.GetFailingSince())})
	}
	lines = append(lines,
		kv{"created", fmtTime(s.GetCreateTime())},
		kv{"updated", fmtTime(s.GetUpdateTime())},
	)
	return lines
}

func orDefault(d *durationpb.Duration) string {
	if d == nil {
		return "default"
	}
	return fmtDuration(d)
}

// traceContext says whether deliveries carry the trace context.
func traceContext(send bool) string {
	if send {
		return "sent"
	}
	return "not sent"
}

func rateLimit(n int32) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.Itoa(int(n)) + "/s"
}

var subscriptionHeader = []string{"ID", "STATE", "URL", "EVENT TYPES", "DESCRIPTION", "CREATED"}

func subscriptionRow(s *hooklinev1.Subscription) []string {
	return []string{
		s.GetId(), stateName(s.GetState()), s.GetUrl(),
		orDash(strings.Join(s.GetEventTypes(), ",")), orDash(s.GetDescription()),
		fmtTime(s.GetCreateTime()),
	}
}

func deliveryLines(d *hooklinev1.Delivery) []kv {
	return []kv{
		{"id", d.GetId()},
		{"tenant", d.GetTenant()},
		{"event", d.GetEventId()},
		{"event type", d.GetEventType()},
		{"subscription", d.GetSubscriptionId()},
		{"status", statusName(d.GetStatus())},
		{"attempts", strconv.Itoa(int(d.GetAttempts()))},
		{"last status code", statusCode(d.GetLastStatusCode())},
		{"last error", orDash(d.GetLastError())},
		{"next attempt", fmtTime(d.GetNextAttemptTime())},
		{"created", fmtTime(d.GetCreateTime())},
		{"updated", fmtTime(d.GetUpdateTime())},
	}
}

func statusCode(c int32) string {
	if c == 0 {
		return "-"
	}
	return strconv.Itoa(int(c))
}

var deliveryHeader = []string{"ID", "STATUS", "ATTEMPTS", "LAST CODE", "EVENT TYPE", "EVENT", "SUBSCRIPTION", "NEXT ATTEMPT", "CREATED"}

func deliveryRow(d *hooklinev1.Delivery) []string {
	return []string{
		d.GetId(), statusName(d.GetStatus()), strconv.Itoa(int(d.GetAttempts())),
		statusCode(d.GetLastStatusCode()), d.GetEventType(), d.GetEventId(),
		d.GetSubscriptionId(), fmtTime(d.GetNextAttemptTime()), fmtTime(d.GetCreateTime()),
	}
}

// attemptHeader heads the attempts table; TRACE is the attempt's trace id,
// to paste into the tracing system ("-" when it was not traced).
var attemptHeader = []string{"DELIVERY", "#", "STARTED", "DURATION", "CODE", "ERROR", "RESPONSE", "TRACE"}

func attemptRow(a *hooklinev1.Attempt) []string {
	return []string{
		a.GetDeliveryId(), strconv.Itoa(int(a.GetNumber())), fmtTime(a.GetStartTime()),
		fmtDuration(a.GetDuration()), statusCode(a.GetStatusCode()), orDash(a.GetError()),
		orDash(oneLine(a.GetResponseBody(), 60)), orDash(a.GetTraceId()),
	}
}

func eventLines(e *hooklinev1.Event) []kv {
	return []kv{
		{"id", e.GetId()},
		{"tenant", e.GetTenant()},
		{"type", e.GetEventType()},
		{"labels", fmtMap(e.GetLabels())},
		{"occurred", fmtTime(e.GetOccurredAt())},
		{"received", fmtTime(e.GetReceiveTime())},
		{"payload", string(e.GetPayload())},
	}
}

// oneLine replaces line breaks and tabs with spaces and truncates s to max
// runes (0 means no limit), marking a cut with "…".
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\n', '\r', '\t':
			return ' '
		}
		return r
	}, s)
	if max > 0 {
		n := 0
		for i := range s {
			if n == max {
				return s[:i] + "…"
			}
			n++
		}
	}
	return s
}
