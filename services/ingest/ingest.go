// Package ingest is Hookline's front door: the gRPC IngestService that
// makes events durable in the EVENTS stream, and the AdminService over the
// store, both also served as JSON over HTTP.
//
// Guarantees: Publish returns only after the event is durably stored by
// the broker; an error means "not accepted", and a retry with the same
// idempotency key returns the same event id with duplicate=true. Bad input
// is refused with InvalidArgument and a message naming each bad field.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/hookline/hookline/pkg/ssrf"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/tlsfiles"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/proto/openapi"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/subcache"
	"github.com/hookline/hookline/services/internal/tenantlimit"
	"github.com/hookline/hookline/services/internal/wire"
)

// Store is what the ingest and admin APIs need of the store: every
// subscription, delivery, attempt and event query and write they serve,
// the idempotency keys and the API keys. Every store.Store is one.
type Store interface {
	CreateSubscription(ctx context.Context, s *store.Subscription, maxPerTenant int) error
	GetSubscription(ctx context.Context, scope store.Scope, id string) (*store.Subscription, error)
	ListSubscriptions(ctx context.Context, f store.SubscriptionFilter) ([]store.Subscription, string, error)
	UpdateSubscription(ctx context.Context, s *store.Subscription) error
	DeleteSubscription(ctx context.Context, scope store.Scope, id string) error
	SetSubscriptionState(ctx context.Context, scope store.Scope, id string, state store.SubscriptionState, reason string, now time.Time) error
	GetEvent(ctx context.Context, scope store.Scope, id string) (*store.Event, error)
	CreateAPIKey(ctx context.Context, k *store.APIKey) error
	GetAPIKey(ctx context.Context, id string) (*store.APIKey, error)
	ListAPIKeys(ctx context.Context, f store.APIKeyFilter) ([]store.APIKey, string, error)
	RevokeAPIKey(ctx context.Context, scope store.Scope, id string, now time.Time) error
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
	LookupIdempotencyKeys(ctx context.Context, keys []store.IdempotencyKey) (map[store.IdempotencyKey]store.IdempotencyRecord, error)
	PutIdempotencyKeys(ctx context.Context, recs []store.IdempotencyRecord, now time.Time) ([]store.IdempotencyRecord, error)
	InsertFanout(ctx context.Context, events []store.Event, ds []store.Delivery) error
	GetDelivery(ctx context.Context, scope store.Scope, id string) (*store.Delivery, error)
	ListDeliveries(ctx context.Context, f store.DeliveryFilter) ([]store.Delivery, string, error)
	ListAttempts(ctx context.Context, f store.AttemptFilter) ([]store.Attempt, string, error)
	ScheduleRetries(ctx context.Context, rs []store.ScheduledRetry) error
	Ready(ctx context.Context) error
}

var _ Store = store.Store(nil)

// Service serves the ingest and admin APIs.
type Service struct {
	cfg      Config
	deps     deps.Deps[Store]
	logger   *slog.Logger
	guard    *ssrf.Guard
	resolver *net.Resolver
	// subs is the cache shared with the other services of this process
	// (hookline dev), kept current with every subscription this service
	// writes; nil in a process of its own. Ingest never reads from it.
	subs *subcache.Cache
	now  func() time.Time
	auth *authenticator
	// codec decodes requests, keeping track of strings that are not UTF-8.
	codec *utf8Codec
	// limits are the per-tenant publish rate and subscription limits.
	limits *tenantlimit.Limiter

	// inproc carries the HTTP gateway's calls to the gRPC server in
	// memory, through the same interceptors as network calls.
	inproc *bufconn.Listener

	grpcLis, httpLis net.Listener
	grpc             *grpc.Server
	health           *health.Server
}

// New validates cfg, binds the listeners (so Addr is known before Run) and
// builds the servers. Call Run to serve.
func New(cfg Config, d deps.Deps[Store]) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if err := d.Check("ingest"); err != nil {
		return nil, err
	}
	allow, _ := ssrf.ParsePrefixes(cfg.AllowCIDRs)
	s := &Service{
		cfg: cfg, deps: d, logger: d.Logger,
		guard: ssrf.NewGuard(allow...), resolver: d.Resolver, subs: d.Subscriptions,
		now: d.Now,
	}
	operators, err := cfg.operatorHashes()
	if err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if s.limits, err = tenantlimit.New(cfg.Limits, d.Now); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	s.auth = newAuthenticator(operators, cfg.InsecureNoAuth, d.Store, d.Now, cfg.KeyCacheTTL, cfg.KeyLookupRate)
	switch {
	case cfg.InsecureNoAuth:
		s.logger.Warn("requests without an API key act as an operator (--ingest-insecure-no-auth): for local development only")
	case len(operators) == 0:
		s.logger.Warn("no operator key configured (--ingest-operator-keys): only API keys already in the store are accepted")
	}
	if len(cfg.AuthTokens) > 0 {
		s.logger.Warn("--ingest-auth-tokens is deprecated: each token is accepted as an operator key; move them to --ingest-operator-keys")
	}
	var tlsCfg *tls.Config
	if cfg.TLS.Enabled() {
		r, err := tlsfiles.NewReloader(cfg.TLS, s.logger)
		if err != nil {
			return nil, fmt.Errorf("ingest: TLS: %w", err)
		}
		tlsCfg = r.TLSConfig()
	}
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("ingest: listen on %s: %w", cfg.GRPCAddr, err)
	}
	if cfg.HTTPAddr != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			s.grpcLis.Close()
			return nil, fmt.Errorf("ingest: listen on %s: %w", cfg.HTTPAddr, err)
		}
		if tlsCfg != nil {
			s.httpLis = tls.NewListener(s.httpLis, tlsCfg)
		}
	}
	s.codec = newUTF8Codec()
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(s.codec),
		grpc.MaxRecvMsgSize(cfg.maxMessageBytes()),
		grpc.MaxHeaderListSize(maxHeaderBytes),
		grpc.InTapHandle(s.authTap),
		grpc.ChainUnaryInterceptor(s.authUnary),
	}
	if tlsCfg != nil {
		// The TLS handshake happens on the network listener only: the
		// gateway's in-memory connection is plaintext, and authenticated
		// like any call by its forwarded API key.
		s.grpcLis = tls.NewListener(s.grpcLis, tlsCfg)
	}
	s.grpc = grpc.NewServer(opts...)
	hooklinev1.RegisterIngestServiceServer(s.grpc, &ingestServer{s: s})
	hooklinev1.RegisterAdminServiceServer(s.grpc, &adminServer{s: s})
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	if err := checkMethodScopes(s.grpc); err != nil {
		s.closeListeners()
		return nil, err
	}
	s.inproc = bufconn.Listen(1 << 20)
	return s, nil
}

// GRPCAddr is the bound address of the gRPC listener.
func (s *Service) GRPCAddr() string { return s.grpcLis.Addr().String() }

// HTTPAddr is the bound address of the HTTP listener, or "" when off.
func (s *Service) HTTPAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Run serves until ctx is cancelled, then stops gracefully: in-flight
// calls finish, new ones are refused.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, lis := range []net.Listener{s.grpcLis, s.inproc} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.grpc.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("ingest: serve gRPC: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); s.recordKeyUse(ctx) }()
	var httpSrv *http.Server
	if s.httpLis != nil {
		h, err := s.httpHandler(ctx)
		if err != nil {
			s.grpc.Stop()
			wg.Wait()
			return err
		}
		httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: maxHeaderBytes}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := httpSrv.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("ingest: serve HTTP: %w", err)
			}
		}()
	}
	s.logger.Info("ingest serving", "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.health.Shutdown()
	if httpSrv != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		_ = httpSrv.Shutdown(sctx)
		scancel()
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		s.grpc.Stop()
	}
	cancel()
	wg.Wait()
	return runErr
}

// Ready reports whether the store and the broker answer.
func (s *Service) Ready(ctx context.Context) error {
	return s.deps.Ready(ctx)
}

// closeListeners releases the listeners of a service that will not run.
func (s *Service) closeListeners() {
	s.grpcLis.Close()
	if s.httpLis != nil {
		s.httpLis.Close()
	}
}

// keyUseFlushInterval is how often API keys' last use is written.
const keyUseFlushInterval = 30 * time.Second

// recordKeyUse writes the API keys' last use every keyUseFlushInterval
// and once more when ctx ends.
func (s *Service) recordKeyUse(ctx context.Context) {
	t := time.NewTicker(keyUseFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := s.auth.flush(fctx); err != nil {
				s.logger.Warn("API key use not recorded", "err", err)
			}
			cancel()
			return
		case <-t.C:
			if err := s.auth.flush(ctx); err != nil {
				s.logger.Warn("API key use not recorded; retrying at the next flush", "err", err)
			}
		}
	}
}

// httpHandler serves the JSON API through grpc-gateway, calling this
// service's gRPC server over an in-memory connection, so authentication,
// scopes and validation are the same on both and the gateway needs no
// credentials of its own when the gRPC listener requires client
// certificates.
func (s *Service) httpHandler(ctx context.Context) (http.Handler, error) {
	conn, err := grpc.NewClient("passthrough:///in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("ingest: gateway client: %w", err)
	}
	go func() { <-ctx.Done(); conn.Close() }()
	gw := runtime.NewServeMux(
		runtime.WithOutgoingHeaderMatcher(func(key string) (string, bool) {
			if key == retryAfterHeader {
				return "Retry-After", true // a 429's hint, in HTTP's own header
			}
			return runtime.DefaultHeaderMatcher(key)
		}),
		runtime.WithErrorHandler(s.httpError),
		// Unknown fields are refused, naming the field, rather than
		// dropped: a misspelt field would otherwise be silently ignored.
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
	)
	if err := hooklinev1.RegisterIngestServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("ingest: register gateway: %w", err)
	}
	if err := hooklinev1.RegisterAdminServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("ingest: register gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", s.guardHTTP(gw))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		rctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.Ready(rctx); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Spec)
	})
	return mux, nil
}

// cachePut keeps the shared subscription cache, if any, current after a
// write.
func (s *Service) cachePut(sub *store.Subscription) {
	if s.subs != nil {
		s.subs.Put(sub)
	}
}

// cacheRemove drops a deleted subscription from the shared cache, if any.
func (s *Service) cacheRemove(id string) {
	if s.subs != nil {
		s.subs.Remove(id)
	}
}

// announceDue tells the schedulers that an attempt this service scheduled
// is due at due, so it is released then rather than at the next poll. It
// is best effort: the poll finds it anyway.
func (s *Service) announceDue(ctx context.Context, due time.Time) {
	if err := s.deps.Transport.Notify(ctx, wire.TopicDue, wire.WakeSignal(due)); err != nil {
		s.logger.Debug("announcing a due time failed; the scheduler's poll will find it", "err", err)
	}
}
