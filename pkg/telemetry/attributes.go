package telemetry

import (
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// parseResourceAttributes parses the key=value pairs of
// OTEL_RESOURCE_ATTRIBUTES: keys trimmed and not empty, values trimmed and
// percent-decoded (the W3C Baggage octet rules the specification refers
// to). A pair without "=" or with an invalid escape is an error naming it.
func parseResourceAttributes(pairs []string) ([]attribute.KeyValue, error) {
	out := make([]attribute.KeyValue, 0, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", strings.TrimSpace(p))
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%q: %w", strings.TrimSpace(p), err)
		}
		out = append(out, attribute.String(k, val))
	}
	return out, nil
}
