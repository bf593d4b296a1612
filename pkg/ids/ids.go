// Package ids makes the identifiers Hookline hands out. Random identifiers
// are ULIDs (time-ordered, 80 bits of randomness); derived identifiers are
// stable hashes, so the same inputs always give the same ID.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Prefixes of every kind of identifier.
const (
	PrefixEvent        = "evt_"
	PrefixSubscription = "sub_"
	PrefixDelivery     = "dlv_"
)

var lowerBase32 = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewEvent returns a fresh event ID ("evt_" + ULID).
func NewEvent(now time.Time) string { return PrefixEvent + newULID(now) }

// NewSubscription returns a fresh subscription ID ("sub_" + ULID).
func NewSubscription(now time.Time) string { return PrefixSubscription + newULID(now) }

// EventFromIdempotencyKey derives the event ID for a tenant's idempotency
// key, so a retried publish maps to the same ID even before the key is
// recorded, and the broker's deduplication can collapse it.
func EventFromIdempotencyKey(tenant, key string) string {
	return PrefixEvent + "k" + hash(tenant, key)
}

// Delivery derives the delivery ID of (event, subscription): "dlv_", the
// event ID without its prefix, then 13 characters (65 bits) of a hash of
// both. A repeated fan-out of the same event produces the same ID, and the
// deliveries of events published together sort together (event IDs are
// ULIDs), which keeps inserts into keys that lead with a delivery ID local
// instead of scattered over the whole index.
func Delivery(eventID, subscriptionID string) string {
	ev := strings.TrimPrefix(eventID, PrefixEvent)
	h := hash(eventID, subscriptionID)[:deliveryHashLen]
	var b strings.Builder
	b.Grow(len(PrefixDelivery) + len(ev) + len(h))
	b.WriteString(PrefixDelivery)
	b.WriteString(ev)
	b.WriteString(h)
	return b.String()
}

// deliveryHashLen is how much of the hash a delivery ID carries.
const deliveryHashLen = 13

func hash(a, b string) string {
	h := sha256.New()
	h.Write([]byte(a))
	h.Write([]byte{0})
	h.Write([]byte(b))
	var sum [32]byte
	return lowerBase32.EncodeToString(h.Sum(sum[:0])[:16])
}

func newULID(now time.Time) string {
	return strings.ToLower(ulid.MustNew(ulid.Timestamp(now), rand.Reader).String())
}
