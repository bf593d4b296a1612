package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/services/internal/childproc"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// serviceBinaries are the service executables of the multiprocess stack,
// expected beside the hookline binary: one per entry of the service table.
var serviceBinaries = func() []string {
	var bins []string
	for _, svc := range servicetable.All() {
		bins = append(bins, svc.Binary())
	}
	return bins
}()

// loopbackCIDRs are allow-listed for subscription URLs and deliveries.
const loopbackCIDRs = "127.0.0.0/8,::1/128"

// child is one process of the multiprocess stack, its output in a log.
type child struct {
	name    string
	logPath string
	opsAddr string // /readyz and /debug/pprof of a service
	cmd     *exec.Cmd
	grace   time.Duration // between SIGTERM and SIGKILL (0: stopGrace)
	exited  chan struct{}
	err     error
}

// startChild starts bin with args, its output appended to dir/name.log.
func startChild(name, dir, bin string, args ...string) (*child, error) {
	c := &child{name: name, logPath: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: log file: %w", name, err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.Env = childproc.Env()
	childproc.Detach(c.cmd)
	if err := c.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("%s: start %s: %w", name, bin, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		_ = f.Close()
		close(c.exited)
	}()
	return c, nil
}

func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// waitHTTP200 polls url until it answers 200.
func (c *child) waitHTTP200(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(readyTimeout)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("%s: readiness request: %w", c.name, err)
		}
		if resp, err := client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s not 200 after %v (last: %s); log:\n%s", c.name, url, readyTimeout, last, childproc.Tail(c.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for readiness: %w", c.name, ctx.Err())
		case <-c.exited:
			return fmt.Errorf("%s exited before it was ready (%v); log:\n%s", c.name, c.err, childproc.Tail(c.logPath, 20))
		case <-t.C:
		}
	}
}

// stop sends SIGTERM, then SIGKILL after c.grace (stopGrace when 0).
func (c *child) stop() error {
	if !c.running() {
		return nil
	}
	grace := c.grace
	if grace == 0 {
		grace = stopGrace
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return nil
	case <-time.After(grace):
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
	return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", c.name, grace)
}

// multiStack is Hookline as separate processes: the broker (nats-server
// with JetStream, or kfake-server on Kafka), the four service binaries
// (one replica each, pprof on their ops address) and a fresh database on
// a PostgreSQL server.
type multiStack struct {
	grpc     string
	broker   *child // nats-server or kfake-server
	services []*child
	adminURL string // the PostgreSQL server, for CREATE/DROP DATABASE
	dbName   string
	keep     bool
	logger   *slog.Logger
	pgCPU0   float64 // PostgreSQL's CPU time when the stack started
}

// startMultiprocess starts the broker (nats-server, or kfake-server on
// Kafka), migrates a fresh database and starts the four services on them,
// waiting until each is ready.
func startMultiprocess(ctx context.Context, cfg Config, dir string, logger *slog.Logger) (_ *multiStack, err error) {
	hookline, brokerBin, err := multiprocessBinaries(cfg)
	if err != nil {
		return nil, err
	}
	m := &multiStack{adminURL: cfg.PostgresURL, keep: cfg.KeepData, logger: logger}
	defer func() {
		if err != nil {
			_ = m.stop()
		}
	}()
	store, err := m.createDatabase(ctx, hookline)
	if err != nil {
		return nil, err
	}
	var brokerFlags []string
	if cfg.Transport == TransportKafka {
		k, addr, err := startKfake(ctx, brokerBin, dir)
		if err != nil {
			return nil, err
		}
		m.broker = k
		brokerFlags = kafkaFlags(addr)
	} else {
		natsAddr, err := m.startNATS(ctx, dir, brokerBin)
		if err != nil {
			return nil, err
		}
		brokerFlags = []string{"--nats-url", "nats://" + natsAddr}
	}
	if err := m.startServices(ctx, cfg, dir, filepath.Dir(hookline), brokerFlags, store); err != nil {
		return nil, err
	}
	m.pgCPU0 = postgresCPU()
	return m, nil
}

// multiprocessBinaries returns the absolute path of the hookline binary,
// having checked that every service binary lies beside it, and the path of
// the broker: nats-server, or kfake-server on Kafka.
func multiprocessBinaries(cfg Config) (hookline, brokerBin string, err error) {
	hookline, err = filepath.Abs(cfg.Hookline)
	if err != nil {
		return "", "", fmt.Errorf("multiprocess stack: %w", err)
	}
	binDir := filepath.Dir(hookline)
	for _, b := range serviceBinaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			return "", "", fmt.Errorf("multiprocess stack: %s beside %s: %w (make build builds them)", b, cfg.Hookline, err)
		}
	}
	if cfg.Transport == TransportKafka {
		if brokerBin, err = cfg.kfakeServerPath(); err != nil {
			return "", "", fmt.Errorf("multiprocess stack: %w", err)
		}
		return hookline, brokerBin, nil
	}
	brokerBin, err = exec.LookPath(cfg.NATSServer)
	if err != nil {
		return "", "", fmt.Errorf("multiprocess stack: nats-server: %w", err)
	}
	return hookline, brokerBin, nil
}

// createDatabase creates a database of a random name on the PostgreSQL
// server, recorded in m so that stop drops it, and migrates it with
// hookline. It returns the database's URL.
func (m *multiStack) createDatabase(ctx context.Context, hookline string) (string, error) {
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	m.dbName = "hookline_bench_" + hex.EncodeToString(suffix)
	if err := m.psql(ctx, "CREATE DATABASE "+m.dbName); err != nil {
		return "", err
	}
	store, err := withDatabase(m.adminURL, m.dbName)
	if err != nil {
		return "", err
	}
	migrate := exec.CommandContext(ctx, hookline, "migrate", "--store", store, "--log-level", "warn")
	migrate.Env = childproc.Env()
	if out, err := migrate.CombinedOutput(); err != nil {
		return "", fmt.Errorf("hookline migrate: %w\n%s", err, out)
	}
	return store, nil
}

// startNATS starts nats-server with JetStream in dir on free loopback
// ports and waits until it is healthy. It returns its client address.
func (m *multiStack) startNATS(ctx context.Context, dir, natsBin string) (string, error) {
	natsAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	monAddr, err := freeAddr()
	if err != nil {
		return "", err
	}
	host, port, _ := net.SplitHostPort(natsAddr)
	_, monPort, _ := net.SplitHostPort(monAddr)
	if m.broker, err = startChild("nats-server", dir, natsBin, "-a", host, "-p", port, "-m", monPort,
		"-js", "-sd", filepath.Join(dir, "jetstream"), "-n", "hookline-bench"); err != nil {
		return "", err
	}
	if err := m.broker.waitHTTP200(ctx, "http://"+monAddr+"/healthz"); err != nil {
		return "", err
	}
	return natsAddr, nil
}

// startServices starts every service binary of binDir on the broker that
// brokerFlags point at and the database store, each with its own ops
// address (pprof on) and ingest's gRPC address recorded in m, and waits
// until every one is ready.
func (m *multiStack) startServices(ctx context.Context, cfg Config, dir, binDir string, brokerFlags []string, store string) error {
	var err error
	if m.grpc, err = freeAddr(); err != nil {
		return err
	}
	own := map[string][]string{
		// The harness's clients carry no key: anonymous calls act as an
		// operator, as in hookline dev.
		"hookline-ingest":   {"--ingest-grpc-addr", m.grpc, "--ingest-http-addr=", "--ingest-allow-cidrs", loopbackCIDRs, "--ingest-insecure-no-auth"},
		"hookline-delivery": {"--delivery-allow-cidrs", loopbackCIDRs},
	}
	keys, err := keyring.Generate("bench-1")
	if err != nil {
		return err
	}
	for _, b := range serviceBinaries {
		ops, err := freeAddr()
		if err != nil {
			return err
		}
		args := append(slices.Clone(brokerFlags), "--store", store, "--secret-keys", keys, "--ops-addr", ops, "--pprof",
			"--log-format", "text", "--log-level", cfg.DevLogLevel)
		args = append(args, own[b]...)
		c, err := startChild(b, dir, filepath.Join(binDir, b), args...)
		if err != nil {
			return err
		}
		c.opsAddr = ops
		m.services = append(m.services, c)
	}
	for _, c := range m.services {
		if err := c.waitHTTP200(ctx, "http://"+c.opsAddr+"/readyz"); err != nil {
			return err
		}
	}
	return nil
}

// psql runs one SQL command on the PostgreSQL server.
func (m *multiStack) psql(ctx context.Context, sql string) error {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", m.adminURL, "-c", sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %q: %w\n%s", sql, err, out)
	}
	return nil
}

// withDatabase returns the PostgreSQL URL u naming database db instead.
func withDatabase(u, db string) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("--postgres-url: %w", err)
	}
	p.Path = "/" + db
	return p.String(), nil
}

// grpcAddress implements system.
func (m *multiStack) grpcAddress() string { return m.grpc }

// processes are the stack's own processes: the services and the broker.
func (m *multiStack) processes() []*child {
	out := append([]*child{}, m.services...)
	if m.broker != nil {
		out = append(out, m.broker)
	}
	return out
}

// brokerProcess implements system.
func (m *multiStack) brokerProcess() *child { return m.broker }

// alive implements system.
func (m *multiStack) alive() error {
	var errs []error
	for _, c := range m.processes() {
		if !c.running() {
			errs = append(errs, fmt.Errorf("%s exited (%v); end of its log:\n%s", c.name, c.err, childproc.Tail(c.logPath, 20)))
		}
	}
	return errors.Join(errs...)
}

// usage implements system: the services' and the broker's CPU time and
// memory, summed (peak RSS is the sum of each process's peak, an upper
// bound), plus the CPU time the PostgreSQL server spent since the stack
// started (every postgres process on the machine: its memory is shared
// and not counted).
func (m *multiStack) usage() (ProcUsage, error) {
	var sum ProcUsage
	for _, c := range m.processes() {
		u, err := readProcUsage(c.cmd.Process.Pid)
		if err != nil {
			return sum, fmt.Errorf("%s: %w", c.name, err)
		}
		sum.CPUSeconds += u.CPUSeconds
		sum.PeakRSSBytes += u.PeakRSSBytes
		sum.RSSBytes += u.RSSBytes
		sum.Threads += u.Threads
	}
	sum.CPUSeconds += max(postgresCPU()-m.pgCPU0, 0)
	return sum, nil
}

// goroutines implements system: summed over the four services (the
// broker serves no profiles).
func (m *multiStack) goroutines(ctx context.Context) (int, map[string]int, error) {
	total, all := 0, map[string]int{}
	for _, c := range m.services {
		p := &devProcess{pprofAddr: c.opsAddr}
		n, byEntry, err := p.goroutines(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("%s: %w", c.name, err)
		}
		total += n
		for k, v := range byEntry {
			all[k] += v
		}
	}
	return total, all, nil
}

// stop implements system: the services first, together, then the broker,
// then the database is dropped (unless kept).
func (m *multiStack) stop() error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range m.services {
		wg.Go(func() {
			if err := c.stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if m.broker != nil {
		errs = append(errs, m.broker.stop())
	}
	if m.dbName != "" && !m.keep {
		errs = append(errs, m.psql(context.Background(), "DROP DATABASE IF EXISTS "+m.dbName+" WITH (FORCE)"))
	}
	return errors.Join(errs...)
}

// postgresCPU returns the CPU time of the PostgreSQL server: the
// postmaster's own and its reaped children's, plus every live postgres
// child's. It is 0 when no postgres process is visible.
func postgresCPU() float64 {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	type proc struct {
		ppid              string
		self, reapedChild float64
	}
	procs := map[string]proc{}
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil || !bytes.Contains(stat, []byte("(postgres)")) {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 15 {
			continue
		}
		self, err := parseStatCPU(stat)
		if err != nil {
			continue
		}
		var cu, cs float64
		_, _ = fmt.Sscan(f[13], &cu)
		_, _ = fmt.Sscan(f[14], &cs)
		procs[e.Name()] = proc{ppid: f[1], self: self, reapedChild: (cu + cs) / clockTicks}
	}
	var total float64
	for _, p := range procs {
		total += p.self
		if _, child := procs[p.ppid]; !child {
			total += p.reapedChild // the postmaster: its exited backends
		}
	}
	return total
}
