package delivery_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/retry"
	"github.com/hookline/hookline/services/delivery"
)

func TestConfigFlags(t *testing.T) {
	t.Parallel()
	var cfg delivery.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	cfg.RegisterFlags(fs)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	def := delivery.DefaultConfig()
	if cfg.Concurrency != 256 || cfg.Timeout != 15*time.Second || cfg.MaxResponseBody != 4096 ||
		cfg.MaxInFlightPerEndpoint != 32 || cfg.DisableAfter != 120*time.Hour || len(cfg.AllowCIDRs) != 0 || cfg.MaxIdleConnsPerHost < 64 {
		t.Fatalf("flag defaults = %+v", cfg)
	}
	if cfg.AckWait != def.AckWait {
		t.Fatalf("flag and DefaultConfig defaults differ")
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if !strings.HasPrefix(f.Name, "delivery-") || f.Usage == "" {
			t.Errorf("flag %q: want a delivery- prefix and help text", f.Name)
		}
	})
	if !slices.Equal(cfg.RetrySchedule, retry.DefaultSchedule) || cfg.RetryJitter != 0.2 {
		t.Fatalf("retry defaults = %v ±%v; want %v ±0.2", cfg.RetrySchedule, cfg.RetryJitter, retry.DefaultSchedule)
	}
	err := fs.Parse([]string{"--delivery-concurrency=8", "--delivery-allow-cidrs=127.0.0.0/8,::1", "--delivery-disable-after=0",
		"--delivery-retry-schedule=2s,1m", "--delivery-retry-jitter=0"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Concurrency != 8 || len(cfg.AllowCIDRs) != 2 || cfg.DisableAfter != 0 ||
		!slices.Equal(cfg.RetrySchedule, []time.Duration{2 * time.Second, time.Minute}) || cfg.RetryJitter != 0 {
		t.Fatalf("parsed = %+v", cfg)
	}
	if bad := fs.Set("delivery-retry-schedule", "soon"); bad == nil {
		t.Fatal("--delivery-retry-schedule=soon accepted")
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*delivery.Config)
		flags  []string
	}{
		{"zero concurrency", func(c *delivery.Config) { c.Concurrency = 0 }, []string{"--delivery-concurrency"}},
		{"ack wait too short", func(c *delivery.Config) { c.AckWait = c.MaxTimeout }, []string{"--delivery-ack-wait"}},
		{"timeout over cap", func(c *delivery.Config) { c.Timeout = 2 * c.MaxTimeout }, []string{"--delivery-timeout"}},
		{"bad cidr", func(c *delivery.Config) { c.AllowCIDRs = []string{"10.0.0.0/99"} }, []string{"--delivery-allow-cidrs"}},
		{"several", func(c *delivery.Config) { c.BatchSize, c.MaxInFlightPerEndpoint, c.DisableAfter = 0, -1, -time.Hour },
			[]string{"--delivery-batch-size", "--delivery-max-in-flight-per-endpoint", "--delivery-disable-after"}},
		{"bad retry schedule", func(c *delivery.Config) { c.RetrySchedule = []time.Duration{time.Second, -time.Second} }, []string{"--delivery-retry-schedule"}},
		{"jitter over 1", func(c *delivery.Config) { c.RetryJitter = 1.5 }, []string{"--delivery-retry-jitter"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := delivery.DefaultConfig()
			tt.mutate(&cfg)
			err := cfg.Validate()
			for _, f := range tt.flags {
				if err == nil || !strings.Contains(err.Error(), f) {
					t.Errorf("Validate() = %v; want an error naming %s", err, f)
				}
			}
		})
	}
}
