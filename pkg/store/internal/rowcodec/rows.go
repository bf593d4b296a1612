package rowcodec

import (
	"fmt"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// EventColumns returns the encoded labels (a JSON object, {} when there
// are none) and the payload (never nil, so the NOT NULL column holds an
// empty value) of e.
func EventColumns(e *store.Event) (labels string, payload []byte, err error) {
	l := e.Labels
	if l == nil {
		l = map[string]string{}
	}
	if labels, err = MarshalJSON(l); err != nil {
		return "", nil, fmt.Errorf("labels of %s: %w", e.ID, err)
	}
	payload = e.Payload
	if payload == nil {
		payload = []byte{}
	}
	return labels, payload, nil
}

// DeliveryDefaults returns the status and update time a new delivery row
// is stored with: an empty Status is pending, a zero UpdatedAt is
// CreatedAt.
func DeliveryDefaults(d *store.Delivery) (status store.DeliveryStatus, updated time.Time) {
	status, updated = d.Status, d.UpdatedAt
	if status == "" {
		status = store.DeliveryPending
	}
	if updated.IsZero() {
		updated = d.CreatedAt
	}
	return status, updated
}

// CheckAttemptResults validates a RecordAttempts batch before anything of
// it is written: every attempt names a delivery and has a number of at
// least 1, and every retrying result says when the next attempt is due.
// The error names the first offending result.
func CheckAttemptResults(results []store.AttemptResult) error {
	for i := range results {
		r := &results[i]
		a := &r.Attempt
		if a.DeliveryID == "" || a.Number < 1 {
			return fmt.Errorf("attempt %q #%d: invalid delivery id or number", a.DeliveryID, a.Number)
		}
		if r.Status == store.DeliveryRetrying && r.NextAttemptAt.IsZero() {
			return fmt.Errorf("attempt %s #%d: status %s without NextAttemptAt", a.DeliveryID, a.Number, r.Status)
		}
	}
	return nil
}

// NextAttemptAt is when r schedules its delivery's next attempt: its
// NextAttemptAt if r is retrying, zero (nothing scheduled) otherwise.
func NextAttemptAt(r *store.AttemptResult) time.Time {
	if r.Status != store.DeliveryRetrying {
		return time.Time{}
	}
	return r.NextAttemptAt
}

// DeliveryLastError is the LastError r gives its delivery: DeliveryError,
// or the attempt's Error when that is empty.
func DeliveryLastError(r *store.AttemptResult) string {
	if r.DeliveryError != "" {
		return r.DeliveryError
	}
	return r.Attempt.Error
}

// FinalStatus reports whether a status ends the retry cycle (succeeded,
// dead, parked), so that nothing is scheduled for the delivery any more.
func FinalStatus(st store.DeliveryStatus) bool {
	return st == store.DeliverySucceeded || st == store.DeliveryDead || st == store.DeliveryParked
}

// Fingerprint is an idempotency record's fingerprint as stored and as
// returned: fp, or nil when it is empty. An empty fingerprint is stored as
// NULL, as on keys recorded before fingerprints were kept, and NULL reads
// back as nil, so both stores return nil for "no fingerprint".
func Fingerprint(fp []byte) []byte {
	if len(fp) == 0 {
		return nil
	}
	return fp
}
