package rowcodec

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/hookline/hookline/pkg/store"
)

// APIKeyColumns are the columns of the api_keys table, in the order of
// APIKey.Dest and APIKey.Args.
const APIKeyColumns = `id, tenant, name, scopes, hash, created_at, expires_at, revoked_at, last_used_at`

// APIKey is an API key in its column form: Scopes is a JSON array; nil
// times are SQL NULL.
type APIKey struct {
	ID, Tenant, Name, Scopes         string
	Hash                             []byte
	CreatedAt                        int64
	ExpiresAt, RevokedAt, LastUsedAt *int64
}

// Dest are scan destinations for APIKeyColumns.
func (r *APIKey) Dest() []any {
	return []any{&r.ID, &r.Tenant, &r.Name, &r.Scopes, &r.Hash, &r.CreatedAt, &r.ExpiresAt, &r.RevokedAt, &r.LastUsedAt}
}

// Args are statement arguments for APIKeyColumns.
func (r *APIKey) Args() []any {
	return []any{r.ID, r.Tenant, r.Name, r.Scopes, r.Hash, r.CreatedAt, r.ExpiresAt, r.RevokedAt, r.LastUsedAt}
}

// EncodeAPIKey is k in column form; nil Scopes are stored as [] and a nil
// Hash as an empty one.
func EncodeAPIKey(k *store.APIKey) (APIKey, error) {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	js, err := MarshalJSON(scopes)
	if err != nil {
		return APIKey{}, fmt.Errorf("encode scopes of %s: %w", k.ID, err)
	}
	hash := k.Hash
	if hash == nil {
		hash = []byte{}
	}
	return APIKey{
		ID: k.ID, Tenant: k.Tenant, Name: k.Name, Scopes: js, Hash: hash,
		CreatedAt: Nanos(k.CreatedAt), ExpiresAt: NullNanos(k.ExpiresAt),
		RevokedAt: NullNanos(k.RevokedAt), LastUsedAt: NullNanos(k.LastUsedAt),
	}, nil
}

// Decode is the API key r holds; empty Scopes are nil.
func (r *APIKey) Decode() (store.APIKey, error) {
	k := store.APIKey{
		ID: r.ID, Tenant: r.Tenant, Name: r.Name, Hash: r.Hash,
		CreatedAt: FromNanos(r.CreatedAt), ExpiresAt: FromNullNanos(r.ExpiresAt),
		RevokedAt: FromNullNanos(r.RevokedAt), LastUsedAt: FromNullNanos(r.LastUsedAt),
	}
	if err := UnmarshalJSON(r.Scopes, &k.Scopes); err != nil {
		return k, fmt.Errorf("decode scopes of %s: %w", r.ID, err)
	}
	if len(k.Scopes) == 0 {
		k.Scopes = nil
	}
	if k.Hash == nil {
		k.Hash = []byte{}
	}
	return k, nil
}

// SameAPIKey reports whether a and b are the same create: equal in every
// field a create sets (ID, Tenant, Name, Scopes, Hash, CreatedAt,
// ExpiresAt), whatever revocation and use happened since.
func SameAPIKey(a, b *store.APIKey) bool {
	return a.ID == b.ID && a.Tenant == b.Tenant && a.Name == b.Name &&
		slices.Equal(a.Scopes, b.Scopes) && bytes.Equal(a.Hash, b.Hash) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.ExpiresAt.Equal(b.ExpiresAt)
}

// CheckAPIKey validates a key to create: it needs an ID.
func CheckAPIKey(k *store.APIKey) error {
	if k.ID == "" {
		return fmt.Errorf("create api key: empty id")
	}
	return nil
}
