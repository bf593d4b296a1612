package tenantlimit

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestDefaultsAndFlags(t *testing.T) {
	t.Parallel()
	d := DefaultConfig()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}

	var c Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if c != d {
		t.Fatalf("flag defaults %+v, DefaultConfig %+v", c, d)
	}
	path := writeFile(t, "tenants: {acme: {publish_rate: 5}}\n")
	if err := fs.Parse([]string{
		"--ingest-tenant-publish-rate=12.5",
		"--ingest-tenant-publish-burst=40",
		"--ingest-tenant-max-subscriptions=0",
		"--ingest-tenant-limits-file=" + path,
	}); err != nil {
		t.Fatal(err)
	}
	want := Config{PublishRate: 12.5, PublishBurst: 40, MaxSubscriptions: 0, LimitsFile: path}
	if c != want {
		t.Fatalf("parsed %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{flagRate, flagBurst, flagMaxSubs, flagFile} {
		f := fs.Lookup(strings.TrimPrefix(name, "--"))
		if f == nil || f.Usage == "" {
			t.Errorf("flag %s missing or undocumented", name)
		}
	}
}

func TestValidateFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; nil: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"rate with burst", func(c *Config) { c.PublishRate, c.PublishBurst = 0.1, 1 }, nil},
		{"unlimited with burst 0", func(c *Config) { c.PublishRate, c.PublishBurst = 0, 0 }, nil},
		{"negative rate", func(c *Config) { c.PublishRate = -1 }, []string{"--ingest-tenant-publish-rate -1: must be a finite number"}},
		{"NaN rate", func(c *Config) { c.PublishRate = math.NaN() }, []string{"--ingest-tenant-publish-rate NaN"}},
		{"infinite rate", func(c *Config) { c.PublishRate = math.Inf(1) }, []string{"--ingest-tenant-publish-rate +Inf"}},
		{"negative burst", func(c *Config) { c.PublishBurst = -5 }, []string{"--ingest-tenant-publish-burst -5: must not be negative"}},
		{"rate without burst", func(c *Config) { c.PublishRate, c.PublishBurst = 10, 0 },
			[]string{"--ingest-tenant-publish-burst 0: must be at least 1 when --ingest-tenant-publish-rate is set (10)"}},
		{"negative max subscriptions", func(c *Config) { c.MaxSubscriptions = -1 }, []string{"--ingest-tenant-max-subscriptions -1: must not be negative"}},
		{"missing file", func(c *Config) { c.LimitsFile = filepath.Join(t.TempDir(), "nope.yaml") },
			[]string{`--ingest-tenant-limits-file "`, `nope.yaml": open `, "no such file or directory"}},
		{"every problem at once", func(c *Config) {
			c.PublishRate, c.PublishBurst, c.MaxSubscriptions = -1, -1, -1
			c.LimitsFile = writeFile(t, "tenants: {acme: {publish_rate: -2}}\n")
		}, []string{flagRate + " -1", flagBurst + " -1", flagMaxSubs + " -1", "tenants.acme.publish_rate -2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			tc.edit(&c)
			checkErr(t, c.Validate(), tc.want)
		})
	}
}

func TestValidateFile(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		name    string
		content string
		global  func(*Config)
		want    []string // substrings of the error besides the file's name; nil: valid
	}{
		{"empty file", "", nil, nil},
		{"comments only", "# no overrides yet\n", nil, nil},
		{"no tenants", "tenants:\n", nil, nil},
		{"tenant without fields", "tenants:\n  acme:\n", nil, nil},
		{"all fields", "tenants: {acme: {publish_rate: 0.5, publish_burst: 3, max_subscriptions: 0}}\n", nil, nil},
		{"64-character tenant", "tenants: {" + long[:64] + ": {publish_rate: 1}}\n", nil, nil},
		{"numeric tenant name", "tenants: {123: {publish_rate: 1}}\n", nil, nil},

		{"bad YAML", "tenants: {acme: {publish_rate: 1}\n", nil, []string{"yaml: line"}},
		{"tab indentation", "tenants:\n\tacme: {}\n", nil, []string{"yaml: line 2"}},
		{"unknown top-level field", "tenant:\n  acme: {publish_rate: 1}\n", nil, []string{"line 1: field tenant not found"}},
		{"unknown tenant field", "tenants:\n  acme:\n    publish_rate: 1\n    publish_rat: 2\n", nil,
			[]string{`line 4: tenants.acme: unknown field "publish_rat" (known: publish_rate, publish_burst, max_subscriptions)`}},
		{"wrong type", "tenants:\n  acme: {publish_rate: fast}\n", nil, []string{"line 2: tenants.acme.publish_rate fast: must be a number of events per second"}},
		{"fractional burst", "tenants:\n  acme: {publish_burst: 1.5}\n", nil, []string{"line 2: tenants.acme.publish_burst 1.5: must be a whole number"}},
		{"exponent max subscriptions", "tenants:\n  acme: {max_subscriptions: 1e3}\n", nil, []string{"line 2: tenants.acme.max_subscriptions 1e3: must be a whole number"}},
		{"string burst", "tenants:\n  acme: {publish_burst: lots}\n", nil, []string{"line 2: tenants.acme.publish_burst lots: must be a whole number"}},
		{"null field", "tenants:\n  acme: {publish_burst: ~, publish_rate: ~}\n", nil, []string{
			"line 2: tenants.acme.publish_burst: must be a number (0: unlimited); leave the field out to take the global value",
			"line 2: tenants.acme.publish_rate: must be a number"}},
		{"tenant not a mapping", "tenants:\n  acme: 5\n", nil, []string{"line 2: tenants.acme: must be a mapping of publish_rate, publish_burst, max_subscriptions"}},
		{"tenants not a mapping", "tenants: [acme]\n", nil, []string{"line 1: cannot unmarshal !!seq into map"}},
		{"duplicate tenant", "tenants:\n  acme: {publish_rate: 1}\n  acme: {publish_rate: 2}\n", nil, []string{`mapping key "acme" already defined`}},
		{"two documents", "tenants: {acme: {}}\n---\ntenants: {bigco: {}}\n", nil, []string{"more than one YAML document"}},
		{"negative rate", "tenants:\n  acme: {publish_rate: -1}\n", nil, []string{"line 2: tenants.acme.publish_rate -1: must be a finite number"}},
		{"infinite rate", "tenants:\n  acme: {publish_rate: .inf}\n", nil, []string{"tenants.acme.publish_rate +Inf: must be a finite number"}},
		{"negative burst", "tenants:\n  acme: {publish_burst: -1}\n", nil, []string{"tenants.acme.publish_burst -1: must not be negative"}},
		{"negative max subscriptions", "tenants:\n  acme: {max_subscriptions: -3}\n", nil, []string{"tenants.acme.max_subscriptions -3: must not be negative"}},
		{"rate with burst 0", "tenants:\n  acme: {publish_rate: 5, publish_burst: 0}\n", nil,
			[]string{"line 2: tenants.acme.publish_burst 0: refuses every publish with a publish_rate of 5; set it to 1 or more"}},
		{"rate with inherited burst 0", "tenants:\n  acme: {publish_rate: 5}\n", func(c *Config) { c.PublishBurst = 0 },
			[]string{"line 2: tenants.acme: the global --ingest-tenant-publish-burst of 0 refuses every publish with a publish_rate of 5"}},
		{"tenant with a dot", "tenants:\n  acme.eu: {publish_rate: 1}\n", nil,
			[]string{`line 2: tenant "acme.eu": contains '.'; allowed are letters, digits, '_' and '-'`}},
		{"tenant with a space", "tenants:\n  \"ac me\": {publish_rate: 1}\n", nil, []string{`tenant "ac me": contains ' '`}},
		{"empty tenant", "tenants:\n  \"\": {publish_rate: 1}\n", nil, []string{`tenant "": must not be empty`}},
		{"long tenant", "tenants:\n  " + long + ": {publish_rate: 1}\n", nil, []string{`tenant "` + long + `": longer than 64 characters`}},
		{"every tenant's problems", "tenants:\n  b: {publish_rate: -1, max_subscriptions: -1}\n  a: {publish_burst: -1}\n  c.d: {}\n  e: {x: 1, y: 2}\n" +
			"  f:\n    publish_rate: 1\n    publish_burst: [1]\n    max_subscriptions: -1\n  g:\n    publish_rate: 1\n    max_subscriptions: -1\n", nil, []string{
			"line 3: tenants.a.publish_burst -1",
			"line 2: tenants.b.publish_rate -1",
			"line 2: tenants.b.max_subscriptions -1",
			`line 4: tenant "c.d"`,
			`line 5: tenants.e: unknown field "x"`,
			`line 5: tenants.e: unknown field "y"`,
			"line 8: tenants.f.publish_burst: must be a number",
			"line 12: tenants.g.max_subscriptions -1: must not be negative",
		}},
		{"out of range", "tenants:\n  acme: {publish_burst: 99999999999999999999}\n", nil, []string{"tenants.acme.publish_burst 99999999999999999999: must be a whole number"}},
		{"rate as a string", "tenants:\n  acme: {publish_rate: \"5\"}\n", nil, []string{"line 2: tenants.acme.publish_rate 5: must be a number"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := DefaultConfig()
			if tc.global != nil {
				tc.global(&c)
			}
			c.LimitsFile = writeFile(t, tc.content)
			err := c.Validate()
			if tc.want != nil {
				tc.want = append(tc.want, `--ingest-tenant-limits-file "`+c.LimitsFile+`": `)
			}
			checkErr(t, err, tc.want)
			if err == nil {
				if _, err := New(c, nil); err != nil {
					t.Fatalf("Validate passed, New failed: %v", err)
				}
			}
		})
	}
}

// checkErr fails t unless err contains every one of want, or is nil when
// want is nil. Every line of a joined error must name the flag it is about.
func checkErr(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error; want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q:\n%v", w, err)
		}
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.HasPrefix(line, "--ingest-tenant-") {
			t.Errorf("error line does not start with its flag: %q", line)
		}
	}
}
