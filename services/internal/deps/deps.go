// Package deps is what every pipeline service is built from: the store,
// the broker, a logger, and optionally a subscription cache shared by the
// services of one process.
package deps

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/subcache"
)

// Deps are a service's collaborators; Store and Transport are required.
type Deps struct {
	Store     store.Store
	Transport transport.Transport
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Subscriptions is an optional cache shared with other services in the
	// same process, run by its owner; nil gives the service a private one
	// that it runs itself.
	Subscriptions *subcache.Cache
}

// Check reports a missing Store or Transport, naming service, and fills
// in the default logger tagged with the service name.
func (d *Deps) Check(service string) error {
	if d.Store == nil || d.Transport == nil {
		return fmt.Errorf("%s: Store and Transport are required", service)
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	d.Logger = d.Logger.With("service", service)
	return nil
}

// Cache returns the shared subscription cache, or a new private one
// refreshed every refresh; own reports which, so the caller knows whether
// to run it.
func (d *Deps) Cache(refresh time.Duration) (cache *subcache.Cache, own bool) {
	if d.Subscriptions != nil {
		return d.Subscriptions, false
	}
	return subcache.New(d.Store, refresh, d.Logger), true
}

// Ready reports whether the store and the broker answer, for /readyz.
func (d *Deps) Ready(ctx context.Context) error {
	return errors.Join(d.Store.Ready(ctx), d.Transport.Ready(ctx))
}

// dedupWindower is a transport whose broker drops a message republished
// under the same ID within a window (natsjs).
type dedupWindower interface {
	DuplicateWindow() time.Duration
}

// WarnIfOutlastsDedup logs a warning when the setting flag (value v) is
// not shorter than the broker's duplicate window: a message republished
// after v (an event redelivered to fanout after its ack wait, a retry
// released again after its claim lease) is then no longer collapsed by
// the broker, and a receiver may get a delivery twice (with the same
// webhook-id). Call it after Check. It reports whether it warned.
func (d *Deps) WarnIfOutlastsDedup(flag string, v time.Duration) bool {
	w, ok := d.Transport.(dedupWindower)
	if !ok || v < w.DuplicateWindow() {
		return false
	}
	d.Logger.Warn("setting outlasts the broker's duplicate window: messages republished after it are not collapsed, so receivers may get duplicates (same webhook-id)",
		"flag", "--"+flag, "value", v, "duplicate_window", w.DuplicateWindow())
	return true
}
