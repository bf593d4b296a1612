package crdbtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// Private is a PostgreSQL server of one test's own: a cluster made with
// initdb in a temporary directory, on a free loopback port, run as the
// postgres user from the machine's PostgreSQL binaries. Unlike the shared
// test server, a test may stop, kill and restart it.
type Private struct {
	tb      testing.TB
	bin     string // directory of initdb, pg_ctl
	dir     string // the cluster's data directory
	port    int
	logFile string
}

// NewPrivate initialises and starts a private server, stopped and removed
// when tb ends. It skips tb where the machine has no PostgreSQL binaries
// or no postgres user (initdb refuses to run as root), and fails it when
// they are there but the server does not start.
func NewPrivate(tb testing.TB) *Private {
	tb.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		tb.Skip("crdbtest: no PostgreSQL binaries under /usr/lib/postgresql")
	}
	slices.Sort(bins)
	pg, err := user.Lookup("postgres")
	if err != nil {
		tb.Skipf("crdbtest: no postgres user to run a private server as: %v", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	root, err := os.MkdirTemp("", "hookline-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	p := &Private{tb: tb, bin: filepath.Dir(bins[len(bins)-1]), dir: filepath.Join(root, "data"), logFile: filepath.Join(root, "postgres.log")}
	for _, d := range []string{p.dir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			tb.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(p.logFile, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chown(p.logFile, uid, gid); err != nil {
		tb.Fatal(err)
	}
	p.port = freePort(tb)
	p.run("initdb", "-D", p.dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
	p.Start()
	tb.Cleanup(func() { p.stop("immediate", false) })
	return p
}

// URL is the server's postgres database, for crdbtest-style URLs.
func (p *Private) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Start starts the server (again) on its port and waits until it accepts
// connections.
func (p *Private) Start() {
	p.tb.Helper()
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c full_page_writes=off", p.port)
	p.run("pg_ctl", "-D", p.dir, "-o", opts, "-l", p.logFile, "-w", "-t", "60", "start")
}

// Kill stops the server at once, as a crash would (pg_ctl -m immediate:
// no checkpoint; the next start recovers from the WAL).
func (p *Private) Kill() {
	p.tb.Helper()
	p.stop("immediate", true)
}

func (p *Private) stop(mode string, mustSucceed bool) {
	cmd := exec.Command("runuser", "-u", "postgres", "--", filepath.Join(p.bin, "pg_ctl"), "-D", p.dir, "-m", mode, "-w", "-t", "60", "stop")
	if out, err := cmd.CombinedOutput(); err != nil && mustSucceed {
		p.tb.Fatalf("crdbtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// run runs one of the PostgreSQL binaries as the postgres user.
func (p *Private) run(name string, args ...string) {
	p.tb.Helper()
	cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(p.bin, name)}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(p.logFile)
		p.tb.Fatalf("crdbtest: %s: %v\n%s\n%s", name, err, out, log)
	}
}

// freePort is a loopback TCP port free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
