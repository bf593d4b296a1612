package multiprocess

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookline/hookline/services/internal/childproc"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// Packages of the executables the test runs.
const (
	natsServerPkg  = "github.com/nats-io/nats-server/v2"
	kfakeServerPkg = "github.com/hookline/hookline/pkg/transport/kafka/kafkatest/kfake-server"
	cmdPkg         = "github.com/hookline/hookline/services/cmd/"
)

// serviceBinaries are the service executables, named after their package:
// one per entry of the service table.
var serviceBinaries = func() []string {
	var bins []string
	for _, svc := range servicetable.All() {
		bins = append(bins, svc.Binary())
	}
	return bins
}()

// Timings of process control.
const (
	buildTimeout = 5 * time.Minute
	readyTimeout = 60 * time.Second
	stopTimeout  = 15 * time.Second // SIGTERM, then SIGKILL
	pollEvery    = 50 * time.Millisecond
)

// built holds the executables, built once for every test of the package
// and removed by TestMain.
var built struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// buildBinaries builds nats-server (the version the module graph pins),
// kfake-server and the service binaries into a directory shared by the
// package's tests (once, by the first test that needs them), without the
// race detector even when the test itself runs with it, and returns the
// directory.
func buildBinaries(t *testing.T) string {
	t.Helper()
	built.once.Do(func() { built.dir, built.err = build() })
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.dir
}

func build() (string, error) {
	dir, err := os.MkdirTemp("", "hookline-multiprocess-")
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", dir + string(os.PathSeparator), natsServerPkg, kfakeServerPkg}
	for _, b := range serviceBinaries {
		args = append(args, cmdPkg+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = childproc.WithoutRace(os.Environ())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := runWithin(cmd, buildTimeout); err != nil {
		return dir, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	for _, b := range append([]string{"nats-server", "kfake-server"}, serviceBinaries...) {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return dir, fmt.Errorf("go build produced no %s: %w", b, err)
		}
	}
	return dir, nil
}

// runWithin runs cmd to completion, killing it after timeout.
func runWithin(cmd *exec.Cmd, timeout time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not finish within %v", timeout)
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// process is one running executable with its output in a log file.
type process struct {
	name    string
	logPath string
	opsAddr string // host:port of /healthz and /readyz, for services
	cmd     *exec.Cmd
	exited  chan struct{} // closed once the process has been reaped
	err     error         // Wait's result, once exited is closed
	killed  bool          // the test stopped or killed it on purpose
}

// startProcess starts bin with args, its stdout and stderr appended to
// logPath. The caller stops it (see cluster.stopAll).
func startProcess(t *testing.T, name, logPath, bin string, args ...string) *process {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("%s: log file: %v", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childproc.Env()
	childproc.Detach(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("%s: start %s: %v", name, bin, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be gone. It fails the
// test if the process had exited already.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if !p.running() {
		t.Fatalf("%s exited on its own before the test killed it: %v", p.name, p.err)
	}
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && p.running() {
		t.Fatalf("%s: SIGKILL: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("%s: still running %v after SIGKILL", p.name, stopTimeout)
	}
}

// stop sends SIGTERM, waits up to grace for the process to exit, then
// sends SIGKILL. It is a no-op on a process that has exited already.
func (p *process) stop(grace time.Duration) error {
	return p.signalThenKill(syscall.SIGTERM, "SIGTERM", grace)
}

// lameDuck sends nats-server SIGUSR2 (lame duck mode) and waits up to
// timeout for it to exit, then kills it.
func (p *process) lameDuck(timeout time.Duration) error {
	return p.signalThenKill(syscall.SIGUSR2, "SIGUSR2 (lame duck mode)", timeout)
}

// signalThenKill sends sig (named name), waits up to grace for the process
// to exit, then sends SIGKILL and waits up to stopTimeout more.
func (p *process) signalThenKill(sig syscall.Signal, name string, grace time.Duration) error {
	if !p.running() {
		return nil
	}
	p.killed = true
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.exited:
		return fmt.Errorf("did not stop within %v of %s; killed", grace, name)
	case <-time.After(stopTimeout):
		return fmt.Errorf("still running %v after SIGKILL", stopTimeout)
	}
}

// waitHTTP200 polls url until it answers 200, failing the test when the
// process exits first or the deadline passes.
// waitNotReady waits until the process's /readyz answers 503 with a body
// containing want.
func (p *process) waitNotReady(t *testing.T, want string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	last := "no answer yet"
	for {
		resp, err := client.Get("http://" + p.opsAddr + "/readyz")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), want) {
				return
			}
			last = resp.Status + " " + string(body)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /readyz not 503 naming %q after %v (last: %s)", p.name, want, readyTimeout, last)
		}
		<-tick.C
	}
}

func (p *process) waitHTTP200(t *testing.T, url string) {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	last := "no answer yet"
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not 200 after %v (last: %s); log:\n%s", p.name, url, readyTimeout, last, childproc.Tail(p.logPath, 30))
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.name, p.err, childproc.Tail(p.logPath, 30))
		case <-tick.C:
		}
	}
}

// waitTCP waits until addr accepts a connection (each attempt bounded)
// or the process exits.
func (p *process) waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not accepting after %v (last: %v); log:\n%s", p.name, addr, readyTimeout, err, childproc.Tail(p.logPath, 30))
		}
		select {
		case <-p.exited:
			t.Fatalf("%s exited before it was ready (%v); log:\n%s", p.name, p.err, childproc.Tail(p.logPath, 30))
		case <-tick.C:
		}
	}
}
