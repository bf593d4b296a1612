package crdb

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// Times are stored as INT8 unix nanoseconds, UTC, exactly as in the SQLite
// store. The zero time.Time maps to 0 in NOT NULL columns and to NULL in
// optional ones, and both read back as the zero time. Every time returned
// is in UTC.

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// nullNanos is nanos for an optional column: nil (SQL NULL) for the zero
// time.
func nullNanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func fromNullNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return fromNanos(*n)
}

// defaultLimit and maxLimit bound list pages, as in the SQLite store.
const (
	defaultLimit = 100
	maxLimit     = 1000
)

func pageLimit(n int) int {
	switch {
	case n <= 0:
		return defaultLimit
	case n > maxLimit:
		return maxLimit
	default:
		return n
	}
}

// Page tokens are the sort key of the last row returned, its fields joined
// by '|' and base64url-encoded: the same format as the SQLite store's. Only
// the last field may be free text (an ID), so it is always placed last and
// the token is split with SplitN.

func encodeToken(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

func decodeToken(tok string, n int) ([]string, error) {
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

func parseInt64(s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", store.ErrInvalidPageToken, err)
	}
	return v, nil
}

// JSONB columns are written as JSON text (cast to JSONB in SQL) and read
// back as text. The text the server returns is normalised (key order,
// spacing), so stored JSON is only ever compared after decoding.

func marshalJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func unmarshalJSON(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

// args collects positional parameters for a query built piece by piece and
// hands out their placeholders ($1, $2, ...).
type args []any

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}
