package crdb

import "strconv"

// Column values are encoded by the rowcodec package shared with the SQLite
// store: times as INT8 unix nanoseconds (UTC, NULL for an optional zero
// time), page tokens, and JSON text. JSONB columns are written as that
// text (cast to JSONB in SQL) and read back as text; the server
// normalises it (key order, spacing), so stored JSON is only ever compared
// after decoding.

// args collects positional parameters for a query built piece by piece and
// hands out their placeholders ($1, $2, ...).
type args []any

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return "$" + strconv.Itoa(len(*a))
}
