package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/internal/broker"
)

// storeTest is a case of TestParseStore and TestParseStoreLocation.
type storeTest struct {
	in       string
	want     StoreLocation
	wantStr  string
	wantErr  string // substring; "" means success
	noSecret bool   // the error must not show "s3cret"
}

// postgresStoreTests hold for both parsers: they agree on postgres URLs.
var postgresStoreTests = []storeTest{
	{in: "postgres://root@db:26257/hookline?sslmode=disable",
		want:    StoreLocation{Kind: StorePostgres, URL: "postgres://root@db:26257/hookline?sslmode=disable"},
		wantStr: "postgres://root@db:26257/hookline?sslmode=disable"},
	{in: "postgresql://app:s3cret@db/hookline",
		want:    StoreLocation{Kind: StorePostgres, URL: "postgresql://app:s3cret@db/hookline"},
		wantStr: "postgresql://app:xxxxx@db/hookline"},
	{in: "postgres://app:s3cret@db:port/x", wantErr: `--store: invalid URL: invalid port ":port" after host`, noSecret: true},
	{in: "postgres://app:s3cret@[::1/x", wantErr: "--store: invalid URL", noSecret: true},
}

func runStoreTests(t *testing.T, parse func(string) (StoreLocation, error), tests []storeTest) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := parse(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parsing %q: error %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				if tc.noSecret && strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parsing %q: %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parsing %q = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.wantStr {
				t.Errorf("String() = %q, want %q", got.String(), tc.wantStr)
			}
		})
	}
}

// TestParseStore checks the service binaries' --store: postgres URLs only.
func TestParseStore(t *testing.T) {
	t.Parallel()
	const wantPostgres = "want postgres://USER@HOST:PORT/DATABASE (or postgresql://) for CockroachDB or PostgreSQL"
	const noSQLite = "the service binaries need a postgres:// URL (CockroachDB or PostgreSQL); SQLite is for hookline dev"
	runStoreTests(t, ParseStore, append([]storeTest{
		{in: "sqlite:x.db", wantErr: `--store "sqlite:x.db": ` + noSQLite},
		{in: "sqlite:/data/hookline.db", wantErr: `--store "sqlite:/data/hookline.db": ` + noSQLite},
		{in: "sqlite::memory:", wantErr: `--store "sqlite::memory:": ` + noSQLite},
		{in: "sqlite:", wantErr: `--store "sqlite:": ` + noSQLite},
		{in: "sqlite://app:s3cret@x/y.db", wantErr: noSQLite, noSecret: true},
		{in: "", wantErr: `--store "": ` + wantPostgres},
		{in: "x", wantErr: `--store "x": ` + wantPostgres},
		{in: "hookline.db", wantErr: `--store "hookline.db": ` + wantPostgres},
		{in: "mysql://db/x", wantErr: `--store "mysql://db/x": ` + wantPostgres},
		{in: "POSTGRES://db/x", wantErr: `--store "POSTGRES://db/x": ` + wantPostgres},
		{in: "host=db dbname=x", wantErr: wantPostgres},
		{in: "postgress://app:s3cret@db/x", wantErr: `--store "postgress://app:xxxxx@db/x": want postgres://`, noSecret: true},
	}, postgresStoreTests...))
}

// TestParseStoreLocation checks the --store of hookline migrate, which
// takes a SQLite file too.
func TestParseStoreLocation(t *testing.T) {
	t.Parallel()
	runStoreTests(t, ParseStoreLocation, append([]storeTest{
		{in: "sqlite:/data/hookline.db", want: StoreLocation{Kind: StoreSQLite, Path: "/data/hookline.db"}, wantStr: "sqlite:/data/hookline.db"},
		{in: "sqlite::memory:", want: StoreLocation{Kind: StoreSQLite, Path: ":memory:"}, wantStr: "sqlite::memory:"},
		{in: "", wantErr: `--store "": want sqlite:PATH or postgres://`},
		{in: "x", wantErr: `--store "x": want sqlite:PATH or postgres://`},
		{in: "sqlite:", wantErr: `--store "sqlite:": want sqlite:PATH`},
		{in: "mysql://db/x", wantErr: `--store "mysql://db/x": want`},
		{in: "POSTGRES://db/x", wantErr: `--store "POSTGRES://db/x": want`},
		{in: "host=db dbname=x", wantErr: "want sqlite:PATH or postgres://"},
		{in: "postgress://app:s3cret@db/x", wantErr: `--store "postgress://app:xxxxx@db/x": want`, noSecret: true},
	}, postgresStoreTests...))
}

// TestOpenStoreRefusesSQLite checks that OpenStore opens postgres stores
// only, even when handed a location that ParseStore would have refused.
func TestOpenStoreRefusesSQLite(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hookline.db")
	st, err := OpenStore(context.Background(), StoreLocation{Kind: StoreSQLite, Path: path}, StoreOptions{}, slog.New(slog.DiscardHandler))
	if err == nil {
		st.Close()
		t.Fatal("OpenStore opened a SQLite store")
	}
	if want := "need a postgres:// URL"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenStore touched %s: %v", path, err)
	}
}

// svcConfig is a service configuration with one --svc-n flag that must be
// positive.
type svcConfig struct{ n int }

func (c *svcConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.IntVar(&c.n, "svc-n", 1, "a service setting")
}

func (c *svcConfig) Validate() error {
	if c.n < 1 {
		return errors.New("--svc-n: must be positive")
	}
	return nil
}

// natsDefaults is the broker configuration when no broker flag is given.
func natsDefaults() broker.Config {
	var c broker.Config
	c.RegisterFlags(pflag.NewFlagSet("defaults", pflag.ContinueOnError))
	return c
}

// configure builds a service flag set with the flags of svcConfig, and
// runs Configure on args and env.
func configure(args []string, env map[string]string) (Config, error) {
	var boot Config
	var svc svcConfig
	fs := FlagSet("hookline-test", &boot, &svc)
	fs.Init("hookline-test", pflag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	err := Configure(fs, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &boot, &svc)
	return boot, err
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	const (
		pg  = "postgresql://root@cockroach:26257/hookline?sslmode=disable"
		pg2 = "postgres://app@db:5432/hookline"
		// key is a keyring entry of 32 zero bytes, for the valid cases.
		key = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	)
	keys := SecretKeys{Keys: key}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    Config // checked when wantErr is empty
		wantErr []string
	}{
		{"store from the environment", nil,
			map[string]string{"HOOKLINE_STORE": pg, "HOOKLINE_STORE_MAX_CONNS": "20", "HOOKLINE_STORE_MIGRATE": "true", "HOOKLINE_SECRET_KEYS": key},
			Config{Broker: natsDefaults(), Store: pg, SecretKeys: keys, StoreMaxConns: 20, StoreMigrate: true, OpsAddr: ":9090", LogLevel: "info", LogFormat: "json"}, nil},
		{"flags win over the environment", []string{"--store", pg2, "--store-migrate=false", "--store-max-conns", "3", "--secret-keys", key},
			map[string]string{"HOOKLINE_STORE": pg, "HOOKLINE_STORE_MAX_CONNS": "20", "HOOKLINE_STORE_MIGRATE": "true", "HOOKLINE_SECRET_KEYS": "k9:bad"},
			Config{Broker: natsDefaults(), Store: pg2, SecretKeys: keys, StoreMaxConns: 3, OpsAddr: ":9090", LogLevel: "info", LogFormat: "json"}, nil},
		{"defaults: no migration at start", []string{"--store", pg, "--secret-keys", key}, nil,
			Config{Broker: natsDefaults(), Store: pg, SecretKeys: keys, OpsAddr: ":9090", LogLevel: "info", LogFormat: "json"}, nil},
		{"secret keys required", []string{"--store", pg}, nil, Config{}, []string{"--secret-keys-file or --secret-keys: required"}},
		{"secret keys malformed, never echoed", []string{"--store", pg, "--secret-keys", "k1:c2VjcmV0LWtleS1tYXRlcmlhbA=="}, nil, Config{},
			[]string{"--secret-keys: keyring: key \"k1\": 19 bytes, want 32"}},
		{"secret keys from two places", []string{"--store", pg, "--secret-keys", key, "--secret-keys-file", "/nonexistent"}, nil, Config{},
			[]string{"--secret-keys and --secret-keys-file: give one, not both"}},
		{"store required", nil, nil, Config{}, []string{`--store "": want postgres://`}},
		{"bogus store", nil, map[string]string{"HOOKLINE_STORE": "bogus"}, Config{}, []string{`--store "bogus": want postgres://`}},
		{"no SQLite", []string{"--store", "sqlite:x.db"}, nil, Config{},
			[]string{`--store "sqlite:x.db": the service binaries need a postgres:// URL (CockroachDB or PostgreSQL); SQLite is for hookline dev`}},
		{"no SQLite from the environment", nil, map[string]string{"HOOKLINE_STORE": "sqlite:.hookline/hookline.db"}, Config{},
			[]string{`--store "sqlite:.hookline/hookline.db": the service binaries need a postgres:// URL`}},
		{"every error together", []string{"--log-format", "xml", "--store-max-conns", "-1", "--svc-n", "0"},
			map[string]string{"HOOKLINE_STORE": "postgres://u:s3cret@db:x/h", "HOOKLINE_STORE_MIGRATE": "maybe", "HOOKLINE_NATS_URL": ""},
			Config{}, []string{
				"invalid configuration:",
				`HOOKLINE_STORE_MIGRATE="maybe"`,
				"--nats-url: must not be empty",
				"--store: invalid URL",
				"--store-max-conns -1: must not be negative",
				`--log-format "xml"`,
				"--svc-n: must be positive",
			}},
		{"migrating needs two connections", []string{"--store-migrate", "--store-max-conns", "1"}, map[string]string{"HOOKLINE_STORE": pg},
			Config{}, []string{"--store-max-conns 1: --store-migrate needs at least 2 connections"}},
		{"max conns out of int32 range", nil, map[string]string{"HOOKLINE_STORE": pg, "HOOKLINE_STORE_MAX_CONNS": "4294967296"},
			Config{}, []string{"HOOKLINE_STORE_MAX_CONNS"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := configure(tc.args, tc.env)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatal("Configure succeeded, want an error")
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "c2VjcmV0") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFlagSetDocumentsEnvironment(t *testing.T) {
	t.Parallel()
	var boot Config
	fs := FlagSet("hookline-test", &boot, new(svcConfig))
	var b bytes.Buffer
	PrintUsage(&b, fs)
	tests := []struct{ flag, env string }{
		{"store", "HOOKLINE_STORE"},
		{"store-max-conns", "HOOKLINE_STORE_MAX_CONNS"},
		{"store-migrate", "HOOKLINE_STORE_MIGRATE"},
		{"nats-url", "HOOKLINE_NATS_URL"},
		{"svc-n", "HOOKLINE_SVC_N"},
	}
	for _, tc := range tests {
		t.Run(tc.flag, func(t *testing.T) {
			t.Parallel()
			f := fs.Lookup(tc.flag)
			if f == nil {
				t.Fatalf("no --%s", tc.flag)
			}
			if !strings.HasSuffix(f.Usage, "[$"+tc.env+"]") {
				t.Errorf("usage of --%s %q does not end with [$%s]", tc.flag, f.Usage, tc.env)
			}
			if !strings.Contains(b.String(), "$"+tc.env) {
				t.Errorf("--help does not mention $%s:\n%s", tc.env, b.String())
			}
		})
	}
	if !strings.HasPrefix(b.String(), "Usage: hookline-test [flags]") {
		t.Errorf("--help starts %q", b.String()[:40])
	}
}

func TestOpsHandlerServesOnlyWhatIsAsked(t *testing.T) {
	t.Parallel()
	ready := func(context.Context) error { return nil }
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "metrics") })
	tests := []struct {
		pprof   bool
		metrics http.Handler
		path    string
		want    int
	}{
		{false, nil, "/healthz", http.StatusOK},
		{false, nil, "/readyz", http.StatusOK},
		{false, nil, "/debug/pprof/goroutine?debug=1", http.StatusNotFound},
		{false, nil, "/metrics", http.StatusNotFound},
		{false, metrics, "/metrics", http.StatusOK},
		{true, nil, "/readyz", http.StatusOK},
		{true, nil, "/debug/pprof/goroutine?debug=1", http.StatusOK},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		OpsHandler(ready, tt.pprof, tt.metrics).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Code != tt.want {
			t.Errorf("pprof=%v metrics=%v GET %s: %d; want %d", tt.pprof, tt.metrics != nil, tt.path, rec.Code, tt.want)
		}
	}
}
