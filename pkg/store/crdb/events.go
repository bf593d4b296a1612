package crdb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/internal/rowcodec"
)

// sqlInsertEvents inserts a batch of events in one statement from
// parallel arrays; an event whose id exists is left as is.
const sqlInsertEvents = `INSERT INTO events (id, tenant, event_type, payload, labels, occurred_at, received_at)
SELECT t.id, t.tenant, t.event_type, t.payload, t.labels::JSONB, t.occurred_at, t.received_at
FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[], $5::TEXT[], $6::INT8[], $7::INT8[])
    AS t (id, tenant, event_type, payload, labels, occurred_at, received_at)
ON CONFLICT (id) DO NOTHING`

// eventArgs validates events and returns sqlInsertEvents' arguments: one
// array per column, duplicates dropped, in id order.
func eventArgs(events []store.Event) ([]any, error) {
	uniq, err := uniqueByID(events, func(e *store.Event) string { return e.ID }, "event")
	if err != nil {
		return nil, err
	}
	n := len(uniq)
	var (
		ids, tenants, types, labels = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		payloads                    = make([][]byte, n)
		occurred, received          = make([]int64, n), make([]int64, n)
	)
	for i, e := range uniq {
		js, payload, err := rowcodec.EventColumns(&e)
		if err != nil {
			return nil, err
		}
		ids[i], tenants[i], types[i], labels[i] = e.ID, e.Tenant, e.Type, js
		payloads[i] = payload
		occurred[i], received[i] = rowcodec.Nanos(e.OccurredAt), rowcodec.Nanos(e.ReceivedAt)
	}
	return []any{ids, tenants, types, payloads, labels, occurred, received}, nil
}

// InsertFanout stores events and deliveries with one round trip: both
// inserts in one batch, which the server runs as one implicit transaction.
// A delivery it inserts with a non-zero NextAttemptAt also gets a
// scheduled retry of its next attempt (Attempts+1: attempt 1 for a new
// delivery) due then, in the deliveries' statement, which learns from its
// insert's RETURNING which deliveries are new; one that existed gets none,
// so a repeated call does not bring back a retry that was released and
// completed since.
func (s *Store) InsertFanout(ctx context.Context, events []store.Event, ds []store.Delivery) error {
	if len(events) == 0 && len(ds) == 0 {
		return nil
	}
	var b pgx.Batch
	if len(events) > 0 {
		args, err := eventArgs(events)
		if err != nil {
			return fmt.Errorf("crdb: insert fanout: %w", err)
		}
		b.Queue(sqlInsertEvents, args...)
	}
	if len(ds) > 0 {
		args, due, err := deliveryArgs(ds)
		if err != nil {
			return fmt.Errorf("crdb: insert fanout: %w", err)
		}
		if due {
			b.Queue(sqlInsertDeliveriesScheduling, args...)
		} else {
			b.Queue(sqlInsertDeliveries, args...)
		}
	}
	return s.run(ctx, "insert fanout", func(ctx context.Context) error {
		return s.pool.SendBatch(ctx, &b).Close()
	})
}

const eventColumns = `id, tenant, event_type, payload, labels, occurred_at, received_at`

// eventColumnsOf is eventColumns qualified with a table alias.
func eventColumnsOf(alias string) string {
	return alias + `.id, ` + alias + `.tenant, ` + alias + `.event_type, ` + alias + `.payload, ` +
		alias + `.labels, ` + alias + `.occurred_at, ` + alias + `.received_at`
}

// eventScan receives one eventColumns row.
type eventScan struct {
	e                      store.Event
	labels                 string
	occurredAt, receivedAt int64
}

func (r *eventScan) dest() []any {
	return []any{&r.e.ID, &r.e.Tenant, &r.e.Type, &r.e.Payload, &r.labels, &r.occurredAt, &r.receivedAt}
}

func (r *eventScan) event() (store.Event, error) {
	e := r.e
	if err := rowcodec.UnmarshalJSON(r.labels, &e.Labels); err != nil {
		return e, fmt.Errorf("decode labels of %s: %w", e.ID, err)
	}
	if len(e.Labels) == 0 {
		e.Labels = nil
	}
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	e.OccurredAt = rowcodec.FromNanos(r.occurredAt)
	e.ReceivedAt = rowcodec.FromNanos(r.receivedAt)
	return e, nil
}

// GetEvent returns the event id within scope; store.ErrNotFound if it
// does not exist or lies outside scope.
func (s *Store) GetEvent(ctx context.Context, scope store.Scope, id string) (*store.Event, error) {
	tenant, restricted, err := rowcodec.ScopeTenant(scope)
	if err != nil {
		return nil, fmt.Errorf("crdb: get event %s: %w", id, err)
	}
	q := `SELECT ` + eventColumns + ` FROM events WHERE id = $1`
	a := []any{id}
	if restricted {
		q += ` AND tenant = $2`
		a = append(a, tenant)
	}
	var r eventScan
	err = s.run(ctx, "get event "+id, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, q, a...).Scan(r.dest()...)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("crdb: get event %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	e, err := r.event()
	if err != nil {
		return nil, fmt.Errorf("crdb: get event %s: %w", id, err)
	}
	return &e, nil
}

// lookupChunk bounds the keys looked up in one query.
const lookupChunk = 1000

// LookupIdempotencyKeys returns the records of keys (event ID and
// fingerprint; a nil fingerprint where none was kept), up to a thousand
// keys per query (the keys travel as two arrays).
func (s *Store) LookupIdempotencyKeys(ctx context.Context, keys []store.IdempotencyKey) (map[store.IdempotencyKey]store.IdempotencyRecord, error) {
	out := make(map[store.IdempotencyKey]store.IdempotencyRecord)
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), lookupChunk)]
		keys = keys[len(chunk):]
		tenants, names := make([]string, len(chunk)), make([]string, len(chunk))
		for i, k := range chunk {
			tenants[i], names[i] = k.Tenant, k.Key
		}
		err := s.run(ctx, "lookup idempotency keys", func(ctx context.Context) error {
			rows, err := s.pool.Query(ctx, `SELECT k.tenant, k.idempotency_key, k.event_id, k.fingerprint
FROM idempotency_keys AS k
JOIN unnest($1::TEXT[], $2::TEXT[]) AS q (tenant, idempotency_key)
    ON k.tenant = q.tenant AND k.idempotency_key = q.idempotency_key`, tenants, names)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var r store.IdempotencyRecord
				if err := rows.Scan(&r.Tenant, &r.Key, &r.EventID, &r.Fingerprint); err != nil {
					return err
				}
				r.Fingerprint = rowcodec.Fingerprint(r.Fingerprint)
				out[r.IdempotencyKey] = r
			}
			return rows.Err()
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sqlPutIdempotencyKeys records keys in one statement. A key that has a
// record keeps it: the DO UPDATE assigns event_id its own value, which
// changes nothing but makes RETURNING report the recorded event id and
// fingerprint (the row is locked first, so a concurrent first writer is
// waited for and seen).
const sqlPutIdempotencyKeys = `INSERT INTO idempotency_keys (tenant, idempotency_key, event_id, fingerprint, created_at)
SELECT t.tenant, t.idempotency_key, t.event_id, t.fingerprint, $5::INT8
FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BYTEA[]) AS t (tenant, idempotency_key, event_id, fingerprint)
ON CONFLICT (tenant, idempotency_key) DO UPDATE SET event_id = idempotency_keys.event_id
RETURNING tenant, idempotency_key, event_id, fingerprint`

// PutIdempotencyKeys records every key without a record, with its event ID
// and fingerprint, in one statement (one implicit transaction): the first
// writer wins, and within one call the earliest record of a key. It
// returns the record kept for each record's key afterwards, in order.
func (s *Store) PutIdempotencyKeys(ctx context.Context, recs []store.IdempotencyRecord, now time.Time) ([]store.IdempotencyRecord, error) {
	kept := make([]store.IdempotencyRecord, len(recs))
	if len(recs) == 0 {
		return kept, nil
	}
	uniq := make([]store.IdempotencyRecord, 0, len(recs))
	seen := make(map[store.IdempotencyKey]bool, len(recs))
	for _, r := range recs {
		if !seen[r.IdempotencyKey] { // the earliest record of a key in the batch wins
			seen[r.IdempotencyKey] = true
			uniq = append(uniq, r)
		}
	}
	slices.SortFunc(uniq, func(a, b store.IdempotencyRecord) int {
		return cmp.Or(cmp.Compare(a.Tenant, b.Tenant), cmp.Compare(a.Key, b.Key))
	})
	n := len(uniq)
	tenants, names, events, fingerprints := make([]string, n), make([]string, n), make([]string, n), make([][]byte, n)
	for i, r := range uniq {
		tenants[i], names[i], events[i], fingerprints[i] = r.Tenant, r.Key, r.EventID, rowcodec.Fingerprint(r.Fingerprint)
	}
	got := make(map[store.IdempotencyKey]store.IdempotencyRecord, n)
	err := s.run(ctx, "put idempotency keys", func(ctx context.Context) error {
		clear(got)
		rows, err := s.pool.Query(ctx, sqlPutIdempotencyKeys, tenants, names, events, fingerprints, rowcodec.Nanos(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r store.IdempotencyRecord
			if err := rows.Scan(&r.Tenant, &r.Key, &r.EventID, &r.Fingerprint); err != nil {
				return err
			}
			r.Fingerprint = rowcodec.Fingerprint(r.Fingerprint)
			got[r.IdempotencyKey] = r
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	for i, r := range recs {
		k, ok := got[r.IdempotencyKey]
		if !ok {
			return nil, fmt.Errorf("crdb: put idempotency keys: key %q of %s: no record returned", r.Key, r.Tenant)
		}
		kept[i] = k
	}
	return kept, nil
}

// uniqueByID returns rows without repeated ids (the first of each stays),
// sorted by id: a stable order makes concurrent batches take row locks in
// the same order (no deadlocks on PostgreSQL, fewer restarts on
// CockroachDB). A row with an empty id is an error naming what the rows
// are.
func uniqueByID[T any](rows []T, id func(*T) string, what string) ([]T, error) {
	uniq := make([]T, 0, len(rows))
	seen := make(map[string]bool, len(rows))
	for i := range rows {
		k := id(&rows[i])
		if k == "" {
			return nil, fmt.Errorf("empty %s id", what)
		}
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, rows[i])
		}
	}
	slices.SortFunc(uniq, func(a, b T) int { return cmp.Compare(id(&a), id(&b)) })
	return uniq, nil
}
