package tenantlimit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Flag names, for error messages.
const (
	flagRate     = "--ingest-tenant-publish-rate"
	flagBurst    = "--ingest-tenant-publish-burst"
	flagMaxSubs  = "--ingest-tenant-max-subscriptions"
	flagFile     = "--ingest-tenant-limits-file"
	maxTenantLen = 64 // as the ingest API's tenant validation
)

// Config is the tenant limits of the ingest service: global values that
// every tenant gets, and a file of per-tenant overrides.
type Config struct {
	// PublishRate is the events per second each tenant may publish to one
	// ingest replica, sustained. 0 means unlimited.
	PublishRate float64
	// PublishBurst is the events a tenant may publish at once to one
	// replica when its bucket is full; a batch of more events than this is
	// always refused. Ignored while PublishRate is 0.
	PublishBurst int
	// MaxSubscriptions is the most subscriptions one tenant may have,
	// across every replica. 0 means unlimited.
	MaxSubscriptions int
	// LimitsFile is a YAML file of per-tenant overrides; empty: none.
	LimitsFile string
}

// DefaultConfig returns the production defaults: no publish rate limit, a
// burst of 1000 events for when one is set, and at most 1000
// subscriptions per tenant.
//
// The publish rate is unlimited by default because a rate is a per-replica
// share of a tenant's capacity that only the operator can size (it depends
// on the replica count and on what the tenant pays for); any built-in
// number would either throttle a legitimate production tenant after an
// upgrade or be too high to protect anything. The burst is 1000, twice the
// default --ingest-max-batch-events (500), so a full batch is accepted
// from a full bucket and two arrive back to back. The subscription limit
// is 1000: far above what a tenant ordinarily needs (tens), while bounding
// the fanout of one event and the memory of the subscription cache.
func DefaultConfig() Config {
	return Config{
		PublishRate:      0,
		PublishBurst:     1000,
		MaxSubscriptions: 1000,
	}
}

// RegisterFlags registers the tenant limit flags on fs with the defaults
// of DefaultConfig.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	d := DefaultConfig()
	fs.Float64Var(&c.PublishRate, strings.TrimPrefix(flagRate, "--"), d.PublishRate,
		"events per second each tenant may publish to this ingest replica, sustained (0: unlimited, the default). "+
			"Enforced per replica: with N replicas a tenant gets up to N times this, so set the per-replica share. "+
			"Over the limit, publishes fail with RESOURCE_EXHAUSTED and a retry-after hint")
	fs.IntVar(&c.PublishBurst, strings.TrimPrefix(flagBurst, "--"), d.PublishBurst,
		"events a tenant may publish at once to this replica above its sustained rate; a batch larger than this is "+
			"always refused, so keep it at least --ingest-max-batch-events (default 1000: two full default batches)")
	fs.IntVar(&c.MaxSubscriptions, strings.TrimPrefix(flagMaxSubs, "--"), d.MaxSubscriptions,
		"most subscriptions one tenant may have, counted by the store across all replicas (0: unlimited)")
	fs.StringVar(&c.LimitsFile, strings.TrimPrefix(flagFile, "--"), "",
		"YAML file of per-tenant overrides of the three limits above, read at start-up, e.g. "+
			"'tenants: {acme: {publish_rate: 500, publish_burst: 1000, max_subscriptions: 50}}'; "+
			"a field left out takes the global value (empty: no overrides)")
}

// Validate reports every problem with c, each naming its flag, including
// every problem with the limits file (each naming the file and the tenant
// and field). It reads the file but keeps nothing: New reads it again.
func (c *Config) Validate() error {
	_, _, err := c.load()
	return err
}

// limits is the effective limits of one tenant.
type limits struct {
	rate    float64 // events per second; 0: unlimited
	burst   int
	maxSubs int // 0: unlimited
}

// load validates c and returns the global limits and the effective limits
// of every tenant named in the limits file.
func (c *Config) load() (global limits, overrides map[string]limits, err error) {
	var errs []error
	globalOK := true
	if math.IsNaN(c.PublishRate) || math.IsInf(c.PublishRate, 0) || c.PublishRate < 0 {
		errs = append(errs, fmt.Errorf("%s %v: must be a finite number of events per second, 0 or more (0: unlimited)", flagRate, c.PublishRate))
		globalOK = false
	}
	if c.PublishBurst < 0 {
		errs = append(errs, fmt.Errorf("%s %d: must not be negative", flagBurst, c.PublishBurst))
		globalOK = false
	} else if c.PublishRate > 0 && c.PublishBurst == 0 {
		errs = append(errs, fmt.Errorf("%s 0: must be at least 1 when %s is set (%v), or every publish is refused", flagBurst, flagRate, c.PublishRate))
		globalOK = false
	}
	if c.MaxSubscriptions < 0 {
		errs = append(errs, fmt.Errorf("%s %d: must not be negative (0: unlimited)", flagMaxSubs, c.MaxSubscriptions))
		globalOK = false
	}
	global = limits{rate: c.PublishRate, burst: c.PublishBurst, maxSubs: c.MaxSubscriptions}
	if c.LimitsFile != "" {
		var ferrs []error
		overrides, ferrs = loadFile(c.LimitsFile, global, globalOK)
		for _, e := range ferrs {
			errs = append(errs, fmt.Errorf("%s %q: %w", flagFile, c.LimitsFile, e))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return limits{}, nil, err
	}
	return global, overrides, nil
}

// override is one tenant's entry in the limits file; nil: not set, take
// the global value.
type override struct {
	PublishRate      *float64 `yaml:"publish_rate"`
	PublishBurst     *int     `yaml:"publish_burst"`
	MaxSubscriptions *int     `yaml:"max_subscriptions"`
}

var overrideFields = []string{"publish_rate", "publish_burst", "max_subscriptions"}

// limitsFile is the document of the limits file.
type limitsFile struct {
	Tenants map[string]yaml.Node `yaml:"tenants"`
}

// loadFile reads the limits file at path and returns the effective limits
// of each tenant it names, or every problem with it. checkEffective says
// whether global is valid, so a tenant's combination of its overrides with
// global values can be checked without repeating the flags' errors.
func loadFile(path string, global limits, checkEffective bool) (map[string]limits, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{err}
	}
	var doc limitsFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) { // EOF: an empty file, no overrides
		return nil, []error{yamlError(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, []error{errors.New("more than one YAML document; put every tenant under one 'tenants:' mapping")}
	}

	var errs []error
	out := make(map[string]limits, len(doc.Tenants))
	for _, tenant := range slices.Sorted(maps.Keys(doc.Tenants)) {
		node := doc.Tenants[tenant]
		if msg := checkTenant(tenant); msg != "" {
			errs = append(errs, fmt.Errorf("line %d: tenant %q: %s", node.Line, tenant, msg))
			continue
		}
		var o override
		lines := map[string]int{"": node.Line} // where each field is, for errors
		switch {
		case node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null":
			// "acme:" with nothing under it: no overrides.
		case node.Kind != yaml.MappingNode:
			errs = append(errs, fmt.Errorf("line %d: tenants.%s: must be a mapping of %s", node.Line, tenant, strings.Join(overrideFields, ", ")))
			continue
		default:
			var ferrs []error
			for i := 0; i+1 < len(node.Content); i += 2 {
				k, v := node.Content[i], node.Content[i+1]
				lines[k.Value] = k.Line
				at := fmt.Sprintf("line %d: tenants.%s.%s", k.Line, tenant, k.Value)
				switch tag := v.ShortTag(); {
				case !slices.Contains(overrideFields, k.Value):
					ferrs = append(ferrs, fmt.Errorf("line %d: tenants.%s: unknown field %q (known: %s)", k.Line, tenant, k.Value, strings.Join(overrideFields, ", ")))
				case v.Kind != yaml.ScalarNode || tag == "!!null":
					// For null, neither 0 nor "take the global value" is the obvious reading.
					ferrs = append(ferrs, fmt.Errorf("%s: must be a number (0: unlimited); leave the field out to take the global value", at))
				case k.Value == "publish_rate" && tag != "!!int" && tag != "!!float":
					ferrs = append(ferrs, fmt.Errorf("%s %s: must be a number of events per second", at, v.Value))
				case k.Value != "publish_rate" && tag != "!!int":
					// yaml.v3 would truncate 1.5 into an int silently.
					ferrs = append(ferrs, fmt.Errorf("%s %s: must be a whole number", at, v.Value))
				}
			}
			if len(ferrs) == 0 {
				if err := node.Decode(&o); err != nil { // out of range, say
					ferrs = append(ferrs, fmt.Errorf("tenants.%s: %w", tenant, yamlError(err)))
				}
			}
			if len(ferrs) > 0 {
				errs = append(errs, ferrs...)
				continue
			}
		}
		l, ferrs := o.apply(tenant, lines, global, checkEffective)
		if len(ferrs) > 0 {
			errs = append(errs, ferrs...)
			continue
		}
		out[tenant] = l
	}
	return out, errs
}

// apply checks o and returns the limits of tenant: o's values, global's
// where o has none. lines says where each field of o is in the file ("":
// the tenant's entry).
func (o override) apply(tenant string, lines map[string]int, global limits, checkEffective bool) (limits, []error) {
	var errs []error
	at := func(field string) string { return fmt.Sprintf("line %d: tenants.%s.%s", lines[field], tenant, field) }
	l := global
	if o.PublishRate != nil {
		if r := *o.PublishRate; math.IsNaN(r) || math.IsInf(r, 0) || r < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be a finite number of events per second, 0 or more (0: unlimited)", at("publish_rate"), r))
		}
		l.rate = *o.PublishRate
	}
	if o.PublishBurst != nil {
		if *o.PublishBurst < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative", at("publish_burst"), *o.PublishBurst))
		}
		l.burst = *o.PublishBurst
	}
	if o.MaxSubscriptions != nil {
		if *o.MaxSubscriptions < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative (0: unlimited)", at("max_subscriptions"), *o.MaxSubscriptions))
		}
		l.maxSubs = *o.MaxSubscriptions
	}
	if len(errs) == 0 && checkEffective && l.rate > 0 && l.burst < 1 {
		if o.PublishBurst != nil {
			errs = append(errs, fmt.Errorf("%s 0: refuses every publish with a publish_rate of %v; set it to 1 or more", at("publish_burst"), l.rate))
		} else {
			errs = append(errs, fmt.Errorf("line %d: tenants.%s: the global %s of 0 refuses every publish with a publish_rate of %v; set publish_burst to 1 or more",
				lines[""], tenant, flagBurst, l.rate))
		}
	}
	return l, errs
}

// checkTenant validates a tenant name as the ingest API does, so a name
// the API would refuse cannot be configured: "" if valid, else why not.
func checkTenant(tenant string) string {
	switch {
	case tenant == "":
		return "must not be empty"
	case len(tenant) > maxTenantLen:
		return fmt.Sprintf("longer than %d characters", maxTenantLen)
	}
	for i := 0; i < len(tenant); i++ {
		c := tenant[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Sprintf("contains %q; allowed are letters, digits, '_' and '-'", c)
		}
	}
	return ""
}

// yamlError flattens a yaml.TypeError, whose message spans lines, into one
// line listing each of its errors.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return errors.New(strings.Join(te.Errors, "; "))
	}
	return err
}
