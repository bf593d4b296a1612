// Package rowcodec is the column encoding both SQL stores share, so that
// SQLite and CockroachDB hold the same values in the same form: times as
// unix nanoseconds (UTC), page tokens, JSON columns and the subscription
// row. Each store keeps only what its driver needs differently.
package rowcodec

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// Nanos is t as unix nanoseconds; the zero time is 0.
func Nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// FromNanos is the inverse of Nanos; every time it returns is UTC.
func FromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// NullNanos is Nanos for an optional column: nil (SQL NULL) for the zero
// time.
func NullNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

// FromNullNanos is the inverse of NullNanos.
func FromNullNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return FromNanos(*n)
}

// Page sizes of every list call.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// PageLimit is the page size for a requested limit n: DefaultLimit for
// n <= 0, at most MaxLimit.
func PageLimit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	default:
		return n
	}
}

// EncodeToken makes a page token of the last row's sort key: its fields
// joined by '|', base64url-encoded. Only the last field may be free text
// (an ID), so it must come last.
func EncodeToken(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

// DecodeToken splits a token made by EncodeToken of n fields. Every
// failure wraps store.ErrInvalidPageToken.
func DecodeToken(tok string, n int) ([]string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", store.ErrInvalidPageToken, err)
	}
	parts := strings.SplitN(string(raw), "|", n)
	if len(parts) != n {
		return nil, store.ErrInvalidPageToken
	}
	return parts, nil
}

// TokenInt64 parses a numeric token field; failures wrap
// store.ErrInvalidPageToken.
func TokenInt64(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", store.ErrInvalidPageToken, err)
	}
	return v, nil
}

// MarshalJSON is the text of v for a JSON column.
func MarshalJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// UnmarshalJSON decodes a JSON column; the empty string leaves v alone.
func UnmarshalJSON(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}
