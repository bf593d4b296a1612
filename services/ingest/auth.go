package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/hookline/hookline/pkg/store"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/apikey"
)

// AllTenants is what an operator key names as the tenant of a request to
// act across every tenant; an empty tenant means the same.
const AllTenants = "*"

// methodScopes is the scope each RPC needs. Every RPC of a hookline.v1
// service must have a row: New fails otherwise, so an RPC added without
// deciding who may call it never serves.
var methodScopes = map[string]apikey.Scope{
	hooklinev1.IngestService_Publish_FullMethodName:      apikey.ScopePublish,
	hooklinev1.IngestService_PublishBatch_FullMethodName: apikey.ScopePublish,

	hooklinev1.AdminService_GetSubscription_FullMethodName:   apikey.ScopeRead,
	hooklinev1.AdminService_ListSubscriptions_FullMethodName: apikey.ScopeRead,
	hooklinev1.AdminService_ListDeliveries_FullMethodName:    apikey.ScopeRead,
	hooklinev1.AdminService_GetDelivery_FullMethodName:       apikey.ScopeRead,
	hooklinev1.AdminService_ListAttempts_FullMethodName:      apikey.ScopeRead,
	hooklinev1.AdminService_GetEvent_FullMethodName:          apikey.ScopeRead,
	hooklinev1.AdminService_ListAPIKeys_FullMethodName:       apikey.ScopeRead,

	hooklinev1.AdminService_CreateSubscription_FullMethodName:       apikey.ScopeManage,
	hooklinev1.AdminService_UpdateSubscription_FullMethodName:       apikey.ScopeManage,
	hooklinev1.AdminService_DeleteSubscription_FullMethodName:       apikey.ScopeManage,
	hooklinev1.AdminService_RotateSubscriptionSecret_FullMethodName: apikey.ScopeManage,
	hooklinev1.AdminService_EnableSubscription_FullMethodName:       apikey.ScopeManage,
	hooklinev1.AdminService_DisableSubscription_FullMethodName:      apikey.ScopeManage,
	hooklinev1.AdminService_SendTestEvent_FullMethodName:            apikey.ScopeManage,
	hooklinev1.AdminService_Redeliver_FullMethodName:                apikey.ScopeManage,
	hooklinev1.AdminService_GetSubscriptionSecret_FullMethodName:    apikey.ScopeManage,
	hooklinev1.AdminService_CreateAPIKey_FullMethodName:             apikey.ScopeManage,
	hooklinev1.AdminService_RevokeAPIKey_FullMethodName:             apikey.ScopeManage,
}

// MethodScope returns the scope the RPC fullMethod needs, and false for a
// method that is not Hookline's (health, reflection).
func MethodScope(fullMethod string) (apikey.Scope, bool) {
	s, ok := methodScopes[fullMethod]
	return s, ok
}

// checkMethodScopes fails if a registered hookline RPC has no scope.
func checkMethodScopes(srv *grpc.Server) error {
	var missing []string
	for name, info := range srv.GetServiceInfo() {
		if !strings.HasPrefix(name, "hookline.") {
			continue
		}
		for _, m := range info.Methods {
			if full := "/" + name + "/" + m.Name; methodScopes[full] == "" {
				missing = append(missing, full)
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("ingest: no scope decided for %s", strings.Join(missing, ", "))
	}
	return nil
}

// principal is who a request acts for, once authenticated.
type principal struct {
	keyID  string // "" for a configured operator key or anonymous access
	tenant string // "" for an operator
	scopes []apikey.Scope
}

func (p *principal) operator() bool { return apikey.Allows(p.scopes, apikey.ScopeOperator) }

func (p *principal) String() string {
	switch {
	case p.keyID != "":
		return "API key " + p.keyID
	case p.operator():
		return "the configured operator key"
	}
	return "this caller"
}

type principalKey struct{}

// principalFrom is the request's principal, set by the auth interceptor.
func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey{}).(*principal)
	return p
}

// scopeOf is the store scope of a request whose tenant field (resolved by
// the interceptor) is tenant: a tenant key's own tenant; for an operator,
// the named tenant, or every tenant when none is named. Without a
// principal it is the zero Scope, which every store query refuses.
func scopeOf(ctx context.Context, tenant string) store.Scope {
	p := principalFrom(ctx)
	switch {
	case p == nil:
		return store.Scope{}
	case !p.operator():
		return store.TenantScope(p.tenant)
	case tenant == "":
		return store.AllTenants()
	}
	return store.TenantScope(tenant)
}

// keyStore is what authentication needs of the store.
type keyStore interface {
	GetAPIKey(ctx context.Context, id string) (*store.APIKey, error)
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}

// authenticator turns a request's bearer key into a principal. Keys from
// the store are cached for cacheTTL (so a revocation takes effect on every
// replica within it) and their last use is recorded in batches.
type authenticator struct {
	operators [][]byte // hashes of the configured operator keys
	anonymous bool     // no key: act as operator (hookline dev)
	store     keyStore
	now       func() time.Time
	cacheTTL  time.Duration

	// lookups bounds the store lookups of keys not in the cache; nil
	// means unbounded.
	lookups *rate.Limiter

	mu       sync.Mutex
	cache    map[string]cachedKey
	lastUsed map[string]time.Time // to record at the next flush
}

type cachedKey struct {
	key     *store.APIKey // nil: no such key
	fetched time.Time
	touched time.Time // last-used time known recorded
}

// maxCachedKeys bounds the cache; past it the cache starts over.
const maxCachedKeys = 10000

// touchEvery is how stale a key's recorded last use may get.
const touchEvery = time.Minute

func newAuthenticator(operators [][]byte, anonymous bool, st keyStore, now func() time.Time, ttl time.Duration, lookupsPerSecond float64) *authenticator {
	a := &authenticator{
		operators: operators, anonymous: anonymous, store: st, now: now, cacheTTL: ttl,
		cache: map[string]cachedKey{}, lastUsed: map[string]time.Time{},
	}
	if lookupsPerSecond > 0 {
		a.lookups = rate.NewLimiter(rate.Limit(lookupsPerSecond), max(1, int(2*lookupsPerSecond)))
	}
	return a
}

// errTooManyLookups refuses a key the cache does not know while store
// lookups are over their rate: a flood of made-up keys costs the store a
// bounded number of queries, and keys already cached are unaffected.
var errTooManyLookups = status.Error(codes.Unavailable,
	"authorization: too many lookups of API keys this replica has not seen lately; retry in a second")

var errNoCredentials = status.Error(codes.Unauthenticated, `authorization: missing "Bearer <API key>" credentials`)

// errNeedsLookup is authenticate's answer, with cachedOnly, for a key
// that only the store can tell about.
var errNeedsLookup = errors.New("the key is not in the cache")

// authenticate finds the principal of the bearer key in md. With
// cachedOnly it never waits for the store: a key it would have to look up
// is errNeedsLookup.
func (a *authenticator) authenticate(ctx context.Context, md metadata.MD, cachedOnly bool) (*principal, error) {
	vals := md.Get("authorization")
	if len(vals) == 0 {
		if a.anonymous {
			return &principal{scopes: []apikey.Scope{apikey.ScopeOperator}}, nil
		}
		return nil, errNoCredentials
	}
	if len(vals) > 1 {
		return nil, status.Error(codes.Unauthenticated, "authorization: more than one authorization header")
	}
	key, ok := strings.CutPrefix(vals[0], "Bearer ")
	if !ok || key == "" {
		return nil, errNoCredentials
	}
	hash := apikey.Hash(key)
	for _, op := range a.operators {
		if apikey.Equal(hash, op) {
			return &principal{scopes: []apikey.Scope{apikey.ScopeOperator}}, nil
		}
	}
	id, ok := apikey.ID(key)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "authorization: API key not recognised")
	}
	k, err := a.lookup(ctx, id, cachedOnly)
	if err != nil {
		return nil, err
	}
	now := a.now()
	switch {
	case k == nil || !apikey.Equal(hash, k.Hash):
		return nil, status.Error(codes.Unauthenticated, "authorization: API key not recognised")
	case !k.RevokedAt.IsZero():
		return nil, status.Errorf(codes.Unauthenticated, "authorization: API key %s was revoked", id)
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return nil, status.Errorf(codes.Unauthenticated, "authorization: API key %s expired at %s", id, k.ExpiresAt.UTC().Format(time.RFC3339))
	}
	scopes := make([]apikey.Scope, len(k.Scopes))
	for i, s := range k.Scopes {
		scopes[i] = apikey.Scope(s)
	}
	a.used(id, now)
	return &principal{keyID: id, tenant: k.Tenant, scopes: scopes}, nil
}

// lookup returns the stored key id (nil if there is none), from the cache
// while it is fresh; with cachedOnly a key not fresh in the cache is
// errNeedsLookup.
func (a *authenticator) lookup(ctx context.Context, id string, cachedOnly bool) (*store.APIKey, error) {
	now := a.now()
	a.mu.Lock()
	c, ok := a.cache[id]
	a.mu.Unlock()
	if ok && now.Sub(c.fetched) < a.cacheTTL {
		return c.key, nil
	}
	if cachedOnly {
		return nil, errNeedsLookup
	}
	if a.lookups != nil && !a.lookups.AllowN(now, 1) {
		return nil, errTooManyLookups
	}
	k, err := a.store.GetAPIKey(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		k = nil
	case err != nil:
		return nil, status.Errorf(codes.Unavailable, "authorization: look up API key: %v", err)
	}
	a.mu.Lock()
	if len(a.cache) >= maxCachedKeys {
		clear(a.cache)
	}
	c = cachedKey{key: k, fetched: now, touched: c.touched}
	if k != nil && k.LastUsedAt.After(c.touched) {
		c.touched = k.LastUsedAt
	}
	a.cache[id] = c
	a.mu.Unlock()
	return k, nil
}

// used notes that key id authenticated a request at now, to be recorded
// by the next flush unless a use within touchEvery is recorded already.
func (a *authenticator) used(id string, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.cache[id]
	if now.Sub(c.touched) < touchEvery {
		return
	}
	c.touched = now
	a.cache[id] = c
	a.lastUsed[id] = now
}

// flush records the last uses noted since the previous flush.
func (a *authenticator) flush(ctx context.Context) error {
	a.mu.Lock()
	if len(a.lastUsed) == 0 {
		a.mu.Unlock()
		return nil
	}
	batch := a.lastUsed
	a.lastUsed = map[string]time.Time{}
	a.mu.Unlock()
	if err := a.store.TouchAPIKeys(ctx, batch); err != nil {
		return fmt.Errorf("record API keys' last use: %w", err)
	}
	return nil
}

// forget drops a key from the cache, so that this replica sees a
// revocation it made at once.
func (a *authenticator) forget(id string) {
	a.mu.Lock()
	delete(a.cache, id)
	a.mu.Unlock()
}

// authTap authenticates a call and checks its scope from its headers
// alone, before gRPC reads the request message: a caller without a key,
// with a malformed, unknown-and-cached, revoked or expired key or one of
// the wrong scope never makes the server read its message. gRPC runs the
// tap on the connection's reader with the connection locked, so it never
// waits for the store: a key it would have to look up is left to
// authUnary, after the message is read (and cached from then on). The
// principal travels to authUnary in the stream's context. Health checks
// and reflection pass untouched.
func (s *Service) authTap(ctx context.Context, info *tap.Info) (context.Context, error) {
	p, err := s.authorize(ctx, info.FullMethodName, info.Header, true)
	switch {
	case errors.Is(err, errNeedsLookup):
		return ctx, nil
	case err != nil || p == nil:
		return ctx, err
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// authorize authenticates the key in md and checks it holds the scope of
// fullMethod. It returns a nil principal for a method that is not
// Hookline's (health, reflection), which needs none. With cachedOnly a key
// that needs a store lookup is errNeedsLookup.
func (s *Service) authorize(ctx context.Context, fullMethod string, md metadata.MD, cachedOnly bool) (*principal, error) {
	need, ok := methodScopes[fullMethod]
	if !ok {
		if strings.HasPrefix(fullMethod, "/hookline.") {
			return nil, status.Errorf(codes.PermissionDenied, "%s: no scope allows this method", fullMethod)
		}
		return nil, nil
	}
	p, err := s.auth.authenticate(ctx, md, cachedOnly)
	if err != nil {
		return nil, err
	}
	if !apikey.Allows(p.scopes, need) {
		return nil, status.Errorf(codes.PermissionDenied, "%s has scopes %s; %s needs %q",
			p, strings.Join(apikey.Strings(p.scopes), ","), fullMethod[strings.LastIndexByte(fullMethod, '/')+1:], need)
	}
	return p, nil
}

// authUnary resolves the request's tenant fields against the key's
// tenant before the handler runs, the key and its scope having been
// checked by authTap before the request was read.
func (s *Service) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	badField, bad := s.codec.badUTF8(req) // taken at once, so the codec never keeps it
	p := principalFrom(ctx)
	if p == nil {
		md, _ := metadata.FromIncomingContext(ctx)
		var err error
		if p, err = s.authorize(ctx, info.FullMethod, md, false); err != nil {
			return nil, err
		}
		if p == nil {
			return handler(ctx, req) // health, reflection
		}
		ctx = context.WithValue(ctx, principalKey{}, p)
	}
	if bad {
		var v violations
		v.add(badField, "is not valid UTF-8")
		return nil, v.err()
	}
	if m, ok := req.(proto.Message); ok {
		if err := resolveTenants(m.ProtoReflect(), p, ""); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// resolveTenants checks every string field named tenant in m, at any
// depth (a batch's events, a subscription in a create): a tenant key's
// request may leave it empty, which becomes the key's tenant, or name the
// key's tenant; naming another is PermissionDenied, naming the field
// (path is the field path of m, "" at the top). An operator's "*" becomes
// empty (every tenant). It allocates nothing unless it refuses.
func resolveTenants(m protoreflect.Message, p *principal, path string) error {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.Name() == "tenant" && fd.Kind() == protoreflect.StringKind && !fd.IsList():
			if err := resolveTenant(m, fd, p, path); err != nil {
				return err
			}
		case fd.Kind() != protoreflect.MessageKind || fd.IsMap() || !m.Has(fd):
		case fd.IsList():
			list := m.Get(fd).List()
			for j := range list.Len() {
				if err := resolveTenants(list.Get(j).Message(), p, ""); err != nil {
					return prefixField(err, fmt.Sprintf("%s%s[%d].", path, fd.Name(), j))
				}
			}
		default:
			if err := resolveTenants(m.Get(fd).Message(), p, ""); err != nil {
				return prefixField(err, path+string(fd.Name())+".")
			}
		}
	}
	return nil
}

// prefixField puts the path of the message a refusal came from before the
// field its message names.
func prefixField(err error, path string) error {
	st := status.Convert(err)
	return status.Error(st.Code(), path+st.Message())
}

func resolveTenant(m protoreflect.Message, fd protoreflect.FieldDescriptor, p *principal, path string) error {
	got := m.Get(fd).String()
	switch {
	case p.operator():
		if got == AllTenants {
			m.Clear(fd)
		}
	case got == "":
		m.Set(fd, protoreflect.ValueOfString(p.tenant))
	case got != p.tenant:
		return status.Errorf(codes.PermissionDenied, "%stenant: %s acts for tenant %q only, not %q", path, p, p.tenant, got)
	}
	return nil
}
