package configdoc

import (
	"bufio"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/services/cli"
)

// deployDir holds the deployment examples, seen from this package.
var deployDir = filepath.Join(repoRoot, "deploy")

// envFile is a parsed deploy/env/*.env file.
type envFile struct {
	// vars are the variables set.
	vars map[string]string
	// commented are HOOKLINE_* names in commented-out examples
	// ("# HOOKLINE_X=...").
	commented []string
}

var commentedVar = regexp.MustCompile(`^#\s*(HOOKLINE_[A-Z0-9_]+)=`)

// readEnvFile parses path in the format of docker compose's env_file:
// KEY=VALUE lines, taken literally, and # comments.
func readEnvFile(t *testing.T, path string) envFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ef := envFile{vars: map[string]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if m := commentedVar.FindStringSubmatch(line); m != nil {
			ef.commented = append(ef.commented, m[1])
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s:%d: want KEY=VALUE, got %q", path, n, line)
			continue
		}
		if _, dup := ef.vars[k]; dup {
			t.Errorf("%s:%d: %s set twice", path, n, k)
		}
		if strings.ContainsAny(v, `"'$`) || strings.Contains(v, " #") {
			t.Errorf("%s:%d: %s=%s: quotes, $ and comments after a value are not taken literally by every reader", path, n, k, v)
		}
		ef.vars[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ef
}

// checkEnv checks that every variable of vars and every name of commented
// is a flag of the command named cmd, and that the values of vars parse
// and pass the command's validation. where names the source in errors.
func checkEnv(t *testing.T, where, cmd string, vars map[string]string, commented []string) {
	t.Helper()
	c, ok := Lookup(cmd)
	if !ok {
		t.Fatalf("%s: %s is not a documented command", where, cmd)
	}
	fs, validate := c.Flags()
	envs := map[string]bool{}
	for _, name := range flagNames(fs) {
		envs[config.EnvName(name)] = true
	}
	for _, k := range slices.Concat(slices.Collect(maps.Keys(vars)), commented) {
		if !strings.HasPrefix(k, config.EnvPrefix) {
			t.Errorf("%s: %s is not a HOOKLINE_* variable", where, k)
		} else if !envs[k] {
			t.Errorf("%s: %s is not a flag of %s (see docs/configuration.md)", where, k, cmd)
		}
	}
	if err := config.ApplyEnv(fs, func(k string) (string, bool) { v, ok := vars[k]; return v, ok }); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	if validate != nil {
		if err := validate(); err != nil {
			t.Errorf("%s: %s rejects the configuration:\n%v", where, cmd, err)
		}
	}
}

func TestDeployEnvFiles(t *testing.T) {
	t.Parallel()
	tests := []struct{ file, cmd string }{
		{"ingest.env", "hookline-ingest"},
		{"fanout.env", "hookline-fanout"},
		{"delivery.env", "hookline-delivery"},
		{"scheduler.env", "hookline-scheduler"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(deployDir, "env", tc.file)
			ef := readEnvFile(t, path)
			checkEnv(t, path, tc.cmd, ef.vars, ef.commented)
			for _, k := range []string{"HOOKLINE_STORE", "HOOKLINE_NATS_URL", "HOOKLINE_STORE_MIGRATE"} {
				if _, ok := ef.vars[k]; !ok {
					t.Errorf("%s: %s is not set", path, k)
				}
			}
		})
	}
	// No env file is left out of the table.
	files, err := filepath.Glob(filepath.Join(deployDir, "env", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.ContainsFunc(tests, func(tc struct{ file, cmd string }) bool { return tc.file == filepath.Base(f) }) {
			t.Errorf("%s is not checked by TestDeployEnvFiles", f)
		}
	}
}

// compose is the part of a compose file the test checks.
type compose struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	EnvFile     []string          `yaml:"env_file"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// hooklineImage is the image compose.yaml builds from deploy/Dockerfile.
const hooklineImage = "hookline:local"

func TestComposeFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(deployDir, "compose.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cf compose
	if err := yaml.Unmarshal(data, &cf); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, want := range []string{"nats", "cockroach", "migrate", "ingest", "fanout", "delivery", "scheduler"} {
		if _, ok := cf.Services[want]; !ok {
			t.Errorf("%s: no %s service", path, want)
		}
	}
	for _, name := range []string{"fanout", "delivery"} {
		if r := cf.Services[name].Deploy.Replicas; r < 2 {
			t.Errorf("%s: %s runs %d replicas, want 2", path, name, r)
		}
	}
	for _, name := range []string{"ingest", "fanout", "delivery", "scheduler"} {
		if c := cf.Services[name].DependsOn["migrate"].Condition; c != "service_completed_successfully" {
			t.Errorf("%s: %s does not wait for migrate to succeed (condition %q)", path, name, c)
		}
	}

	stores := map[string]string{} // service -> HOOKLINE_STORE
	for name, svc := range cf.Services {
		where := path + ": " + name
		for dep := range svc.DependsOn {
			if _, ok := cf.Services[dep]; !ok {
				t.Errorf("%s depends on %s, which is not a service", where, dep)
			}
		}
		for _, v := range svc.Volumes {
			vol, _, _ := strings.Cut(v, ":")
			if _, ok := cf.Volumes[vol]; !ok {
				t.Errorf("%s mounts volume %s, which is not declared", where, vol)
			}
		}
		if svc.Build != nil {
			ctx := filepath.Join(deployDir, svc.Build.Context)
			if _, err := os.Stat(filepath.Join(ctx, svc.Build.Dockerfile)); err != nil {
				t.Errorf("%s: %v", where, err)
			}
		}
		if svc.Image != hooklineImage {
			continue
		}
		if len(svc.Entrypoint) == 0 {
			t.Errorf("%s: no entrypoint", where)
			continue
		}
		bin := filepath.Base(svc.Entrypoint[0])
		if svc.Entrypoint[0] != "/usr/local/bin/"+bin {
			t.Errorf("%s: entrypoint %s, want a binary in /usr/local/bin (deploy/Dockerfile)", where, svc.Entrypoint[0])
		}
		if _, err := os.Stat(filepath.Join(repoRoot, "services", "cmd", bin, "main.go")); err != nil {
			t.Errorf("%s runs %s, which services/cmd does not build: %v", where, bin, err)
			continue
		}
		vars := map[string]string{}
		var commented []string
		for _, f := range svc.EnvFile {
			ef := readEnvFile(t, filepath.Join(deployDir, f))
			for k, v := range ef.vars {
				vars[k] = v
			}
			commented = append(commented, ef.commented...)
		}
		for k, v := range svc.Environment {
			vars[k] = v // environment: wins over env_file, as in compose
		}
		cmd := bin
		if args := slices.Concat(svc.Entrypoint[1:], svc.Command); bin == "hookline" && len(args) > 0 {
			cmd = "hookline " + args[0]
		}
		if _, ok := Lookup(cmd); !ok {
			// A command without HOOKLINE_* settings, such as listen.
			if len(vars) > 0 {
				t.Errorf("%s: %s takes no HOOKLINE_* settings, got %v", where, cmd, slices.Collect(maps.Keys(vars)))
			}
			if _, _, err := cli.NewRoot().Find(strings.Fields(cmd)[1:]); err != nil {
				t.Errorf("%s: %s: %v", where, cmd, err)
			}
			continue
		}
		checkEnv(t, where, cmd, vars, commented)
		if s, ok := vars["HOOKLINE_STORE"]; ok {
			stores[name] = s
		}
	}
	// One store for every service and the migration.
	for name, s := range stores {
		if s != stores["migrate"] {
			t.Errorf("%s: %s uses store %s, migrate %s", path, name, s, stores["migrate"])
		}
	}
}

// flagNames lists the names of fs's flags.
func flagNames(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}
