package servicetable_test

import (
	"context"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/servicetable"
	"github.com/hookline/hookline/services/internal/servicetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestFlagNames: every flag of a service is named after it, so the
// services' flags can share hookline dev's flag set, and a flag set built
// from the whole table has no clashes.
func TestFlagNames(t *testing.T) {
	t.Parallel()
	all := pflag.NewFlagSet("all", pflag.ContinueOnError)
	seen := map[string]bool{}
	for _, svc := range servicetable.All() {
		if seen[svc.Name] {
			t.Errorf("service %q listed twice", svc.Name)
		}
		seen[svc.Name] = true
		if svc.Binary() != "hookline-"+svc.Name || svc.Summary == "" {
			t.Errorf("service %q: binary %q, summary %q", svc.Name, svc.Binary(), svc.Summary)
		}
		in := svc.New()
		fs := pflag.NewFlagSet(svc.Name, pflag.ContinueOnError)
		in.Config.RegisterFlags(fs)
		n := 0
		fs.VisitAll(func(f *pflag.Flag) {
			n++
			if !strings.HasPrefix(f.Name, svc.Name+"-") || f.Usage == "" {
				t.Errorf("service %s: flag --%s lacks the %s- prefix or its help text", svc.Name, f.Name, svc.Name)
			}
		})
		if n == 0 {
			t.Errorf("service %s registers no flags", svc.Name)
		}
		if err := in.Config.Validate(); err != nil {
			t.Errorf("service %s: defaults invalid: %v", svc.Name, err)
		}
		in.Config.RegisterFlags(all) // panics on a clash
	}
}

// TestBuildEveryService builds every service of the table from the shared
// dependencies (a real store and broker) with the configuration as parsed
// from flags, and asks each whether it is ready.
func TestBuildEveryService(t *testing.T) {
	t.Parallel()
	d := servicetable.Deps{Store: servicetest.Store(t), Transport: servicetest.Transport(t), Logger: servicetest.Logger()}
	for _, svc := range servicetable.All() {
		t.Run(svc.Name, func(t *testing.T) {
			in := svc.New()
			fs := pflag.NewFlagSet(svc.Name, pflag.ContinueOnError)
			in.Config.RegisterFlags(fs)
			args := map[string][]string{"ingest": {"--ingest-grpc-addr=127.0.0.1:0", "--ingest-http-addr="}}[svc.Name]
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			r, err := in.Build(d)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if err := r.Ready(context.Background()); err != nil {
				t.Fatalf("Ready: %v", err)
			}
			// Services bind listeners in New; run and stop each, so none
			// is left open.
			servicetest.Run(t, r.Run)()
		})
	}
}

// TestBuildReadsTheParsedConfig: Build uses the configuration as it is
// when called, after the flags were parsed, not the defaults.
func TestBuildReadsTheParsedConfig(t *testing.T) {
	t.Parallel()
	in := servicetable.MustLookup("delivery").New()
	fs := pflag.NewFlagSet("delivery", pflag.ContinueOnError)
	in.Config.RegisterFlags(fs)
	if err := fs.Parse([]string{"--delivery-concurrency=0"}); err != nil {
		t.Fatal(err)
	}
	d := servicetable.Deps{Store: servicetest.Store(t), Transport: servicetest.Transport(t), Logger: servicetest.Logger()}
	if _, err := in.Build(d); err == nil || !strings.Contains(err.Error(), "--delivery-concurrency") {
		t.Fatalf("Build = %v; want the parsed, invalid --delivery-concurrency refused", err)
	}
	if got := servicetable.ConfigOf[delivery.Config]([]*servicetable.Instance{in}); got == nil || got.Concurrency != 0 {
		t.Fatalf("ConfigOf = %+v; want the instance's own configuration", got)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	if _, ok := servicetable.Lookup("nope"); ok {
		t.Fatal("Lookup found a service that does not exist")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("MustLookup of an unknown service did not panic")
		}
	}()
	servicetable.MustLookup("nope")
}
