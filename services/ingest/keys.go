package ingest

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/store"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/apikey"
)

// maxKeyNameLen caps an API key's name.
const maxKeyNameLen = 200

// CreateAPIKey issues a key. A tenant's manage key issues keys of its own
// tenant with any scope but operator; only an operator issues operator
// keys (which have no tenant).
func (a *adminServer) CreateAPIKey(ctx context.Context, req *hooklinev1.CreateAPIKeyRequest) (*hooklinev1.CreateAPIKeyResponse, error) {
	var v violations
	scopes, err := apikey.ParseScopes(req.GetScopes())
	if err != nil {
		v.add("scopes", "%v", err)
	}
	operatorKey := slices.Contains(scopes, apikey.ScopeOperator)
	if operatorKey && !principalFrom(ctx).operator() {
		return nil, status.Errorf(codes.PermissionDenied, "scopes: only an operator issues operator keys")
	}
	switch {
	case operatorKey && req.GetTenant() != "":
		v.add("tenant", "must be empty for an operator key, which acts for every tenant")
	case !operatorKey:
		validateTenant(&v, "tenant", req.GetTenant())
	}
	if len(req.GetName()) > maxKeyNameLen {
		v.add("name", "longer than %d bytes", maxKeyNameLen)
	}
	now := a.s.now().UTC()
	var expires = fromTS(req.GetExpireTime())
	if req.GetExpireTime() != nil {
		if err := req.GetExpireTime().CheckValid(); err != nil || !expires.After(now) {
			v.add("expire_time", "must be a valid time in the future")
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	key, id, err := apikey.Generate()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "generate key: %v", err)
	}
	k := &store.APIKey{
		ID: id, Tenant: req.GetTenant(), Name: req.GetName(), Scopes: apikey.Strings(scopes),
		Hash: apikey.Hash(key), CreatedAt: now, ExpiresAt: expires.UTC(),
	}
	if err := a.s.deps.Store.CreateAPIKey(ctx, k); err != nil {
		return nil, storeErr("API key "+id, err)
	}
	a.s.logger.Info("API key created", "key_id", id, "tenant", k.Tenant, "scopes", k.Scopes, "by", principalFrom(ctx).String())
	return &hooklinev1.CreateAPIKeyResponse{ApiKey: apiKeyToProto(k), Key: key}, nil
}

// ListAPIKeys lists the keys within the caller's scope.
func (a *adminServer) ListAPIKeys(ctx context.Context, req *hooklinev1.ListAPIKeysRequest) (*hooklinev1.ListAPIKeysResponse, error) {
	var v violations
	limit := pageSize(&v, req.GetPageSize())
	if err := v.err(); err != nil {
		return nil, err
	}
	var err error
	f := store.APIKeyFilter{Scope: scopeOf(ctx, req.GetTenant()), IncludeRevoked: req.GetIncludeRevoked(), Limit: limit}
	query := listQuery("keys", f.Scope, f.IncludeRevoked)
	if f.PageToken, err = unwrapPageToken(query, req.GetPageToken()); err != nil {
		return nil, err
	}
	keys, next, err := a.s.deps.Store.ListAPIKeys(ctx, f)
	if err != nil {
		return nil, storeErr("API keys", err)
	}
	out := &hooklinev1.ListAPIKeysResponse{NextPageToken: wrapPageToken(query, next)}
	for i := range keys {
		out.ApiKeys = append(out.ApiKeys, apiKeyToProto(&keys[i]))
	}
	return out, nil
}

// RevokeAPIKey revokes a key within the caller's scope. This replica stops
// accepting it at once, the others within the key cache's lifetime.
func (a *adminServer) RevokeAPIKey(ctx context.Context, req *hooklinev1.RevokeAPIKeyRequest) (*hooklinev1.APIKey, error) {
	if !apikey.ValidID(req.GetId()) {
		var v violations
		v.add("id", "%q is not an API key id (hk_ followed by 12 characters)", req.GetId())
		return nil, v.err()
	}
	scope := scopeOf(ctx, req.GetTenant())
	now := a.s.now().UTC()
	if err := a.s.deps.Store.RevokeAPIKey(ctx, scope, req.GetId(), now); err != nil {
		return nil, storeErr("API key "+req.GetId(), err)
	}
	a.s.auth.forget(req.GetId())
	k, err := a.s.deps.Store.GetAPIKey(ctx, req.GetId())
	if err != nil {
		return nil, storeErr("API key "+req.GetId(), err)
	}
	if !scope.Includes(k.Tenant) {
		return nil, storeErr("API key "+req.GetId(), store.ErrNotFound)
	}
	a.s.logger.Info("API key revoked", "key_id", k.ID, "tenant", k.Tenant, "by", principalFrom(ctx).String())
	return apiKeyToProto(k), nil
}
