package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store"
)

// Base is the fixed instant the fixtures are built around. It carries
// nanoseconds so that precision loss shows.
var Base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// NewSecret returns a fresh signing secret ("whsec_" + base64 of 24 random
// bytes) created at Base.
func NewSecret() store.Secret {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return store.Secret{Value: "whsec_" + base64.StdEncoding.EncodeToString(b), CreatedAt: Base}
}

// NewSubscription returns an enabled subscription of tenant with a fresh
// ID and every field set but SendTraceContext, which is left off (its
// default, so that other packages' tests send no trace context unless they
// ask); nothing is stored.
func NewSubscription(tenant string) *store.Subscription {
	id := ids.NewSubscription(Base)
	old := NewSecret()
	old.ExpiresAt = Base.Add(24 * time.Hour)
	return &store.Subscription{
		ID:            id,
		Tenant:        tenant,
		URL:           "https://receiver.example.com/hooks/" + id,
		Description:   "orders to " + tenant,
		EventTypes:    []string{"order.*", "invoice.paid"},
		Secrets:       []store.Secret{old, NewSecret()},
		Headers:       map[string]string{"X-Team": "payments", "X-Env": "test"},
		Timeout:       10 * time.Second,
		RetrySchedule: []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute},
		RateLimit:     50,
		State:         store.SubscriptionEnabled,
		CreatedAt:     Base,
		UpdatedAt:     Base,
	}
}

// NewEvent returns an event of tenant and type received at receivedAt,
// with a fresh ID, a small JSON payload and labels (nothing is stored).
func NewEvent(tenant, eventType string, receivedAt time.Time) store.Event {
	id := ids.NewEvent(receivedAt)
	return store.Event{
		ID:         id,
		Tenant:     tenant,
		Type:       eventType,
		Payload:    []byte(fmt.Sprintf(`{"id":%q,"amount":42}`, id)),
		Labels:     map[string]string{"region": "eu"},
		OccurredAt: receivedAt.Add(-time.Second),
		ReceivedAt: receivedAt,
	}
}

// NewDelivery returns the pending delivery of ev to sub created at
// createdAt, with the derived ID (nothing is stored).
func NewDelivery(ev store.Event, sub *store.Subscription, createdAt time.Time) store.Delivery {
	return store.Delivery{
		ID:             ids.Delivery(ev.ID, sub.ID),
		EventID:        ev.ID,
		SubscriptionID: sub.ID,
		Tenant:         ev.Tenant,
		EventType:      ev.Type,
		Status:         store.DeliveryPending,
		CreatedAt:      createdAt,
		UpdatedAt:      createdAt,
	}
}

// NewAttempt returns attempt number of d started at startedAt that got a
// 500 (nothing is stored).
func NewAttempt(d store.Delivery, number int, startedAt time.Time) store.Attempt {
	return store.Attempt{
		DeliveryID:     d.ID,
		Number:         number,
		EventID:        d.EventID,
		SubscriptionID: d.SubscriptionID,
		Tenant:         d.Tenant,
		StartedAt:      startedAt,
		Duration:       123456789 * time.Nanosecond,
		StatusCode:     500,
		ResponseBody:   []byte(`{"error":"boom"}`),
		Error:          "",
	}
}

// NewAPIKey returns an API key of tenant ("" for an operator key) created
// at createdAt, with a fresh ID ("hk_" + 12 characters), a name, scopes
// and the hash of a fresh key (nothing is stored).
func NewAPIKey(tenant string, createdAt time.Time) store.APIKey {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	id := "hk_" + string(b)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	hash := sha256.Sum256([]byte(id + "_" + base64.RawURLEncoding.EncodeToString(secret)))
	scopes := []string{"publish", "read"}
	if tenant == "" {
		scopes = []string{"operator"}
	}
	return store.APIKey{
		ID:        id,
		Tenant:    tenant,
		Name:      "key of " + tenant,
		Scopes:    scopes,
		Hash:      hash[:],
		CreatedAt: createdAt,
	}
}

// Fixture is a stored subscription, event and delivery.
type Fixture struct {
	Sub      *store.Subscription
	Event    store.Event
	Delivery store.Delivery
}

// Seed stores a new subscription of tenant, an event received at at and
// its delivery created at at, failing t on any error.
func Seed(t testing.TB, s store.Store, tenant string, at time.Time) Fixture {
	t.Helper()
	sub := NewSubscription(tenant)
	f := SeedFor(t, s, sub, at)
	return f
}

// SeedFor stores sub (if not stored yet), a new event of sub's tenant
// received at at and its delivery to sub created at at.
func SeedFor(t testing.TB, s store.Store, sub *store.Subscription, at time.Time) Fixture {
	t.Helper()
	ctx := context.Background()
	if err := s.CreateSubscription(ctx, sub, 0); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	ev := NewEvent(sub.Tenant, "order.created", at)
	d := NewDelivery(ev, sub, at)
	if err := s.InsertFanout(ctx, []store.Event{ev}, []store.Delivery{d}); err != nil {
		t.Fatalf("InsertFanout: %v", err)
	}
	return Fixture{Sub: sub, Event: ev, Delivery: d}
}
