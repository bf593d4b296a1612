// Package store is the neutral contract for Hookline's durable state:
// subscriptions, events, deliveries, attempts, scheduled retries and
// idempotency keys.
//
// Two implementations exist: sqlite (embedded, for `hookline dev` and quick
// tests) and crdb (CockroachDB over the PostgreSQL wire protocol, for
// production). Both pass the conformance suite in storetest, which is the
// executable form of the guarantees documented here.
//
// Every write is idempotent: a write repeated after an ambiguous failure
// (a transaction retried after its commit was lost) leaves the same state
// as a single write.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors returned by every implementation. Callers test them with errors.Is.
var (
	// ErrNotFound means the addressed row does not exist, or lies outside
	// the query's Scope (which is indistinguishable).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means a create collided with an existing row whose
	// content differs.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalidPageToken means a list call got a page token that no
	// earlier page of the same list returned.
	ErrInvalidPageToken = errors.New("store: invalid page token")
	// ErrNoScope means a tenant-facing query was given the zero Scope: a
	// query that does not say which tenants it may see is refused rather
	// than run across every tenant.
	ErrNoScope = errors.New("store: query without a tenant scope")
	// ErrLimitExceeded means a create would take the tenant past a limit
	// it was given (the most subscriptions of one tenant).
	ErrLimitExceeded = errors.New("store: tenant limit exceeded")
	// ErrMissingSecretKey means a stored signing secret is sealed with a
	// key the store's keyring does not hold (see package keyring).
	ErrMissingSecretKey = errors.New("store: signing secret sealed with a key not in the keyring")
)

// Scope is the set of tenants a tenant-facing query may read or write:
// one tenant, or every tenant (the operator's scope). The zero Scope
// matches nothing, and every query given it fails with ErrNoScope, so a
// query cannot be built without saying whose data it may touch.
type Scope struct {
	tenant string
	all    bool
}

// TenantScope is the scope of one tenant. An empty tenant gives the zero
// Scope, which every query refuses.
func TenantScope(tenant string) Scope { return Scope{tenant: tenant} }

// AllTenants is the operator's scope: every tenant's rows.
func AllTenants() Scope { return Scope{all: true} }

// IsZero reports whether s is the zero Scope, which matches nothing.
func (s Scope) IsZero() bool { return !s.all && s.tenant == "" }

// All reports whether s spans every tenant.
func (s Scope) All() bool { return s.all }

// Tenant is the one tenant s is restricted to; "" when s spans every
// tenant or is zero.
func (s Scope) Tenant() string { return s.tenant }

// Includes reports whether a row of tenant lies within s.
func (s Scope) Includes(tenant string) bool {
	return s.all || (s.tenant != "" && s.tenant == tenant)
}

// String is the tenant, "*" for every tenant, or "(none)".
func (s Scope) String() string {
	switch {
	case s.all:
		return "*"
	case s.tenant == "":
		return "(none)"
	}
	return s.tenant
}

// SubscriptionState says whether a subscription receives deliveries.
type SubscriptionState string

// Subscription states.
const (
	// SubscriptionEnabled subscriptions receive deliveries.
	SubscriptionEnabled SubscriptionState = "enabled"
	// SubscriptionDisabled subscriptions receive nothing; their deliveries
	// are parked and redriven when the subscription is enabled again.
	SubscriptionDisabled SubscriptionState = "disabled"
)

// Secret is one signing secret of a subscription.
type Secret struct {
	// Value is "whsec_" followed by the base64 of at least 24 random bytes.
	Value string
	// CreatedAt is when the secret was issued.
	CreatedAt time.Time
	// ExpiresAt is when the secret stops being used; zero means never.
	// A rotated-out secret keeps signing until it expires, so receivers
	// can switch without a gap.
	ExpiresAt time.Time
}

// ActiveAt reports whether the secret signs at now: it has no expiry, or
// expires after now.
func (s Secret) ActiveAt(now time.Time) bool {
	return s.ExpiresAt.IsZero() || now.Before(s.ExpiresAt)
}

// Subscription is where and how a tenant wants matching events delivered.
type Subscription struct {
	ID     string // "sub_" + ULID
	Tenant string
	// URL is the http(s) endpoint deliveries are POSTed to.
	URL         string
	Description string
	// EventTypes are the patterns of event types delivered: an exact type
	// ("order.created"), a prefix wildcard ("order.*") or everything ("*").
	EventTypes []string
	// Secrets sign every delivery; all unexpired secrets sign at once.
	Secrets []Secret
	// Headers are added to every delivery request.
	Headers map[string]string
	// Timeout bounds each attempt; zero means the service default.
	Timeout time.Duration
	// RetrySchedule is the delay before each retry; nil means the
	// service default. Its length is the number of retries.
	RetrySchedule []time.Duration
	// RateLimit caps deliveries per second to this endpoint; 0 = no cap.
	RateLimit int
	State     SubscriptionState
	// DisabledReason says why State is disabled (by an operator, on 410
	// Gone, after failing continuously).
	DisabledReason string
	// FailingSince is when the current unbroken run of failed attempts
	// began; zero while the endpoint is healthy.
	FailingSince time.Time
	// SendTraceContext says whether deliveries carry the W3C trace context
	// of their attempt (the traceparent and tracestate headers) to the
	// receiver. Off by default: receivers are third parties, and a trace
	// id tells them about the sender's tracing.
	SendTraceContext bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

// Event is an accepted event, kept so deliveries can be retried and
// replayed.
type Event struct {
	ID         string // "evt_" + ULID, or derived from the idempotency key
	Tenant     string
	Type       string
	Payload    []byte // JSON
	Labels     map[string]string
	OccurredAt time.Time
	ReceivedAt time.Time
}

// DeliveryStatus is the state of one (event, subscription) delivery.
type DeliveryStatus string

// Delivery statuses.
const (
	// DeliveryPending: created, first attempt not yet recorded.
	DeliveryPending DeliveryStatus = "pending"
	// DeliverySucceeded: an attempt got a 2xx.
	DeliverySucceeded DeliveryStatus = "succeeded"
	// DeliveryRetrying: the last attempt failed and another is scheduled.
	DeliveryRetrying DeliveryStatus = "retrying"
	// DeliveryParked: held while the subscription is disabled.
	DeliveryParked DeliveryStatus = "parked"
	// DeliveryDead: the retry schedule is exhausted (or the subscription
	// is gone); no further attempts are made unless redelivered.
	DeliveryDead DeliveryStatus = "dead"
)

// Delivery is one event on its way to one subscription. Its ID is derived
// from (EventID, SubscriptionID), so a repeated fan-out collapses.
type Delivery struct {
	ID             string
	EventID        string
	SubscriptionID string
	Tenant         string
	EventType      string
	Status         DeliveryStatus
	// Attempts is the number of the highest attempt recorded.
	Attempts       int
	NextAttemptAt  time.Time // zero when nothing is scheduled
	LastStatusCode int
	LastError      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Attempt is one HTTP request made for a delivery.
type Attempt struct {
	DeliveryID     string
	Number         int // 1-based, unique per delivery
	EventID        string
	SubscriptionID string
	Tenant         string
	StartedAt      time.Time
	Duration       time.Duration
	StatusCode     int    // 0 when no response was received
	ResponseBody   []byte // capped by the delivery service
	Error          string // network error, timeout, refused by the SSRF guard...
	// TraceParent is the W3C traceparent of the attempt's own span
	// ("00-<trace id>-<span id>-<flags>"); "" when the attempt was not
	// traced. The store keeps it as given.
	TraceParent string
}

// AttemptResult is an attempt together with what it leads to: the
// delivery's new status and, when the delivery is retrying, when its next
// attempt is due. The delivery service decides all of it and RecordAttempts
// writes all of it in one transaction, so an attempt is never recorded
// without its consequence.
type AttemptResult struct {
	Attempt Attempt
	// Status becomes the delivery's status, provided no higher-numbered
	// attempt of the same delivery is already recorded.
	Status DeliveryStatus
	// NextAttemptAt is when attempt Attempt.Number+1 is due. It is required
	// with Status retrying (RecordAttempts schedules that attempt, as
	// ScheduleRetries would, with Attempt.TraceParent as the retry's
	// TraceParent, and sets the delivery's NextAttemptAt) and ignored with
	// any other status.
	NextAttemptAt time.Time
	// DeliveryError, when not empty, becomes the delivery's LastError
	// instead of the attempt's Error: dead-lettering says why the delivery
	// ended ("retry schedule exhausted after 8 attempts: endpoint returned
	// 500"). The attempt keeps its own Error.
	DeliveryError string
}

// ScheduledRetry is a durable due time for the next attempt of a delivery.
// A delivery has at most one.
type ScheduledRetry struct {
	DeliveryID string
	Attempt    int // number of the attempt to make when due
	DueAt      time.Time
	// TraceParent is the W3C traceparent of the attempt that scheduled
	// this retry, so that the retry's span can link to it; "" when that
	// attempt was not traced, and for a retry no attempt scheduled (a
	// parked delivery redriven, a test event's first attempt). It is
	// data, not identity: CompleteRetries ignores it.
	TraceParent string
}

// IdempotencyKey is one tenant's idempotency key.
type IdempotencyKey struct {
	Tenant string
	Key    string
}

// IdempotencyRecord maps an idempotency key to the event it was first
// used for, and to the request it was used with.
type IdempotencyRecord struct {
	IdempotencyKey
	EventID string
	// Fingerprint identifies the request the key was first used with (the
	// ingest service's hash of event type and payload), so that a reuse of
	// the key with another request can be told from a retry. Empty on
	// records written before fingerprints were kept: those match any.
	Fingerprint []byte
}

// DueRetry is a claimed retry with what is needed to publish it.
type DueRetry struct {
	ScheduledRetry
	Delivery Delivery
	Event    Event
}

// SubscriptionFilter selects subscriptions to list.
type SubscriptionFilter struct {
	Scope     Scope // required: the zero Scope is ErrNoScope
	State     SubscriptionState
	Limit     int    // 0 means 100
	PageToken string // from a previous page
}

// DeliveryFilter selects deliveries to list, newest first.
type DeliveryFilter struct {
	Scope          Scope // required: the zero Scope is ErrNoScope
	SubscriptionID string
	EventID        string
	Status         DeliveryStatus
	CreatedAfter   time.Time // inclusive; zero means unbounded
	CreatedBefore  time.Time // exclusive; zero means unbounded
	Limit          int       // 0 means 100
	PageToken      string
}

// AttemptFilter selects attempts to list, newest first.
type AttemptFilter struct {
	Scope          Scope // required: the zero Scope is ErrNoScope
	DeliveryID     string
	SubscriptionID string
	EventID        string
	Limit          int // 0 means 100
	PageToken      string
}

// SubscriptionHealth classes a subscription for Stats.
type SubscriptionHealth string

// Subscription health classes.
const (
	// HealthHealthy: enabled, FailingSince zero.
	HealthHealthy SubscriptionHealth = "healthy"
	// HealthFailing: enabled, FailingSince set (its attempts have been
	// failing since then).
	HealthFailing SubscriptionHealth = "failing"
	// HealthDisabled: disabled, whatever FailingSince says.
	HealthDisabled SubscriptionHealth = "disabled"
)

// RetryDueBucket classes a scheduled retry for Stats by how long after
// the given now it is due. Its value is a short label for metrics.
type RetryDueBucket string

// Retry due buckets, in order of due time. Each holds the due times after
// the previous bucket's end up to and including its own end (UpTo).
const (
	// DueOverdue: DueAt <= now. A retry being released (claimed, not yet
	// completed) counts here until it is completed.
	DueOverdue RetryDueBucket = "overdue"
	// DueIn1m: now < DueAt <= now+1m.
	DueIn1m RetryDueBucket = "0-1m"
	// DueIn10m: now+1m < DueAt <= now+10m.
	DueIn10m RetryDueBucket = "1m-10m"
	// DueIn1h: now+10m < DueAt <= now+1h.
	DueIn1h RetryDueBucket = "10m-1h"
	// DueIn1d: now+1h < DueAt <= now+24h.
	DueIn1d RetryDueBucket = "1h-1d"
	// DueLater: DueAt > now+24h.
	DueLater RetryDueBucket = "1d+"
)

// RetryDueBuckets lists every RetryDueBucket in order of due time.
var RetryDueBuckets = [...]RetryDueBucket{DueOverdue, DueIn1m, DueIn10m, DueIn1h, DueIn1d, DueLater}

// UpTo is how long after now the bucket's due times end (inclusive): 0
// for DueOverdue, 1m for DueIn1m and so on; ok is false for DueLater,
// which has no end, and for an unknown bucket.
func (b RetryDueBucket) UpTo() (d time.Duration, ok bool) {
	switch b {
	case DueOverdue:
		return 0, true
	case DueIn1m:
		return time.Minute, true
	case DueIn10m:
		return 10 * time.Minute, true
	case DueIn1h:
		return time.Hour, true
	case DueIn1d:
		return 24 * time.Hour, true
	}
	return 0, false
}

// RetryDueBucketOf is the bucket of a retry due at due, seen at now.
func RetryDueBucketOf(due, now time.Time) RetryDueBucket {
	d := due.Sub(now)
	for _, b := range RetryDueBuckets {
		if upTo, ok := b.UpTo(); !ok || d <= upTo {
			return b
		}
	}
	return DueLater
}

// StatsDeliveryStatuses are the delivery statuses Stats counts: every
// status but succeeded, which is most of the table and ends nothing an
// operator must act on.
var StatsDeliveryStatuses = [...]DeliveryStatus{DeliveryPending, DeliveryRetrying, DeliveryParked, DeliveryDead}

// SubscriptionHealths lists every SubscriptionHealth.
var SubscriptionHealths = [...]SubscriptionHealth{HealthHealthy, HealthFailing, HealthDisabled}

// Stats counts the durable state across every tenant, for operator
// metrics (Store.Stats). Every map has an entry for each of its keys, zero
// counts included, so that a metric reports 0 rather than nothing.
type Stats struct {
	// Deliveries counts deliveries by status, for the statuses of
	// StatsDeliveryStatuses (pending, retrying, parked, dead).
	Deliveries map[DeliveryStatus]int64
	// Subscriptions counts subscriptions by health (SubscriptionHealths);
	// the three counts add up to every subscription.
	Subscriptions map[SubscriptionHealth]int64
	// ScheduledRetries counts scheduled retries (put-off attempts
	// included) by how soon they are due (RetryDueBuckets); the counts add
	// up to every scheduled retry.
	ScheduledRetries map[RetryDueBucket]int64
}

// NewStats is a Stats whose maps hold every key, each counting zero.
func NewStats() Stats {
	st := Stats{
		Deliveries:       make(map[DeliveryStatus]int64, len(StatsDeliveryStatuses)),
		Subscriptions:    make(map[SubscriptionHealth]int64, len(SubscriptionHealths)),
		ScheduledRetries: make(map[RetryDueBucket]int64, len(RetryDueBuckets)),
	}
	for _, k := range StatsDeliveryStatuses {
		st.Deliveries[k] = 0
	}
	for _, k := range SubscriptionHealths {
		st.Subscriptions[k] = 0
	}
	for _, k := range RetryDueBuckets {
		st.ScheduledRetries[k] = 0
	}
	return st
}

// APIKey is a credential of the API, bound to a tenant and scopes. The
// key itself is shown once, when created; the store keeps only its hash.
type APIKey struct {
	// ID is the key's public prefix ("hk_" + 12 characters), unique, by
	// which the key is found when presented and listed.
	ID string
	// Tenant is the tenant the key acts for; empty for an operator key.
	Tenant string
	// Name says what the key is for.
	Name string
	// Scopes are what the key may do: publish, read, manage, operator.
	Scopes []string
	// Hash is the SHA-256 of the whole key.
	Hash []byte
	// CreatedAt is when the key was issued.
	CreatedAt time.Time
	// ExpiresAt is when the key stops working; zero means never.
	ExpiresAt time.Time
	// RevokedAt is when the key was revoked; zero while it is not.
	RevokedAt time.Time
	// LastUsedAt is when the key last authenticated a request, recorded
	// coarsely (see TouchAPIKeys); zero if never.
	LastUsedAt time.Time
}

// APIKeyFilter selects API keys to list, ordered by ID.
type APIKeyFilter struct {
	Scope          Scope // required: the zero Scope is ErrNoScope
	IncludeRevoked bool
	Limit          int // 0 means 100
	PageToken      string
}

// Store is the durable state shared by every service replica.
//
// Tenant-facing queries (the admin API's) take a Scope and see only rows
// of the tenants it includes: a row of another tenant is ErrNotFound, as
// if it did not exist, and a list never holds one, whatever else the
// filter names. The condition is part of the query itself; the zero Scope
// fails with ErrNoScope before anything is read or written. The
// pipeline's own queries (claiming due retries, recording attempts...)
// address rows by id across tenants.
//
// Signing secrets are sealed with the store's keyring before they are
// written and opened when read: the store holds no plaintext secret.
// Opening a store fails, wrapping ErrMissingSecretKey and naming the key
// ids, when some secret is sealed with a key the keyring lacks.
type Store interface {
	// CreateSubscription inserts s (ID, CreatedAt and UpdatedAt set by the
	// caller). Repeating an identical create succeeds, even at the limit; a
	// create whose ID exists with other content is ErrConflict. When
	// maxPerTenant is above zero and s.Tenant has that many subscriptions
	// already, nothing is written and the error is ErrLimitExceeded; the
	// count and the insert are one transaction, so concurrent creates never
	// take a tenant past the limit. Zero or less means no limit.
	CreateSubscription(ctx context.Context, s *Subscription, maxPerTenant int) error
	// GetSubscription returns the subscription with id within scope, or
	// ErrNotFound.
	GetSubscription(ctx context.Context, scope Scope, id string) (*Subscription, error)
	// ListSubscriptions returns one page and the token of the next ("" at
	// the end), ordered by ID.
	ListSubscriptions(ctx context.Context, f SubscriptionFilter) ([]Subscription, string, error)
	// UpdateSubscription replaces every field of the subscription s.ID
	// (tenant must match) and sets UpdatedAt; ErrNotFound if absent.
	UpdateSubscription(ctx context.Context, s *Subscription) error
	// DeleteSubscription removes it; ErrNotFound if absent from scope.
	DeleteSubscription(ctx context.Context, scope Scope, id string) error
	// SetSubscriptionState enables or disables a subscription within scope
	// and records the reason. Enabling clears FailingSince.
	SetSubscriptionState(ctx context.Context, scope Scope, id string, state SubscriptionState, reason string, now time.Time) error
	// SetSubscriptionFailing sets FailingSince (zero clears it).
	SetSubscriptionFailing(ctx context.Context, id string, since time.Time) error
	// SubscriptionsRevision returns the subscription revision, which every
	// committed subscription write (each method above that changes a
	// subscription) increases in the same transaction. A cache loaded at
	// revision r is current as long as the revision is still r.
	SubscriptionsRevision(ctx context.Context) (int64, error)

	// ReencryptSecrets seals again, with the keyring's current key, the
	// secrets of up to limit (at least 1) subscriptions sealed with another
	// key, and returns how many it moved (0 when none is left). It is safe
	// beside concurrent writes: a row changed meanwhile is left as that
	// write left it. It changes no subscription's content, so the revision
	// stays.
	ReencryptSecrets(ctx context.Context, limit int) (int, error)

	// CreateAPIKey inserts k; ErrConflict if its ID exists with other
	// content. Repeating an identical create (equal in every field but
	// RevokedAt and LastUsedAt) succeeds.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns the key with id whatever its tenant (it is how a
	// presented key is found before its tenant is known), revoked or
	// expired ones included, or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns one page of keys within the filter's scope and
	// the token of the next ("" at the end).
	ListAPIKeys(ctx context.Context, f APIKeyFilter) ([]APIKey, string, error)
	// RevokeAPIKey sets the key's RevokedAt to now unless it is revoked
	// already (revoking twice keeps the first time); ErrNotFound if absent
	// from scope.
	RevokeAPIKey(ctx context.Context, scope Scope, id string, now time.Time) error
	// TouchAPIKeys records when each key was last used, in one
	// transaction; a time earlier than the recorded one is ignored, as are
	// a zero time and an unknown key.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error

	// GetEvent returns the event with id within scope, or ErrNotFound.
	GetEvent(ctx context.Context, scope Scope, id string) (*Event, error)

	// LookupIdempotencyKeys returns the record of each of keys that has
	// one; keys without one are absent from the map.
	LookupIdempotencyKeys(ctx context.Context, keys []IdempotencyKey) (map[IdempotencyKey]IdempotencyRecord, error)
	// PutIdempotencyKeys records each key -> event ID and fingerprint, in
	// one transaction, unless the key has a record already: the first
	// writer wins, and within one call the earliest record of a key. It
	// returns the record kept for each record's key afterwards, in order
	// (the caller's own, or the first writer's with its event ID and
	// fingerprint).
	PutIdempotencyKeys(ctx context.Context, recs []IdempotencyRecord, now time.Time) ([]IdempotencyRecord, error)

	// InsertFanout stores events and deliveries (of those events) together,
	// atomically: either all of them are stored or, on error, none. A row
	// whose ID exists is left as is, and of several rows with one ID only
	// the first counts; either slice may be empty. A delivery's empty
	// Status is stored as pending and its zero UpdatedAt as CreatedAt. A
	// delivery inserted with a non-zero NextAttemptAt also gets a scheduled
	// retry of its next attempt (Attempts+1: attempt 1 for a new delivery)
	// due then, in the same transaction, so the scheduler releases its
	// first attempt (the admin API's test event); a delivery that existed
	// already gets none, so repeating a call does not bring back a retry
	// released since. It is fanout's one write per batch: one transaction
	// and, where the store is across a network, one round trip.
	InsertFanout(ctx context.Context, events []Event, ds []Delivery) error
	// GetDelivery returns the delivery with id within scope, or
	// ErrNotFound.
	GetDelivery(ctx context.Context, scope Scope, id string) (*Delivery, error)
	// ListDeliveries returns one page, newest first, and the next token.
	ListDeliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, string, error)

	// RecordAttempts stores attempts and their consequences in one
	// transaction: each delivery moves to its new status (LastError from
	// DeliveryError or the attempt's Error); a retrying delivery gets its
	// next attempt scheduled at NextAttemptAt, with the attempt's
	// TraceParent (replacing any scheduled retry and its lease); a final status (succeeded, dead, parked) clears
	// NextAttemptAt and removes the delivery's scheduled retries for that
	// attempt or earlier ones. An attempt already recorded (same delivery,
	// number and StartedAt: the batch written again) is ignored with all
	// its consequences, which were written with it. Another attempt under
	// a number already recorded (two messages made the same attempt: a
	// request the endpoint did receive) is recorded too, as a repeat,
	// under the delivery's next number, so the history holds every
	// request: a repeat that succeeded makes the delivery succeeded; any
	// other keeps its status, and a scheduled retry at or below the new
	// number moves just past it (due when it was) — unless the delivery is
	// retrying with no retry scheduled (the last one was released), when
	// the repeat's own consequence holds (its status; for retrying, the
	// next attempt scheduled at its NextAttemptAt with its TraceParent), so that a retrying
	// delivery always has an attempt coming. A delivery whose
	// recorded attempt count is already at or above the attempt's number
	// otherwise keeps its status and schedule. A result
	// with Status retrying and a zero NextAttemptAt is an error, and
	// nothing of the batch is written.
	RecordAttempts(ctx context.Context, results []AttemptResult) error
	// ListAttempts returns one page, newest first, and the next token.
	ListAttempts(ctx context.Context, f AttemptFilter) ([]Attempt, string, error)

	// ScheduleRetries stores due times, each with its TraceParent
	// (replacing a delivery's earlier one, TraceParent included), and sets
	// each delivery to retrying with NextAttemptAt = DueAt, or to
	// pending when the retry is of attempt 1 (a first attempt put off, as
	// the delivery service does with an endpoint's backlog; an operator's
	// redeliver schedules the next attempt the same way). A retry whose
	// Attempt is not above the delivery's recorded Attempts is stale (that
	// attempt was made already, e.g. a put-off attempt written after the
	// attempt was made elsewhere) and is skipped, as is one for an unknown
	// delivery.
	ScheduleRetries(ctx context.Context, rs []ScheduledRetry) error
	// ClaimDueRetries leases up to limit retries due at or before now that
	// no one else holds a live lease on, for lease. A claimer that dies
	// loses its lease and the retries become claimable again. Each comes
	// as it was scheduled, its TraceParent included.
	ClaimDueRetries(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]DueRetry, error)
	// CompleteRetries removes the retries once published. A retry that was
	// rescheduled since (different Attempt or DueAt: the same attempt can
	// be put off again) is kept.
	CompleteRetries(ctx context.Context, rs []ScheduledRetry) error
	// MarkDead sets deliveries to dead with the given reason.
	MarkDead(ctx context.Context, deliveryIDs []string, reason string, now time.Time) error
	// ParkDeliveries sets deliveries to parked, to be redriven when their
	// subscription is enabled.
	ParkDeliveries(ctx context.Context, deliveryIDs []string, now time.Time) error
	// RedriveParked turns up to limit parked deliveries of enabled
	// subscriptions into retries due now, and returns how many it moved.
	RedriveParked(ctx context.Context, now time.Time, limit int) (int, error)

	// Purge deletes up to limit events, deliveries, attempts and
	// idempotency keys created before before, returning how many rows went.
	// Deliveries still pending, retrying or parked are kept.
	Purge(ctx context.Context, before time.Time, limit int) (int, error)

	// Stats counts, across every tenant, deliveries by status, subscriptions
	// by health and scheduled retries by how soon after now they are due
	// (see Stats). It is the operator's metrics read, made every few
	// seconds by one service: each count reads an index, never a whole
	// table, and it writes nothing.
	Stats(ctx context.Context, now time.Time) (Stats, error)

	// Ready reports whether the store answers, for /readyz.
	Ready(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}
