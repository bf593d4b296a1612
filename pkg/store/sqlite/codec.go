package sqlite

import (
	"database/sql"
	"time"
)

// Column values are encoded by the rowcodec package shared with the
// CockroachDB store: times as unix nanoseconds (UTC), page tokens, and
// JSON text. The zero time.Time maps to 0 in NOT NULL columns and to NULL
// in optional ones; these two read and write the optional ones through
// database/sql's null type.

func nullNanos(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}
}

func fromNullNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
