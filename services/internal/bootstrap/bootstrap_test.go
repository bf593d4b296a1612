package bootstrap

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseStore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		want     StoreLocation
		wantStr  string
		wantErr  string // substring; "" means success
		noSecret bool   // the error must not show "s3cret"
	}{
		{in: "sqlite:/data/hookline.db", want: StoreLocation{Kind: StoreSQLite, Path: "/data/hookline.db"}, wantStr: "sqlite:/data/hookline.db"},
		{in: "sqlite::memory:", want: StoreLocation{Kind: StoreSQLite, Path: ":memory:"}, wantStr: "sqlite::memory:"},
		{in: "postgres://root@db:26257/hookline?sslmode=disable",
			want:    StoreLocation{Kind: StorePostgres, URL: "postgres://root@db:26257/hookline?sslmode=disable"},
			wantStr: "postgres://root@db:26257/hookline?sslmode=disable"},
		{in: "postgresql://app:s3cret@db/hookline",
			want:    StoreLocation{Kind: StorePostgres, URL: "postgresql://app:s3cret@db/hookline"},
			wantStr: "postgresql://app:xxxxx@db/hookline"},
		{in: "", wantErr: `--store "": want sqlite:PATH or postgres://`},
		{in: "x", wantErr: `--store "x": want sqlite:PATH or postgres://`},
		{in: "sqlite:", wantErr: `--store "sqlite:": want sqlite:PATH`},
		{in: "mysql://db/x", wantErr: `--store "mysql://db/x": want`},
		{in: "POSTGRES://db/x", wantErr: `--store "POSTGRES://db/x": want`},
		{in: "host=db dbname=x", wantErr: "want sqlite:PATH or postgres://"},
		{in: "postgres://app:s3cret@db:port/x", wantErr: `--store: invalid URL: invalid port ":port" after host`, noSecret: true},
		{in: "postgres://app:s3cret@[::1/x", wantErr: "--store: invalid URL", noSecret: true},
		{in: "postgress://app:s3cret@db/x", wantErr: `--store "postgress://app:xxxxx@db/x": want`, noSecret: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStore(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseStore(%q) error %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				if tc.noSecret && strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStore(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseStore(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if got.String() != tc.wantStr {
				t.Errorf("String() = %q, want %q", got.String(), tc.wantStr)
			}
		})
	}
}

// configure builds a service flag set with an extra --svc-n flag that must
// be positive, and runs Configure on args and env.
func configure(args []string, env map[string]string) (Config, error) {
	var boot Config
	var n int
	fs := FlagSet("hookline-test", &boot, func(fs *pflag.FlagSet) { fs.IntVar(&n, "svc-n", 1, "a service setting") })
	fs.Init("hookline-test", pflag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	validate := func() error {
		if n < 1 {
			return errors.New("--svc-n: must be positive")
		}
		return nil
	}
	err := Configure(fs, args, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, &boot, validate)
	return boot, err
}

func TestConfigure(t *testing.T) {
	t.Parallel()
	const pg = "postgresql://root@cockroach:26257/hookline?sslmode=disable"
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    Config // checked when wantErr is empty
		wantErr []string
	}{
		{"store from the environment", nil,
			map[string]string{"HOOKLINE_STORE": pg, "HOOKLINE_STORE_MAX_CONNS": "20", "HOOKLINE_STORE_MIGRATE": "true"},
			Config{NATSURL: "nats://127.0.0.1:4222", Store: pg, StoreMaxConns: 20, StoreMigrate: true, OpsAddr: ":9090", LogLevel: "info", LogFormat: "json"}, nil},
		{"flags win over the environment", []string{"--store", "sqlite:a.db", "--store-migrate=false", "--store-max-conns", "3"},
			map[string]string{"HOOKLINE_STORE": pg, "HOOKLINE_STORE_MAX_CONNS": "20", "HOOKLINE_STORE_MIGRATE": "true"},
			Config{NATSURL: "nats://127.0.0.1:4222", Store: "sqlite:a.db", StoreMaxConns: 3, OpsAddr: ":9090", LogLevel: "info", LogFormat: "json"}, nil},
		{"defaults: no migration at start", []string{"--store", pg}, nil,
			Config{NATSURL: "nats://127.0.0.1:4222", Store: pg, OpsAddr: ":9090", LogLevel: "info", LogFormat: "json"}, nil},
		{"store required", nil, nil, Config{}, []string{`--store "": want sqlite:PATH or postgres://`}},
		{"bogus store", nil, map[string]string{"HOOKLINE_STORE": "bogus"}, Config{}, []string{`--store "bogus": want sqlite:PATH or postgres://`}},
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
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Configure: %v", err)
			}
			if got != tc.want {
				t.Errorf("config %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestFlagSetDocumentsEnvironment(t *testing.T) {
	t.Parallel()
	var boot Config
	fs := FlagSet("hookline-test", &boot, func(fs *pflag.FlagSet) { fs.Int("svc-n", 1, "a service setting") })
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
