package telemetry_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"

	"github.com/hookline/hookline/pkg/telemetry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func newTelemetry(t *testing.T, opts telemetry.Options) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	return tel
}

// TestTracingOffUnlessConfigured: spans are exported only when the
// environment asks for them, and a setting telemetry does not understand
// is refused naming its variable.
func TestTracingOffUnlessConfigured(t *testing.T) {
	t.Parallel()
	const endpoint = "http://127.0.0.1:4317"
	tests := []struct {
		name    string
		env     map[string]string
		want    bool
		wantErr string
	}{
		{"nothing set", nil, false, ""},
		{"an endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, true, ""},
		{"a traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}, true, ""},
		{"otlp named", map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, true, ""},
		{"none wins over an endpoint", map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, false, ""},
		{"SDK disabled", map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}, false, ""},
		{"over HTTP", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, true, ""},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, false, `OTEL_TRACES_EXPORTER "zipkin"`},
		{"unknown protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, false, `OTEL_EXPORTER_OTLP_PROTOCOL "http/json"`},
		{"bad resource attributes", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "team"}, false, `OTEL_RESOURCE_ATTRIBUTES: "team": want key=value`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tel, err := telemetry.New(context.Background(), telemetry.Options{ServiceName: "svc", Getenv: env(tc.env)})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer tel.Shutdown(context.Background())
			if got := tel.TracingEnabled(); got != tc.want {
				t.Errorf("tracing enabled %v, want %v", got, tc.want)
			}
		})
	}
}

// TestResource: the service's identity, overridden by OTEL_SERVICE_NAME
// and extended by OTEL_RESOURCE_ATTRIBUTES (percent-decoded).
func TestResource(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, telemetry.Options{ServiceName: "hookline-delivery", ServiceVersion: "1.2.3", InstanceID: "pod-7",
		Getenv: env(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod, team=web%20hooks", "OTEL_SERVICE_NAME": "delivery-eu"})})
	got := map[attribute.Key]string{}
	for _, kv := range tel.Resource().Attributes() {
		got[kv.Key] = kv.Value.Emit()
	}
	want := map[attribute.Key]string{
		"service.name": "delivery-eu", "service.version": "1.2.3", "service.instance.id": "pod-7",
		"deployment.environment": "prod", "team": "web hooks",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (resource %v)", k, got[k], v, got)
		}
	}
}

// TestMetricsHandler: an instrument of the meter provider, the Go
// runtime's collector and the resource (target_info) are served in the
// Prometheus text format.
func TestMetricsHandler(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t, telemetry.Options{ServiceName: "hookline-ingest", InstanceID: "i-1", Getenv: env(nil)})
	c, err := tel.MeterProvider().Meter("test").Int64Counter("hookline.test.events")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3, metricAttr("outcome", "accepted"))
	srv := httptest.NewServer(tel.MetricsHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`hookline_test_events_total{outcome="accepted"} 3`,
		"go_goroutines ",
		`target_info{service_instance_id="i-1",service_name="hookline-ingest"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
}

// collector is an OTLP trace receiver on loopback.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []string // span names, with their resource's service.name
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, service+"/"+s.GetName())
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) got() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans...)
}

// TestSpansReachCollector: with an OTLP endpoint set, a span reaches the
// collector over gRPC, with the service's name, once Shutdown flushed it.
// Not parallel: the OTLP exporter reads the process environment itself.
func TestSpansReachCollector(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, col)
	go srv.Serve(ln)
	defer srv.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+ln.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	tel, err := telemetry.New(context.Background(), telemetry.Options{ServiceName: "hookline-fanout"})
	if err != nil {
		t.Fatal(err)
	}
	if !tel.TracingEnabled() {
		t.Fatal("tracing off with OTEL_EXPORTER_OTLP_ENDPOINT set")
	}
	_, span := tel.TracerProvider().Tracer("test").Start(context.Background(), "fan out")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := col.got(); len(got) != 1 || got[0] != "hookline-fanout/fan out" {
		t.Fatalf("collector got spans %q, want [hookline-fanout/fan out]", got)
	}
}

func FuzzParseResourceAttributes(f *testing.F) {
	for _, s := range []string{"a=b", "a=b,c=d%20e", "=x", "k", "k=%zz", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tel, err := telemetry.New(context.Background(), telemetry.Options{ServiceName: "svc", InstanceID: "i", Getenv: env(map[string]string{"OTEL_RESOURCE_ATTRIBUTES": s})})
		if err != nil {
			if !strings.Contains(err.Error(), "OTEL_RESOURCE_ATTRIBUTES") {
				t.Fatalf("error %q does not name the variable", err)
			}
			return
		}
		defer tel.Shutdown(context.Background())
		if tel.Resource() == nil {
			t.Fatal("no resource")
		}
	})
}

func metricAttr(k, v string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String(k, v))
}
