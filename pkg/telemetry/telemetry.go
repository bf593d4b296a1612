// Package telemetry sets up OpenTelemetry once per process: a tracer
// provider configured by the standard OTEL_* environment variables, and a
// meter provider whose instruments are served in the Prometheus text
// format (a process's /metrics).
//
// Tracing is off unless configured: spans are exported only when
// OTEL_TRACES_EXPORTER is "otlp", or is unset while
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set.
// The exporter then speaks OTLP over gRPC, or over HTTP with
// OTEL_EXPORTER_OTLP_PROTOCOL (or ..._TRACES_PROTOCOL) "http/protobuf",
// and reads the rest of its settings (headers, TLS, timeouts) from the
// OTEL_EXPORTER_OTLP_* variables itself; the sampler comes from
// OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (parent-based, always on
// by default). OTEL_SDK_DISABLED=true turns tracing off whatever else is
// set.
//
// Every span and metric carries the resource service.name (the process's
// service, unless OTEL_SERVICE_NAME says otherwise), service.version and
// service.instance.id, plus OTEL_RESOURCE_ATTRIBUTES.
//
// Metrics are always on: they cost no network and are read by scraping
// MetricsHandler, which also serves the Go runtime's and the process's
// own collectors. Shutdown flushes the spans not yet exported.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Options identify the process in its telemetry.
type Options struct {
	// ServiceName is service.name unless OTEL_SERVICE_NAME is set.
	// Required.
	ServiceName string
	// ServiceVersion is service.version.
	ServiceVersion string
	// InstanceID is service.instance.id; empty means the host name and
	// process id.
	InstanceID string
	// Getenv reads the environment; nil means os.Getenv. Tests inject
	// their own.
	Getenv func(string) string
}

// Telemetry is a process's tracer and meter providers. Its methods are
// safe for concurrent use.
type Telemetry struct {
	resource *resource.Resource
	tracer   *sdktrace.TracerProvider // nil when tracing is off
	meter    *sdkmetric.MeterProvider
	registry *prometheus.Registry
}

// New sets up telemetry as the environment configures it. It fails on an
// invalid setting (an unknown exporter or protocol), naming the variable;
// an exporter that cannot reach its collector is not an error (spans are
// retried and then dropped by the exporter, never blocking the caller).
func New(ctx context.Context, opts Options) (*Telemetry, error) {
	if opts.ServiceName == "" {
		return nil, errors.New("telemetry: Options.ServiceName is required")
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	res, err := newResource(opts, getenv)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{resource: res, registry: prometheus.NewRegistry()}
	t.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(t.registry), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	t.meter = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exp))
	exporter, err := traceExporter(ctx, getenv)
	if err != nil {
		_ = t.meter.Shutdown(ctx)
		return nil, err
	}
	if exporter != nil {
		t.tracer = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exporter))
	}
	return t, nil
}

// newResource is the process's resource: the defaults, the service's
// identity, then OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, which win.
func newResource(opts Options, getenv func(string) string) (*resource.Resource, error) {
	instance := opts.InstanceID
	if instance == "" {
		host, _ := os.Hostname()
		instance = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	attrs := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(opts.ServiceName),
		semconv.ServiceVersion(opts.ServiceVersion),
		semconv.ServiceInstanceID(instance),
	)
	fromEnv, err := envResource(getenv)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(attrs, fromEnv)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// envResource parses OTEL_RESOURCE_ATTRIBUTES (key=value pairs separated
// by commas, values percent-decoded) and OTEL_SERVICE_NAME with getenv.
func envResource(getenv func(string) string) (*resource.Resource, error) {
	var kvs []string
	for _, pair := range strings.Split(getenv("OTEL_RESOURCE_ATTRIBUTES"), ",") {
		if strings.TrimSpace(pair) != "" {
			kvs = append(kvs, pair)
		}
	}
	attrs, err := parseResourceAttributes(kvs)
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	if name := strings.TrimSpace(getenv("OTEL_SERVICE_NAME")); name != "" {
		attrs = append(attrs, semconv.ServiceName(name))
	}
	return resource.NewSchemaless(attrs...), nil
}

// traceExporter returns the span exporter the environment asks for, or
// nil when tracing is off.
func traceExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, nil
	}
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "none":
		return nil, nil
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
			return nil, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER %q: want otlp or none", v)
	}
	protocol := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		protocol = strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "", "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("telemetry: OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP trace exporter: %w", err)
	}
	return exp, nil
}

// TracingEnabled reports whether spans are exported.
func (t *Telemetry) TracingEnabled() bool { return t.tracer != nil }

// TracerProvider is the process's tracer provider: a no-op one when
// tracing is off, so instrumented code costs next to nothing.
func (t *Telemetry) TracerProvider() trace.TracerProvider {
	if t.tracer == nil {
		return noop.NewTracerProvider()
	}
	return t.tracer
}

// MeterProvider is the process's meter provider; its instruments are
// served by MetricsHandler.
func (t *Telemetry) MeterProvider() metric.MeterProvider { return t.meter }

// Resource is the process's resource.
func (t *Telemetry) Resource() *resource.Resource { return t.resource }

// MetricsHandler serves every instrument of MeterProvider, and the Go
// runtime's and the process's collectors, in the Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Shutdown flushes the spans not yet exported and stops both providers,
// within ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.tracer != nil {
		errs = append(errs, t.tracer.Shutdown(ctx))
	}
	errs = append(errs, t.meter.Shutdown(ctx))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("telemetry: shutdown: %w", err)
	}
	return nil
}
