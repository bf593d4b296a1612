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
