// Package servicetable is the one list of Hookline's pipeline services.
// Each entry names a service, gives its configuration (a struct whose
// pointer registers the service's flags and validates them) and builds the
// service from shared dependencies. Everything that runs or documents the
// services reads this table: the four service binaries (through
// bootstrap), `hookline dev`, the generated docs/configuration.md and the
// multi-process test and benchmark harnesses. A flag a service adds to its
// configuration therefore appears in its binary's --help, in `hookline dev
// --help` and in the docs with no other edit.
//
// Every flag of a service is named after it ("delivery-ack-wait"), so the
// services' flags can share one flag set in `hookline dev`; TestFlagNames
// holds the table to that.
package servicetable

import (
	"context"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/scheduler"
)

// Config is a service's configuration: a pointer to its Config struct.
type Config interface {
	// RegisterFlags registers every setting on fs, with the defaults.
	RegisterFlags(fs *pflag.FlagSet)
	// Validate reports every invalid setting, each naming its flag.
	Validate() error
}

// Runner is a built service.
type Runner interface {
	// Run runs the service until ctx is cancelled.
	Run(ctx context.Context) error
	// Ready reports whether the service's dependencies answer, for /readyz.
	Ready(ctx context.Context) error
}

// Deps are the shared dependencies every service is built from; each
// service narrows the store to its own interface.
type Deps = deps.Deps[store.Store]

// Service is one entry of the table.
type Service struct {
	// Name is the service's name: its flags start with Name + "-" and its
	// binary is Binary().
	Name string
	// Summary says what the service does, in a sentence or two of Markdown.
	Summary string
	// New returns a fresh instance: the service's configuration at its
	// defaults, and how to build the service from it.
	New func() *Instance
}

// Binary is the name of the service's own binary: "hookline-" + Name.
func (s Service) Binary() string { return "hookline-" + s.Name }

// Instance is one service's configuration and how to build the service
// from it once the flags are parsed.
type Instance struct {
	Name   string
	Config Config
	// Build builds the service from the configuration as it is when Build
	// is called.
	Build func(d Deps) (Runner, error)
}

// entry builds the table entry of a service whose configuration is a C
// with the defaults newConfig returns, whose store interface is S and
// which newService builds. The shared store is handed over as the
// service's S: every service package declares var _ Store =
// store.Store(nil), so the conversion cannot fail for a store.Store.
func entry[C any, PC interface {
	*C
	Config
}, S deps.Readier, R Runner](name, summary string, newConfig func() C, newService func(C, deps.Deps[S]) (R, error)) Service {
	return Service{Name: name, Summary: summary, New: func() *Instance {
		cfg := newConfig()
		return &Instance{Name: name, Config: PC(&cfg), Build: func(d Deps) (Runner, error) {
			st, ok := any(d.Store).(S)
			if !ok {
				return nil, fmt.Errorf("%s: the store %T lacks methods the service needs", name, d.Store)
			}
			return newService(cfg, deps.WithStore(d, st))
		}}
	}}
}

// What each service does, for docs/configuration.md.
const (
	summaryIngest    = "The gRPC ingest and admin API, and the same API as JSON over HTTP: validates events and accepts them into EVENTS, manages subscriptions, answers queries and redeliveries."
	summaryFanout    = "Matches every event of EVENTS against the subscriptions, stores the event and its deliveries, and publishes one DELIVERIES message per delivery."
	summaryDelivery  = "Sends the signed HTTP POSTs of DELIVERIES and records every attempt in one transaction with what it leads to: the next attempt's due time, or the dead-lettering once the retry schedule is exhausted."
	summaryScheduler = "Releases due retries and put-off attempts from the store to DELIVERIES (at their due time when announced, else at its poll), redrives parked deliveries when their subscription is enabled, and purges expired rows."
)

// All returns every service, in pipeline order.
func All() []Service {
	return []Service{
		entry("ingest", summaryIngest, ingest.DefaultConfig, ingest.New),
		entry("fanout", summaryFanout, fanout.DefaultConfig, fanout.New),
		entry("delivery", summaryDelivery, delivery.DefaultConfig, delivery.New),
		entry("scheduler", summaryScheduler, scheduler.DefaultConfig, scheduler.New),
	}
}

// Lookup returns the service named name.
func Lookup(name string) (Service, bool) {
	for _, s := range All() {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// MustLookup returns the service named name, and panics if there is none:
// for the mains, whose names are constants.
func MustLookup(name string) Service {
	s, ok := Lookup(name)
	if !ok {
		panic(fmt.Sprintf("servicetable: no service %q", name))
	}
	return s
}

// ConfigOf returns the configuration of type *C among instances, or nil:
// how `hookline dev`'s tests and harnesses reach one service's settings.
func ConfigOf[C any](instances []*Instance) *C {
	for _, in := range instances {
		if c, ok := any(in.Config).(*C); ok {
			return c
		}
	}
	return nil
}
