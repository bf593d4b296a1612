// Package deps is what every pipeline service is built from: its store (as
// an interface of only the methods the service calls, declared in the
// service's package), the broker, a logger, a clock, a DNS resolver, and
// optionally a subscription cache shared by the services of one process.
package deps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/subcache"
)

// Readier is the least a service's store does: tell /readyz whether it
// answers. Every store.Store is one.
type Readier interface {
	Ready(ctx context.Context) error
}

// Deps are a service's collaborators. S is the service's own store
// interface; Store and Transport are required.
type Deps[S Readier] struct {
	Store     S
	Transport transport.Transport
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Subscriptions is an optional cache shared with other services in the
	// same process, run by its owner; nil gives the service a private one
	// that it runs itself.
	Subscriptions *subcache.Cache
	// Now is the service's clock; nil means time.Now. Tests inject one to
	// move time without waiting for it.
	Now func() time.Time
	// Resolver resolves host names (subscription URLs); nil means
	// net.DefaultResolver. Tests inject one so that nothing is looked up
	// off the machine.
	Resolver *net.Resolver
}

// WithStore returns d's collaborators with st as the store: how the
// service table hands each service the shared store as the service's own
// interface.
func WithStore[S, T Readier](d Deps[T], st S) Deps[S] {
	return Deps[S]{
		Store: st, Transport: d.Transport, Logger: d.Logger, Subscriptions: d.Subscriptions,
		Now: d.Now, Resolver: d.Resolver,
	}
}

// Check reports a missing Store or Transport, naming service, and fills in
// the defaults: the logger (tagged with the service name), the clock and
// the resolver.
func (d *Deps[S]) Check(service string) error {
	if any(d.Store) == nil || d.Transport == nil {
		return fmt.Errorf("%s: Store and Transport are required", service)
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	d.Logger = d.Logger.With("service", service)
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Resolver == nil {
		d.Resolver = net.DefaultResolver
	}
	return nil
}

// Cache returns the shared subscription cache, or a new private one over
// src (the service's store) refreshed every refresh; own reports which, so
// the caller knows whether to run it.
func (d *Deps[S]) Cache(src subcache.Source, refresh time.Duration) (cache *subcache.Cache, own bool) {
	if d.Subscriptions != nil {
		return d.Subscriptions, false
	}
	return subcache.New(src, refresh, d.Logger), true
}

// Ready reports whether the store and the broker answer, for /readyz.
func (d *Deps[S]) Ready(ctx context.Context) error {
	return errors.Join(d.Store.Ready(ctx), d.Transport.Ready(ctx))
}

// dedupWindower is a transport that drops a message republished under the
// same ID within a window (natsjs on the broker, kafka in its clients).
type dedupWindower interface {
	DuplicateWindow() time.Duration
}

// WarnIfOutlastsDedup logs a warning when the setting flag (value v) is
// not shorter than the broker's duplicate window: a message republished
// after v (an event redelivered to fanout after its ack wait, a retry
// released again after its claim lease) is then no longer collapsed by
// the broker, and a receiver may get a delivery twice (with the same
// webhook-id). Call it after Check. It reports whether it warned.
func (d *Deps[S]) WarnIfOutlastsDedup(flag string, v time.Duration) bool {
	w, ok := d.Transport.(dedupWindower)
	if !ok || v < w.DuplicateWindow() {
		return false
	}
	d.Logger.Warn("setting outlasts the broker's duplicate window: messages republished after it are not collapsed, so receivers may get duplicates (same webhook-id)",
		"flag", "--"+flag, "value", v, "duplicate_window", w.DuplicateWindow())
	return true
}
