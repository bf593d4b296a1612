package configdoc

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hookline/hookline/services/internal/servicetable"
)

// servicesModule is the module path of the services module.
const servicesModule = "github.com/hookline/hookline/services"

// serviceBinaries are the production service binaries, under services/cmd:
// one per entry of the service table.
var serviceBinaries = func() []string {
	var bins []string
	for _, svc := range servicetable.All() {
		bins = append(bins, svc.Binary())
	}
	return bins
}()

// benchmarkCode is the benchmark harness: make bench builds it, and no
// binary of the production image may link it.
const benchmarkCode = servicesModule + "/bench"

// devOnly are the packages the service binaries must not link, each with
// its subpackages: SQLite and the embedded NATS server are the backends of
// hookline dev. The design brief has the backends chosen in main so that
// production binaries do not link them.
var devOnly = []string{
	"modernc.org/sqlite",
	"github.com/hookline/hookline/pkg/store/sqlite",
	"github.com/nats-io/nats-server/v2",
	"github.com/hookline/hookline/pkg/natsembed",
}

// importGraph is the result of go list -deps: each package's imports.
type importGraph map[string][]string

// listDeps runs go list -deps on pkgs in the services module, with extra
// environment variables, and returns the import graph of everything they
// link.
func listDeps(t *testing.T, extraEnv []string, pkgs ...string) importGraph {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list what the binaries link: %v", err)
	}
	args := append([]string{"list", "-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}"}, pkgs...)
	cmd := exec.Command(gobin, args...)
	cmd.Dir = filepath.Join(repoRoot, "services")
	cmd.Env = append(os.Environ(), extraEnv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	g := importGraph{}
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		if len(fields) > 0 {
			g[fields[0]] = fields[1:]
		}
	}
	return g
}

// within reports whether pkg is prefix or one of its subpackages.
func within(pkg, prefix string) bool {
	return pkg == prefix || strings.HasPrefix(pkg, prefix+"/")
}

// chains returns, for each of prefixes that root links, one import chain
// from root to a package within it ("a → b → c"), found breadth first.
func (g importGraph) chains(root string, prefixes []string) map[string]string {
	parent := map[string]string{root: ""}
	found := map[string]string{}
	for queue := []string{root}; len(queue) > 0; queue = queue[1:] {
		pkg := queue[0]
		for _, p := range prefixes {
			if _, ok := found[p]; !ok && within(pkg, p) {
				var chain []string
				for q := pkg; q != ""; q = parent[q] {
					chain = append(chain, q)
				}
				slices.Reverse(chain)
				found[p] = strings.Join(chain, " → ")
			}
		}
		for _, imp := range g[pkg] {
			if _, seen := parent[imp]; !seen {
				parent[imp] = pkg
				queue = append(queue, imp)
			}
		}
	}
	return found
}

// TestServiceBinariesLinkNoDevBackends proves that the service binaries
// link neither SQLite nor the embedded NATS server, for the machine running
// the test and for the build of deploy/Dockerfile, and that no binary of
// the image (the service binaries and the hookline CLI) links the
// benchmark harness. The hookline CLI, which runs hookline dev, must link
// both dev backends: that it does shows the package paths checked are the
// right ones.
func TestServiceBinariesLinkNoDevBackends(t *testing.T) {
	t.Parallel()
	builds := []struct {
		name string
		env  []string
	}{
		{"host", nil},
		{"deploy/Dockerfile", []string{"GOOS=linux", "CGO_ENABLED=0"}},
	}
	for _, b := range builds {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			pkgs := []string{"./cmd/hookline"}
			for _, bin := range serviceBinaries {
				pkgs = append(pkgs, "./cmd/"+bin)
			}
			g := listDeps(t, b.env, pkgs...)
			for _, bin := range serviceBinaries {
				root := servicesModule + "/cmd/" + bin
				if _, ok := g[root]; !ok {
					t.Fatalf("go list did not list %s", root)
				}
				found := g.chains(root, devOnly)
				for _, p := range devOnly {
					if chain, ok := found[p]; ok {
						t.Errorf("%s links %s, which only hookline dev may link:\n    %s", bin, p, chain)
					}
				}
			}
			found := g.chains(servicesModule+"/cmd/hookline", devOnly)
			for _, p := range devOnly {
				if _, ok := found[p]; !ok {
					t.Errorf("the hookline CLI does not link %s, which hookline dev runs on: if it moved, update devOnly", p)
				}
			}
			for _, bin := range append([]string{"hookline"}, serviceBinaries...) {
				if chain, ok := g.chains(servicesModule+"/cmd/"+bin, []string{benchmarkCode})[benchmarkCode]; ok {
					t.Errorf("%s links the benchmark harness, which stays out of the image:\n    %s", bin, chain)
				}
			}
		})
	}
}

// TestServicesImportNoOtherService proves that no service package links
// another: what services share lives in services/internal (the message
// format in wire, the settling of messages in settle, ...), and only the
// composition roots (the service table, hookline dev) know every service.
func TestServicesImportNoOtherService(t *testing.T) {
	t.Parallel()
	var pkgs, roots []string
	for _, svc := range servicetable.All() {
		pkgs = append(pkgs, "./"+svc.Name)
		roots = append(roots, servicesModule+"/"+svc.Name)
	}
	g := listDeps(t, nil, pkgs...)
	for _, root := range roots {
		if _, ok := g[root]; !ok {
			t.Fatalf("go list did not list %s: a service moved, update the test", root)
		}
		var others []string
		for _, o := range roots {
			if o != root {
				others = append(others, o)
			}
		}
		for other, chain := range g.chains(root, others) {
			t.Errorf("%s links the service %s:\n    %s", root, other, chain)
		}
	}
}
