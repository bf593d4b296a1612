package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

const sqlInsertEvent = `INSERT INTO events (id, tenant, event_type, payload, labels, occurred_at, received_at)
VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`

// InsertEvents stores events in one transaction. An event whose ID already
// exists is left unchanged.
func (s *Store) InsertEvents(ctx context.Context, events []store.Event) error {
	if len(events) == 0 {
		return nil
	}
	type evRow struct {
		labels  string
		payload []byte
	}
	rows := make([]evRow, len(events))
	for i, e := range events {
		if e.ID == "" {
			return errors.New("sqlite: insert events: empty id")
		}
		labels := e.Labels
		if labels == nil {
			labels = map[string]string{}
		}
		js, err := marshalJSON(labels)
		if err != nil {
			return fmt.Errorf("sqlite: insert events: labels of %s: %w", e.ID, err)
		}
		payload := e.Payload
		if payload == nil {
			payload = []byte{}
		}
		rows[i] = evRow{labels: js, payload: payload}
	}
	return s.inWriteTx(ctx, "insert events", func(tx *sql.Tx) error {
		st := tx.StmtContext(ctx, s.stmts.insertEvent)
		for i, e := range events {
			if _, err := st.ExecContext(ctx, e.ID, e.Tenant, e.Type, rows[i].payload, rows[i].labels,
				nanos(e.OccurredAt), nanos(e.ReceivedAt)); err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
		}
		return nil
	})
}

// GetEvent returns the event id; store.ErrNotFound if it does not exist or
// tenant is non-empty and differs.
func (s *Store) GetEvent(ctx context.Context, tenant, id string) (*store.Event, error) {
	var (
		e                      store.Event
		labels                 string
		occurredAt, receivedAt int64
	)
	err := s.read.QueryRowContext(ctx, `SELECT id, tenant, event_type, payload, labels, occurred_at, received_at
FROM events WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant).
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
	if err := unmarshalJSON(labels, &e.Labels); err != nil {
		return fmt.Errorf("decode labels: %w", err)
	}
	if len(e.Labels) == 0 {
		e.Labels = nil
	}
	if e.Payload == nil {
		e.Payload = []byte{}
	}
	e.OccurredAt = fromNanos(occurredAt)
	e.ReceivedAt = fromNanos(receivedAt)
	return nil
}

// LookupIdempotencyKey returns the event ID recorded for (tenant, key).
func (s *Store) LookupIdempotencyKey(ctx context.Context, tenant, key string) (string, bool, error) {
	var id string
	err := s.read.QueryRowContext(ctx, `SELECT event_id FROM idempotency_keys WHERE tenant = ? AND idempotency_key = ?`,
		tenant, key).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("sqlite: lookup idempotency key: %w", err)
	}
	return id, true, nil
}

// PutIdempotencyKey records (tenant, key) -> eventID unless a record exists
// (the first writer wins) and returns the event ID recorded afterwards.
func (s *Store) PutIdempotencyKey(ctx context.Context, tenant, key, eventID string, now time.Time) (string, error) {
	var recorded string
	err := s.inWriteTx(ctx, "put idempotency key", func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO idempotency_keys (tenant, idempotency_key, event_id, created_at)
VALUES (?, ?, ?, ?) ON CONFLICT (tenant, idempotency_key) DO NOTHING`, tenant, key, eventID, nanos(now)); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT event_id FROM idempotency_keys WHERE tenant = ? AND idempotency_key = ?`,
			tenant, key).Scan(&recorded)
	})
	return recorded, err
}
