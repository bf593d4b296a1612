package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

const sqlInsertEvent = `INSERT INTO events (id, tenant, event_type, payload, labels, occurred_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`

// evRow is an event's encoded columns.
type evRow struct {
	labels  string
	payload []byte
}

// eventRows validates events and encodes their labels and payloads.
func eventRows(events []store.Event) ([]evRow, error) {
	rows := make([]evRow, len(events))
	for i, e := range events {
		if e.ID == "" {
			return nil, errors.New("empty event id")
		}
		js, payload, err := rowcodec.EventColumns(&e)
		if err != nil {
			return nil, err
		}
		rows[i] = evRow{labels: js, payload: payload}
	}
	return rows, nil
}

// insertEvents inserts events (encoded as rows) in tx.
func (s *Store) insertEvents(ctx context.Context, tx *sql.Tx, events []store.Event, rows []evRow) error {
	st := tx.StmtContext(ctx, s.stmts.insertEvent)
	for i, e := range events {
		if _, err := st.ExecContext(ctx, e.ID, e.Tenant, e.Type, rows[i].payload, rows[i].labels,
			rowcodec.Nanos(e.OccurredAt), rowcodec.Nanos(e.ReceivedAt)); err != nil {
			return fmt.Errorf("event %s: %w", e.ID, err)
		}
	}
	return nil
}

// InsertFanout stores events and deliveries in one transaction (one write
// operation); rows whose IDs exist are left unchanged. A delivery it
// inserts with a non-zero NextAttemptAt also gets a scheduled retry of its
// next attempt (attempt 1 for a new delivery) due then; one that existed
// gets none.
func (s *Store) InsertFanout(ctx context.Context, events []store.Event, ds []store.Delivery) error {
	if len(events) == 0 && len(ds) == 0 {
		return nil
	}
	rows, err := eventRows(events)
	if err != nil {
		return fmt.Errorf("sqlite: insert fanout: %w", err)
	}
	if err := checkDeliveryIDs(ds); err != nil {
		return fmt.Errorf("sqlite: insert fanout: %w", err)
	}
	return s.inWriteTx(ctx, "insert fanout", func(ctx context.Context, tx *sql.Tx) error {
		if err := s.insertEvents(ctx, tx, events, rows); err != nil {
			return err
		}
		return s.insertDeliveries(ctx, tx, ds)
	})
}

// GetEvent returns the event id within scope; store.ErrNotFound if it
// does not exist or lies outside scope.
func (s *Store) GetEvent(ctx context.Context, scope store.Scope, id string) (*store.Event, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return nil, fmt.Errorf("sqlite: get event %s: %w", id, err)
	}
	var (
		e                      store.Event
		labels                 string
		occurredAt, receivedAt int64
	)
	q := `SELECT id, tenant, event_type, payload, labels, occurred_at, received_at FROM events WHERE id = ?`
	args := []any{id}
	if restricted {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	err = s.read.QueryRowContext(ctx, q, args...).
		Scan(&e.ID, &e.Tenant, &e.Type, &e.Payload, &labels, &occurredAt, &receivedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get event %s: %w", id, err)
	}
	if err := decodeEventExtras(&e, labels, occurredAt, receivedAt); err != nil {
		return nil, fmt.Errorf("sqlite: get event %s: %w", id, err)
	}
	return &e, nil
}

func decodeEventExtras(e *store.Event, labels string, occurredAt, receivedAt int64) error {
	if err := rowcodec.UnmarshalJSON(labels, &e.Labels); err != nil {
		return fmt.Errorf("decode labels: %w", err)
	}
	if len(e.Labels) == 0 {
		e.Labels = nil
	}
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	e.OccurredAt = rowcodec.FromNanos(occurredAt)
	e.ReceivedAt = rowcodec.FromNanos(receivedAt)
	return nil
}

// lookupChunk bounds the keys looked up in one query (two parameters
// each, far below SQLite's limit).
const lookupChunk = 256

// LookupIdempotencyKeys returns the records of keys (event ID and
// fingerprint; a nil fingerprint where none was kept), a few hundred keys
// per query.
func (s *Store) LookupIdempotencyKeys(ctx context.Context, keys []store.IdempotencyKey) (map[store.IdempotencyKey]store.IdempotencyRecord, error) {
	out := make(map[store.IdempotencyKey]store.IdempotencyRecord)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), lookupChunk)]
		keys = keys[len(chunk):]
		var q strings.Builder
		q.WriteString(`SELECT tenant, idempotency_key, event_id, fingerprint FROM idempotency_keys WHERE `)
		args := make([]any, 0, 2*len(chunk))
		for i, k := range chunk {
			if i > 0 {
				q.WriteString(" OR ")
			}
			q.WriteString("(tenant = ? AND idempotency_key = ?)")
			args = append(args, k.Tenant, k.Key)
		}
		rows, err := s.read.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: lookup idempotency keys: %w", err)
		}
		for rows.Next() {
			var r store.IdempotencyRecord
			if err := rows.Scan(&r.Tenant, &r.Key, &r.EventID, &r.Fingerprint); err != nil {
				rows.Close()
				return nil, fmt.Errorf("sqlite: lookup idempotency keys: %w", err)
			}
			r.Fingerprint = rowcodec.Fingerprint(r.Fingerprint)
			out[r.IdempotencyKey] = r
		}
		if err := errors.Join(rows.Close(), rows.Err()); err != nil {
			return nil, fmt.Errorf("sqlite: lookup idempotency keys: %w", err)
		}
	}
	return out, nil
}

// PutIdempotencyKeys records every key without a record, with its event ID
// and fingerprint, in one write transaction (the first writer wins, and
// within one call the earliest record of a key), and returns the record
// kept for each record's key afterwards, in order.
func (s *Store) PutIdempotencyKeys(ctx context.Context, recs []store.IdempotencyRecord, now time.Time) ([]store.IdempotencyRecord, error) {
	kept := make([]store.IdempotencyRecord, len(recs))
	if len(recs) == 0 {
		return kept, nil
	}
	err := s.inWriteTx(ctx, "put idempotency keys", func(ctx context.Context, tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO idempotency_keys (tenant, idempotency_key, event_id, fingerprint, created_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, idempotency_key) DO NOTHING`)
		if err != nil {
			return fmt.Errorf("prepare insert: %w", err)
		}
		defer ins.Close()
		sel, err := tx.PrepareContext(ctx, `SELECT event_id, fingerprint FROM idempotency_keys WHERE tenant = ? AND idempotency_key = ?`)
		if err != nil {
			return fmt.Errorf("prepare select: %w", err)
		}
		defer sel.Close()
		for i, r := range recs {
			if _, err := ins.ExecContext(ctx, r.Tenant, r.Key, r.EventID, rowcodec.Fingerprint(r.Fingerprint), rowcodec.Nanos(now)); err != nil {
				return fmt.Errorf("key %q of %s: %w", r.Key, r.Tenant, err)
			}
			k := store.IdempotencyRecord{IdempotencyKey: r.IdempotencyKey}
			if err := sel.QueryRowContext(ctx, r.Tenant, r.Key).Scan(&k.EventID, &k.Fingerprint); err != nil {
				return fmt.Errorf("key %q of %s: read the kept record: %w", r.Key, r.Tenant, err)
			}
			k.Fingerprint = rowcodec.Fingerprint(k.Fingerprint)
			kept[i] = k
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return kept, nil
}
