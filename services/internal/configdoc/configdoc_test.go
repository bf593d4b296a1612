package configdoc

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../../.."

func TestDocIsCurrent(t *testing.T) {
	t.Parallel()
	committed, err := os.ReadFile(filepath.Join(repoRoot, Path))
	if err != nil {
		t.Fatalf("%v (run make docs)", err)
	}
	generated := Markdown()
	if bytes.Equal(committed, generated) {
		return
	}
	c, g := strings.Split(string(committed), "\n"), strings.Split(string(generated), "\n")
	for i := range max(len(c), len(g)) {
		var cl, gl string
		if i < len(c) {
			cl = c[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if cl != gl {
			t.Fatalf("%s is stale: run make docs\nfirst difference, line %d:\ncommitted: %s\ngenerated: %s", Path, i+1, cl, gl)
		}
	}
}

func TestEveryFlagIsDocumented(t *testing.T) {
	t.Parallel()
	shared := SharedFlags()
	for _, c := range Commands() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			fs, _ := c.Flags()
			n := 0
			fs.VisitAll(func(f *pflag.Flag) {
				n++
				env := config.EnvName(f.Name)
				if !strings.HasSuffix(f.Usage, " [$"+env+"]") {
					t.Errorf("--help of --%s does not name $%s: %q", f.Name, env, f.Usage)
				}
				if strings.TrimSpace(Description(f)) == "" {
					t.Errorf("--%s has no description", f.Name)
				}
				if strings.Contains(f.Usage, "`") {
					t.Errorf("usage of --%s has a backquote, which pflag takes for the value's name: %q", f.Name, f.Usage)
				}
			})
			if n == 0 {
				t.Fatal("no flags")
			}
			if c.Service {
				shared.VisitAll(func(f *pflag.Flag) {
					if fs.Lookup(f.Name) == nil {
						t.Errorf("lacks the shared flag --%s", f.Name)
					}
				})
			}
		})
	}
}

func TestMarkdownTables(t *testing.T) {
	t.Parallel()
	doc := string(Markdown())
	tests := []struct{ name, want string }{
		{"shared store flag", "| `--store` string | `HOOKLINE_STORE` | *(empty)* |"},
		{"migrate at start off by default", "| `--store-migrate` | `HOOKLINE_STORE_MIGRATE` | `false` |"},
		{"duration default", "| `--delivery-ack-wait` duration | `HOOKLINE_DELIVERY_ACK_WAIT` | `2m0s` |"},
		{"list default of dev", "| `--delivery-allow-cidrs` strings | `HOOKLINE_DELIVERY_ALLOW_CIDRS` | `127.0.0.0/8,::1/128` |"},
		{"migrate's store", "## hookline migrate"},
		{"precedence", "a flag given on the command line wins over its environment\n  variable, which wins over the default"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(doc, tc.want) {
				t.Errorf("document lacks %q", tc.want)
			}
		})
	}
}

// helpFlag matches a flag at the start of a --help line.
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)`)

// buildBinaries builds every binary of services/cmd into a temporary
// directory and returns it; the test is skipped with -short.
func buildBinaries(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: builds the binaries (about 10 s); make test runs it")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the binaries under test: %v", err)
	}
	dir := t.TempDir()
	build := exec.Command(gobin, "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	build.Dir = filepath.Join(repoRoot, "services")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/...: %v\n%s", err, out)
	}
	return dir
}

// run runs the binary name of dir with args and env as its only
// environment, and returns its stdout, stderr and error.
func run(dir, name string, env []string, args ...string) (string, string, error) {
	cmd := exec.Command(filepath.Join(dir, name), args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TestBinaries builds the binaries and checks that their --help shows the
// very flags this package documents, so that a main that stops building
// its flags the documented way is caught, and that a service binary
// reports every invalid setting at once — its own settings included —
// before it connects to anything.
func TestBinaries(t *testing.T) {
	t.Parallel()
	dir := buildBinaries(t)
	for _, c := range Commands() {
		t.Run("help/"+c.Name, func(t *testing.T) {
			t.Parallel()
			fs, _ := c.Flags()
			args := strings.Fields(c.Name)
			stdout, stderr, err := run(dir, args[0], nil, append(args[1:], "--help")...)
			if err != nil {
				t.Fatalf("%s --help: %v\n%s", c.Name, err, stderr)
			}
			if c.Service {
				var want bytes.Buffer
				bootstrap.PrintUsage(&want, fs)
				if stderr != want.String() {
					t.Errorf("%s --help printed\n%s\nwant\n%s", c.Name, stderr, want.String())
				}
				return
			}
			// Cobra adds --help and the root's flags (under "Global Flags:").
			local, _, _ := strings.Cut(stdout, "Global Flags:")
			_, local, _ = strings.Cut(local, "Flags:")
			var got []string
			for _, m := range helpFlag.FindAllStringSubmatch(local, -1) {
				if m[1] != "help" {
					got = append(got, m[1])
				}
			}
			slices.Sort(got)
			want := flagNames(fs)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s --help lists flags\n%v\nwant\n%v", c.Name, got, want)
			}
			fs.VisitAll(func(f *pflag.Flag) {
				if !strings.Contains(stdout, f.Usage) {
					t.Errorf("%s --help lacks the usage of --%s: %q", c.Name, f.Name, f.Usage)
				}
			})
		})
	}
	errorTests := []struct {
		bin     string
		env     string // a bad setting of the service's own
		wantErr string
	}{
		{"hookline-ingest", "HOOKLINE_INGEST_MAX_BATCH_EVENTS=0", "--ingest-max-batch-events 0"},
		{"hookline-fanout", "HOOKLINE_FANOUT_CONCURRENCY=0", "--fanout-concurrency 0"},
		{"hookline-delivery", "HOOKLINE_DELIVERY_CONCURRENCY=0", "--delivery-concurrency: must be positive"},
		{"hookline-scheduler", "HOOKLINE_SCHEDULER_CLAIM_LIMIT=0", "--scheduler-claim-limit: must be positive"},
	}
	for _, tc := range errorTests {
		t.Run("errors/"+tc.bin, func(t *testing.T) {
			t.Parallel()
			// NATS on a closed port: were the configuration accepted, the
			// binary would fail later, with another message.
			env := []string{"HOOKLINE_STORE=bogus", "HOOKLINE_NATS_URL=nats://127.0.0.1:1", "HOOKLINE_STORE_MAX_CONNS=many", tc.env}
			_, stderr, err := run(dir, tc.bin, env, "--log-format", "xml")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("%s exited with %v, want status 1\n%s", tc.bin, err, stderr)
			}
			for _, want := range []string{
				tc.bin + ": invalid configuration:",
				`--store "bogus": want postgres://`,
				`HOOKLINE_STORE_MAX_CONNS="many"`,
				`--log-format "xml"`,
				tc.wantErr,
			} {
				if !strings.Contains(stderr, want) {
					t.Errorf("%s printed\n%s\nwant it to contain %q", tc.bin, stderr, want)
				}
			}
		})
		t.Run("no-sqlite/"+tc.bin, func(t *testing.T) {
			t.Parallel()
			// A SQLite store is refused at once, and the file is not created.
			db := filepath.Join(t.TempDir(), "hookline.db")
			env := []string{"HOOKLINE_STORE=sqlite:" + db, "HOOKLINE_NATS_URL=nats://127.0.0.1:1", "HOOKLINE_OPS_ADDR="}
			_, stderr, err := run(dir, tc.bin, env)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 1 {
				t.Fatalf("%s exited with %v, want status 1\n%s", tc.bin, err, stderr)
			}
			want := "--store " + strconv.Quote("sqlite:"+db) + `: the service binaries need a postgres:// URL (CockroachDB or PostgreSQL); SQLite is for hookline dev`
			if !strings.Contains(stderr, want) {
				t.Errorf("%s printed\n%s\nwant it to contain %q", tc.bin, stderr, want)
			}
			if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s touched %s: %v", tc.bin, db, err)
			}
		})
	}
}
