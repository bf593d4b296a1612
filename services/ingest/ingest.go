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
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/ssrf"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/proto/openapi"
	"github.com/hookline/hookline/services/internal/subcache"
)

// Deps are the ingest service's collaborators.
type Deps struct {
	Store     store.Store
	Transport transport.Transport
	Logger    *slog.Logger
	// Subscriptions is an optional cache shared with other services in the
	// same process, kept current with every subscription this service
	// writes. Ingest itself never reads subscriptions from a cache.
	Subscriptions *subcache.Cache
	// Resolver resolves subscription hostnames for the SSRF check; nil
	// means net.DefaultResolver.
	Resolver *net.Resolver
}

// Service serves the ingest and admin APIs.
type Service struct {
	cfg      Config
	deps     Deps
	logger   *slog.Logger
	guard    *ssrf.Guard
	resolver *net.Resolver
	subs     *subcache.Cache // shared cache to keep current; may be nil
	now      func() time.Time

	grpcLis, httpLis net.Listener
	grpc             *grpc.Server
	health           *health.Server
	closeOnce        sync.Once
}

// New validates cfg, binds the listeners (so Addr is known before Run) and
// builds the servers. Call Run to serve.
func New(cfg Config, deps Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	if deps.Store == nil || deps.Transport == nil {
		return nil, errors.New("ingest: Store and Transport are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	allow, _ := ssrf.ParsePrefixes(cfg.AllowCIDRs)
	s := &Service{
		cfg: cfg, deps: deps, logger: deps.Logger.With("service", "ingest"),
		guard: ssrf.NewGuard(allow...), resolver: deps.Resolver, subs: deps.Subscriptions,
		now: time.Now,
	}
	if len(cfg.AuthTokens) == 0 {
		s.logger.Warn("API authentication is off: set --ingest-auth-tokens in production")
	}
	var err error
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("ingest: listen on %s: %w", cfg.GRPCAddr, err)
	}
	if cfg.HTTPAddr != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			s.grpcLis.Close()
			return nil, fmt.Errorf("ingest: listen on %s: %w", cfg.HTTPAddr, err)
		}
	}
	maxMsg := 4 << 20
	if need := cfg.MaxPayloadBytes*cfg.MaxBatchEvents/4 + 1<<20; need > maxMsg {
		maxMsg = min(need, 64<<20)
	}
	s.grpc = grpc.NewServer(
		grpc.MaxRecvMsgSize(maxMsg),
		grpc.ChainUnaryInterceptor(s.authUnary),
	)
	hooklinev1.RegisterIngestServiceServer(s.grpc, &ingestServer{s: s})
	hooklinev1.RegisterAdminServiceServer(s.grpc, &adminServer{s: s})
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
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
	errc := make(chan error, 3)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			errc <- fmt.Errorf("ingest: serve gRPC: %w", err)
		}
	}()
	var httpSrv *http.Server
	if s.httpLis != nil {
		h, err := s.httpHandler(ctx)
		if err != nil {
			s.grpc.Stop()
			wg.Wait()
			return err
		}
		httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
	return errors.Join(s.deps.Store.Ready(ctx), s.deps.Transport.Ready(ctx))
}

// httpHandler serves the JSON API through grpc-gateway, dialling this
// service's own gRPC listener so authentication and validation are the
// same on both.
func (s *Service) httpHandler(ctx context.Context) (http.Handler, error) {
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("ingest: gateway client: %w", err)
	}
	go func() { <-ctx.Done(); conn.Close() }()
	gw := runtime.NewServeMux()
	if err := hooklinev1.RegisterIngestServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("ingest: register gateway: %w", err)
	}
	if err := hooklinev1.RegisterAdminServiceHandler(ctx, gw, conn); err != nil {
		return nil, fmt.Errorf("ingest: register gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gw)
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

// authUnary checks the bearer token of every call except health checks
// and reflection.
func (s *Service) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if len(s.cfg.AuthTokens) == 0 || !strings.HasPrefix(info.FullMethod, "/hookline.") {
		return handler(ctx, req)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if !ok {
			continue
		}
		for _, want := range s.cfg.AuthTokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(want)) == 1 {
				return handler(ctx, req)
			}
		}
		return nil, status.Error(codes.Unauthenticated, "authorization: bearer token not recognised")
	}
	return nil, status.Error(codes.Unauthenticated, "authorization: missing \"Bearer <token>\" credentials")
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
