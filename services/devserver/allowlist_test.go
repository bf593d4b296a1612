package devserver

import (
	"slices"
	"testing"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// TestAllowListsReplaceTheDevDefault: the loopback allow-lists of
// hookline dev are defaults; a list given on the command line or in the
// environment, even a narrower or an empty one, replaces them.
func TestAllowListsReplaceTheDevDefault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		args                    []string
		env                     map[string]string
		wantIngest, wantDeliver []string
	}{
		{"defaults", nil, nil, LoopbackCIDRs, LoopbackCIDRs},
		{"narrower flag", []string{"--ingest-allow-cidrs", "127.0.0.1/32"}, nil, []string{"127.0.0.1/32"}, LoopbackCIDRs},
		{"empty flag denies all", []string{"--delivery-allow-cidrs="}, nil, LoopbackCIDRs, []string{}},
		{"environment", nil, map[string]string{"HOOKLINE_DELIVERY_ALLOW_CIDRS": "::1/128"}, LoopbackCIDRs, []string{"::1/128"}},
		{"empty environment variable denies all", nil, map[string]string{"HOOKLINE_INGEST_ALLOW_CIDRS": ""}, []string{}, LoopbackCIDRs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Config
			fs := pflag.NewFlagSet("dev", pflag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			if err := config.ApplyEnv(fs, lookup); err != nil {
				t.Fatal(err)
			}
			in := servicetable.ConfigOf[ingest.Config](c.Services).AllowCIDRs
			dl := servicetable.ConfigOf[delivery.Config](c.Services).AllowCIDRs
			if !slices.Equal(nonNil(in), tt.wantIngest) || !slices.Equal(nonNil(dl), tt.wantDeliver) {
				t.Errorf("ingest %q, delivery %q; want %q and %q", in, dl, tt.wantIngest, tt.wantDeliver)
			}
		})
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
