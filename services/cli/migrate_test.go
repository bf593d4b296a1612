package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
)

// runMigrateCommand runs `migrate args...` with env as its only
// environment and returns its stdout and error.
func runMigrateCommand(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := newMigrateCommand(func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

func TestMigrateRejectsBadArguments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr []string // every one must appear
		notErr  string   // must not appear
	}{
		{"no store", nil, nil, []string{`--store "": want sqlite:PATH or postgres://`}, ""},
		{"unknown scheme", nil, []string{"--store", "mysql://db/hookline"}, []string{`--store "mysql://db/hookline": want sqlite:PATH or postgres://`}, ""},
		{"empty sqlite path", nil, []string{"--store", "sqlite:"}, []string{`--store "sqlite:"`}, ""},
		{"keyword DSN", nil, []string{"--store", "host=db user=root"}, []string{"want sqlite:PATH or postgres://"}, ""},
		{"bad URL hides the password", nil, []string{"--store", "postgres://root:s3cret@db:port/hookline"},
			[]string{"--store: invalid URL", `invalid port ":port"`}, "s3cret"},
		{"bad scheme hides the password", nil, []string{"--store", "postgress://root:s3cret@db/hookline"},
			[]string{"--store", "want sqlite:PATH"}, "s3cret"},
		{"from HOOKLINE_STORE", map[string]string{"HOOKLINE_STORE": "bogus"}, nil, []string{`--store "bogus"`}, ""},
		{"flag wins over HOOKLINE_STORE", map[string]string{"HOOKLINE_STORE": "sqlite:x.db"}, []string{"--store", "bogus"}, []string{`--store "bogus"`}, ""},
		{"every error at once", nil, []string{"--store", "bogus", "--log-level", "loud", "--log-format", "xml"},
			[]string{`--store "bogus"`, `--log-level "loud"`, `--log-format "xml"`}, ""},
		{"bad HOOKLINE_LOG_LEVEL names the variable", map[string]string{"HOOKLINE_STORE": "sqlite:x.db", "HOOKLINE_LOG_LEVEL": "loud"}, nil,
			[]string{`--log-level "loud"`}, ""},
		{"arguments", nil, []string{"--store", "sqlite:x.db", "extra"}, []string{"unknown command"}, ""},
		{"bad URL from HOOKLINE_STORE hides the password", map[string]string{"HOOKLINE_STORE": "postgresql://root:s3cret@db:port/hookline"}, nil,
			[]string{"--store: invalid URL"}, "s3cret"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := runMigrateCommand(t, tc.env, tc.args...)
			if err == nil {
				t.Fatal("migrate succeeded, want an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if tc.notErr != "" && strings.Contains(err.Error(), tc.notErr) {
				t.Errorf("error %q shows %q", err, tc.notErr)
			}
		})
	}
}

func TestMigrateSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "hookline.db")
	// The keys of the store, where hookline dev keeps them: beside it.
	entry, err := keyring.Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret-keys"), []byte(entry+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag", nil, []string{"--store", "sqlite:" + path}},
		{"environment, again", map[string]string{"HOOKLINE_STORE": "sqlite:" + path}, nil},
	}
	// Sequential: the second run finds the database the first created.
	for _, tc := range tests {
		out, err := runMigrateCommand(t, tc.env, tc.args...)
		if err != nil {
			t.Fatalf("%s: migrate: %v", tc.name, err)
		}
		if want := "sqlite:" + path + ": schema up to date"; !strings.Contains(out, want) {
			t.Errorf("%s: output %q, want it to contain %q", tc.name, out, want)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	url := crdbtest.NewDatabase(t)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"flag, fresh database", nil, []string{"--store", url}, "applied migration 1"},
		{"environment, again", map[string]string{"HOOKLINE_STORE": url}, nil, "schema up to date at version"},
	}
	// Sequential: the second run finds the schema the first applied.
	for _, tc := range tests {
		out, err := runMigrateCommand(t, tc.env, tc.args...)
		if err != nil {
			t.Fatalf("%s: migrate: %v", tc.name, err)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("%s: output %q, want it to contain %q", tc.name, out, tc.want)
		}
	}
}

func TestMigratePostgresFailureIsReported(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: migrate must fail, naming the store
	// without its password.
	_, err := runMigrateCommand(t, nil, "--store", "postgres://root:s3cret@127.0.0.1:1/hookline?sslmode=disable&connect_timeout=2")
	if err == nil {
		t.Fatal("migrate succeeded against a closed port")
	}
	if want := "migrate postgres://root:xxxxx@127.0.0.1:1/hookline"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the password", err)
	}
}

func TestPrintMigrated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		applied []int
		want    []string
	}{
		{"some applied", []int{3, 2}, []string{"applied migration 2", "applied migration 3", "schema up to date at version 3"}},
		{"none applied", nil, []string{"schema up to date"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b bytes.Buffer
			printMigrated(&b, tc.applied)
			got := b.String()
			for _, want := range tc.want {
				if !strings.Contains(got, want) {
					t.Errorf("output %q does not contain %q", got, want)
				}
			}
			if strings.Index(got, "migration 2") > strings.Index(got, "migration 3") {
				t.Errorf("output %q is not in version order", got)
			}
		})
	}
}
