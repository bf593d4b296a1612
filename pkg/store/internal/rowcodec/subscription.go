package rowcodec

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
)

// SubscriptionColumns are the columns of the subscriptions table, in the
// order of Subscription.Dest and Subscription.Args. The signing secrets
// are a sealed blob and the id of the key that sealed it; the plaintext
// never is a column.
const SubscriptionColumns = `id, tenant, url, description, event_types, secrets_sealed, secrets_key_id, headers, timeout_ms,
    retry_schedule, rate_limit, state, disabled_reason, failing_since, created_at, updated_at, send_trace_context`

// secretJSON is the stored form of a store.Secret; times are unix ns.
type secretJSON struct {
	Value     string `json:"value"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
}

// Subscription is a subscription in its column form, JSON columns as the
// text json.Marshal produces; nil optional fields are SQL NULL.
type Subscription struct {
	ID, Tenant, URL, Description string
	EventTypes, Headers          string
	// Secrets is the JSON of the signing secrets in the clear. It is not
	// a column: SecretsSealed holds it sealed with the keyring key
	// SecretsKeyID, bound to the subscription's ID. EncodeSubscription
	// sets all three; after a scan, Open (or Decode) sets it.
	Secrets               string
	SecretsSealed         []byte
	SecretsKeyID          string
	TimeoutMS             int64
	RetrySchedule         *string
	RateLimit             int64
	State, DisabledReason string
	FailingSince          *int64
	CreatedAt, UpdatedAt  int64
	SendTraceContext      bool
}

// Dest are scan destinations for SubscriptionColumns.
func (r *Subscription) Dest() []any {
	return []any{&r.ID, &r.Tenant, &r.URL, &r.Description, &r.EventTypes, &r.SecretsSealed, &r.SecretsKeyID, &r.Headers,
		&r.TimeoutMS, &r.RetrySchedule, &r.RateLimit, &r.State, &r.DisabledReason, &r.FailingSince,
		&r.CreatedAt, &r.UpdatedAt, &r.SendTraceContext}
}

// Args are statement arguments for SubscriptionColumns.
func (r *Subscription) Args() []any {
	return []any{r.ID, r.Tenant, r.URL, r.Description, r.EventTypes, r.SecretsSealed, r.SecretsKeyID, r.Headers,
		r.TimeoutMS, r.RetrySchedule, r.RateLimit, r.State, r.DisabledReason, r.FailingSince,
		r.CreatedAt, r.UpdatedAt, r.SendTraceContext}
}

// Equal reports whether r and o hold the same content, comparing the
// optional values they point to and the secrets in the clear (both must
// be opened): the sealed form differs with every seal, as its nonce is
// random.
func (r *Subscription) Equal(o *Subscription) bool {
	a, b := *r, *o
	if (a.RetrySchedule == nil) != (b.RetrySchedule == nil) || (a.FailingSince == nil) != (b.FailingSince == nil) {
		return false
	}
	if a.RetrySchedule != nil && *a.RetrySchedule != *b.RetrySchedule {
		return false
	}
	if a.FailingSince != nil && *a.FailingSince != *b.FailingSince {
		return false
	}
	return a.ID == b.ID && a.Tenant == b.Tenant && a.URL == b.URL && a.Description == b.Description &&
		a.EventTypes == b.EventTypes && a.Headers == b.Headers && a.Secrets == b.Secrets &&
		a.TimeoutMS == b.TimeoutMS && a.RateLimit == b.RateLimit && a.State == b.State &&
		a.DisabledReason == b.DisabledReason && a.CreatedAt == b.CreatedAt && a.UpdatedAt == b.UpdatedAt &&
		a.SendTraceContext == b.SendTraceContext
}

// EncodeSubscription is s in column form, its secrets sealed with kr's
// current key (see SealSecrets). An empty State is stored as enabled;
// Timeout and RetrySchedule keep millisecond precision.
func EncodeSubscription(s *store.Subscription, kr *keyring.Keyring) (Subscription, error) {
	r := Subscription{
		ID: s.ID, Tenant: s.Tenant, URL: s.URL, Description: s.Description,
		TimeoutMS: s.Timeout.Milliseconds(), RateLimit: int64(s.RateLimit),
		State: string(s.State), DisabledReason: s.DisabledReason,
		FailingSince: NullNanos(s.FailingSince),
		CreatedAt:    Nanos(s.CreatedAt), UpdatedAt: Nanos(s.UpdatedAt),
		SendTraceContext: s.SendTraceContext,
	}
	if r.State == "" {
		r.State = string(store.SubscriptionEnabled)
	}
	var err error
	types := s.EventTypes
	if types == nil {
		types = []string{}
	}
	if r.EventTypes, err = MarshalJSON(types); err != nil {
		return r, fmt.Errorf("encode event types: %w", err)
	}
	if r.Secrets, err = EncodeSecrets(s.Secrets); err != nil {
		return r, err
	}
	if r.SecretsKeyID, r.SecretsSealed, err = SealSecrets(kr, s.ID, r.Secrets); err != nil {
		return r, err
	}
	headers := s.Headers
	if headers == nil {
		headers = map[string]string{}
	}
	if r.Headers, err = MarshalJSON(headers); err != nil { // map keys are sorted: stable text
		return r, fmt.Errorf("encode headers: %w", err)
	}
	if s.RetrySchedule != nil {
		ms := make([]int64, len(s.RetrySchedule))
		for i, d := range s.RetrySchedule {
			ms[i] = d.Milliseconds()
		}
		js, err := MarshalJSON(ms)
		if err != nil {
			return r, fmt.Errorf("encode retry schedule: %w", err)
		}
		r.RetrySchedule = &js
	}
	return r, nil
}

// Open sets r.Secrets to the secrets SecretsSealed holds, opened with kr.
func (r *Subscription) Open(kr *keyring.Keyring) error {
	plain, err := OpenSecrets(kr, r.ID, r.SecretsKeyID, r.SecretsSealed)
	if err != nil {
		return err
	}
	r.Secrets = plain
	return nil
}

// Decode is the subscription r holds, its secrets opened with kr.
func (r *Subscription) Decode(kr *keyring.Keyring) (store.Subscription, error) {
	if err := r.Open(kr); err != nil {
		return store.Subscription{}, err
	}
	s := store.Subscription{
		ID: r.ID, Tenant: r.Tenant, URL: r.URL, Description: r.Description,
		Timeout: time.Duration(r.TimeoutMS) * time.Millisecond, RateLimit: int(r.RateLimit),
		State: store.SubscriptionState(r.State), DisabledReason: r.DisabledReason,
		FailingSince: FromNullNanos(r.FailingSince),
		CreatedAt:    FromNanos(r.CreatedAt), UpdatedAt: FromNanos(r.UpdatedAt),
		SendTraceContext: r.SendTraceContext,
	}
	if err := UnmarshalJSON(r.EventTypes, &s.EventTypes); err != nil {
		return s, fmt.Errorf("decode event types of %s: %w", r.ID, err)
	}
	if len(s.EventTypes) == 0 {
		s.EventTypes = nil
	}
	secrets, err := DecodeSecrets(r.Secrets)
	if err != nil {
		return s, fmt.Errorf("decode secrets of %s: %w", r.ID, err)
	}
	s.Secrets = secrets
	if err := UnmarshalJSON(r.Headers, &s.Headers); err != nil {
		return s, fmt.Errorf("decode headers of %s: %w", r.ID, err)
	}
	if len(s.Headers) == 0 {
		s.Headers = nil
	}
	if r.RetrySchedule != nil {
		var ms []int64
		if err := UnmarshalJSON(*r.RetrySchedule, &ms); err != nil {
			return s, fmt.Errorf("decode retry schedule of %s: %w", r.ID, err)
		}
		s.RetrySchedule = make([]time.Duration, len(ms))
		for i, v := range ms {
			s.RetrySchedule[i] = time.Duration(v) * time.Millisecond
		}
	}
	return s, nil
}

// ValidState reports whether st is a state a subscription can be in.
func ValidState(st store.SubscriptionState) bool {
	return st == store.SubscriptionEnabled || st == store.SubscriptionDisabled
}

// EncodeSecrets is the JSON text of secrets, an array of {value,
// created_at, expires_at} (never null), the form that is sealed.
func EncodeSecrets(secrets []store.Secret) (string, error) {
	out := make([]secretJSON, 0, len(secrets))
	for _, sec := range secrets {
		out = append(out, secretJSON{Value: sec.Value, CreatedAt: Nanos(sec.CreatedAt), ExpiresAt: Nanos(sec.ExpiresAt)})
	}
	js, err := MarshalJSON(out)
	if err != nil {
		return "", fmt.Errorf("encode secrets: %w", err)
	}
	return js, nil
}

// DecodeSecrets is the inverse of EncodeSecrets; an empty array (or
// text) is nil.
func DecodeSecrets(js string) ([]store.Secret, error) {
	var in []secretJSON
	if err := UnmarshalJSON(js, &in); err != nil {
		return nil, err
	}
	var out []store.Secret
	for _, sec := range in {
		out = append(out, store.Secret{Value: sec.Value, CreatedAt: FromNanos(sec.CreatedAt), ExpiresAt: FromNanos(sec.ExpiresAt)})
	}
	return out, nil
}

// SealSecrets seals the secrets' JSON text (EncodeSecrets) of subscription
// id with kr's current key, binding it to id, and returns the key's id and
// the sealed bytes.
func SealSecrets(kr *keyring.Keyring, id, secretsJSON string) (keyID string, sealed []byte, err error) {
	if kr == nil {
		return "", nil, errors.New("seal secrets: no keyring")
	}
	keyID, sealed, err = kr.Seal([]byte(secretsJSON), []byte(id))
	if err != nil {
		return "", nil, fmt.Errorf("seal secrets of %s: %w", id, err)
	}
	return keyID, sealed, nil
}

// OpenSecrets opens what SealSecrets returned for subscription id. A key
// kr lacks is an error wrapping both store.ErrMissingSecretKey and
// keyring.ErrUnknownKey.
func OpenSecrets(kr *keyring.Keyring, id, keyID string, sealed []byte) (string, error) {
	if kr == nil {
		return "", errors.New("open secrets: no keyring")
	}
	if keyID == "" {
		return "", fmt.Errorf("open secrets of %s: not sealed (plaintext left by an unfinished migration: run `hookline migrate`)", id)
	}
	plain, err := kr.Open(keyID, sealed, []byte(id))
	if errors.Is(err, keyring.ErrUnknownKey) {
		return "", fmt.Errorf("open secrets of %s: %w: %w", id, store.ErrMissingSecretKey, err)
	}
	if err != nil {
		return "", fmt.Errorf("open secrets of %s: %w", id, err)
	}
	return string(plain), nil
}

// MissingKeys returns the key ids of keyIDs that kr lacks, and an error
// wrapping store.ErrMissingSecretKey naming them (nil when there is
// none). keyIDs are the distinct ids stored rows are sealed with.
func MissingKeys(kr *keyring.Keyring, keyIDs []string) error {
	var missing []string
	for _, id := range keyIDs {
		if id != "" && !kr.Has(id) {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("%w: subscriptions' signing secrets are sealed with key ids %q, which the keyring (%q) lacks: "+
		"add the keys back, then run `hookline secrets reencrypt` before dropping them", store.ErrMissingSecretKey, missing, kr.IDs())
}
