package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/eventtype"
	"github.com/hookline/hookline/pkg/retry"
	"github.com/hookline/hookline/pkg/ssrf"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/wire"
)

// Limits on request fields.
const (
	maxTenantLen         = 64
	maxIdempotencyKeyLen = 256
	maxLabels            = 32
	maxLabelLen          = 256
	maxURLLen            = 2048
	maxEventTypes        = 64
	maxHeaders           = 32
	maxHeaderValueLen    = 1024
	maxTimeout           = 5 * time.Minute
	maxDescriptionLen    = 1024
)

// violations collects field errors and turns them into one InvalidArgument
// status whose message names every field.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	parts := make([]string, len(v))
	for i, fv := range v {
		parts[i] = fv.Field + ": " + fv.Description
	}
	st := status.New(codes.InvalidArgument, strings.Join(parts, "; "))
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v}); err == nil {
		st = d
	}
	return st.Err()
}

func validateTenant(v *violations, field, tenant string) {
	switch {
	case tenant == "":
		v.add(field, "must not be empty")
	case len(tenant) > maxTenantLen:
		v.add(field, "longer than %d characters", maxTenantLen)
	default:
		for i := 0; i < len(tenant); i++ {
			c := tenant[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				v.add(field, "%q contains %q; allowed are letters, digits, '_' and '-'", tenant, c)
				return
			}
		}
	}
}

func validateID(v *violations, field, id, prefix string) {
	if id == "" {
		v.add(field, "must not be empty")
	} else if !strings.HasPrefix(id, prefix) || len(id) > 64 {
		v.add(field, "%q is not a %s id", id, strings.TrimSuffix(prefix, "_"))
	}
}

// validatePublish checks one publish request; prefix is prepended to field
// names ("events[3].").
func (s *Service) validatePublish(v *violations, prefix string, r *hooklinev1.PublishRequest) {
	if r == nil {
		v.add(strings.TrimSuffix(prefix, "."), "must not be null")
		return
	}
	validateTenant(v, prefix+"tenant", r.GetTenant())
	if err := eventtype.Validate(r.GetEventType()); err != nil {
		v.add(prefix+"event_type", "%v", err)
	}
	switch p := r.GetPayload(); {
	case len(p) == 0:
		v.add(prefix+"payload", "must not be empty; send a JSON document such as {}")
	case len(p) > s.cfg.MaxPayloadBytes:
		v.add(prefix+"payload", "%d bytes exceeds the limit of %d bytes", len(p), s.cfg.MaxPayloadBytes)
	case !json.Valid(p):
		v.add(prefix+"payload", "is not valid JSON")
	case !utf8.Valid(p):
		v.add(prefix+"payload", "is not valid UTF-8, which JSON requires")
	}
	if len(r.GetIdempotencyKey()) > maxIdempotencyKeyLen {
		v.add(prefix+"idempotency_key", "longer than %d characters", maxIdempotencyKeyLen)
	}
	if ts := r.GetOccurredAt(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			v.add(prefix+"occurred_at", "%v", err)
		}
	}
	if len(r.GetLabels()) > maxLabels {
		v.add(prefix+"labels", "more than %d labels", maxLabels)
	}
	for k, val := range r.GetLabels() {
		if k == "" || len(k) > maxLabelLen || len(val) > maxLabelLen {
			v.add(prefix+"labels", "label %q: keys must be 1-%d characters and values at most %d", k, maxLabelLen, maxLabelLen)
		}
	}
}

// validateSubscription checks the fields of sub a create or update sets;
// fields restricts the check to those named (nil: all).
func (s *Service) validateSubscription(ctx context.Context, v *violations, sub *hooklinev1.Subscription, fields map[string]bool) {
	has := func(f string) bool { return fields == nil || fields[f] }
	if has("url") {
		s.validateURL(ctx, v, "subscription.url", sub.GetUrl())
	}
	if has("event_types") {
		if len(sub.GetEventTypes()) == 0 {
			v.add("subscription.event_types", "must name at least one pattern, such as \"*\" or \"order.*\"")
		}
		if len(sub.GetEventTypes()) > maxEventTypes {
			v.add("subscription.event_types", "more than %d patterns", maxEventTypes)
		}
		for i, p := range sub.GetEventTypes() {
			if err := eventtype.ValidatePattern(p); err != nil {
				v.add(fmt.Sprintf("subscription.event_types[%d]", i), "%v", err)
			}
		}
	}
	if has("description") && len(sub.GetDescription()) > maxDescriptionLen {
		v.add("subscription.description", "longer than %d characters", maxDescriptionLen)
	}
	if has("headers") {
		if len(sub.GetHeaders()) > maxHeaders {
			v.add("subscription.headers", "more than %d headers", maxHeaders)
		}
		for k, val := range sub.GetHeaders() {
			field := fmt.Sprintf("subscription.headers[%q]", k)
			switch {
			case !validHeaderName(k):
				v.add(field, "is not a valid HTTP header name")
			case wire.ReservedWebhookHeader(k):
				v.add(field, "is set by Hookline and cannot be overridden")
			case len(val) > maxHeaderValueLen || !validHeaderValue(val):
				v.add(field, "value must be at most %d characters of visible text, spaces and tabs (no control characters)", maxHeaderValueLen)
			}
		}
	}
	if has("timeout") && sub.GetTimeout() != nil {
		d := sub.GetTimeout().AsDuration()
		if err := sub.GetTimeout().CheckValid(); err != nil || d < time.Millisecond || d > maxTimeout {
			v.add("subscription.timeout", "must be between 1ms and %v", maxTimeout)
		}
	}
	if has("retry_schedule") {
		if len(sub.GetRetrySchedule()) > retry.MaxScheduleLen {
			v.add("subscription.retry_schedule", "more than %d retries", retry.MaxScheduleLen)
		}
		for i, d := range sub.GetRetrySchedule() {
			if err := d.CheckValid(); err != nil || d.AsDuration() < time.Millisecond || d.AsDuration() > retry.MaxDelay {
				v.add(fmt.Sprintf("subscription.retry_schedule[%d]", i), "must be between 1ms and %v", retry.MaxDelay)
			}
		}
	}
	if has("rate_limit") && sub.GetRateLimit() < 0 {
		v.add("subscription.rate_limit", "must not be negative")
	}
}

func (s *Service) validateURL(ctx context.Context, v *violations, field, raw string) {
	if raw == "" {
		v.add(field, "must not be empty")
		return
	}
	if len(raw) > maxURLLen {
		v.add(field, "longer than %d characters", maxURLLen)
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		v.add(field, "is not a URL: %v", err)
		return
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		v.add(field, "scheme %q is not http or https", u.Scheme)
		return
	}
	if u.Hostname() == "" {
		v.add(field, "has no host")
		return
	}
	if u.User != nil {
		v.add(field, "must not contain user information")
		return
	}
	if err := s.guard.CheckURL(ctx, raw, s.resolver); err != nil {
		// A host that does not resolve now is accepted: the dialer's guard
		// checks every address again at delivery time.
		switch {
		case errors.Is(err, ssrf.ErrForbidden):
			v.add(field, "%v (allow-list the range with --ingest-allow-cidrs to permit it)", err)
		case errors.Is(err, ssrf.ErrInvalidURL):
			v.add(field, "%v", err)
		}
	}
}

// validHeaderValue reports whether v is a field value HTTP allows:
// visible characters, obs-text, spaces and tabs, no control bytes.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return http.CanonicalHeaderKey(k) != ""
}
