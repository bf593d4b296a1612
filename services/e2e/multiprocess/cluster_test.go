package multiprocess

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/services/internal/apikey"
	"github.com/hookline/hookline/services/internal/broker"
	"github.com/hookline/hookline/services/internal/childproc"
)

// Settings shortened for the test, so a killed replica's messages come
// back within seconds and failed work is retried quickly. Only existing
// flags are used.
var (
	ingestFlags = []string{
		"--ingest-http-addr=",                 // JSON/HTTP API off: the test speaks gRPC
		"--ingest-allow-cidrs", "127.0.0.0/8", // subscriptions point at the loopback receiver
		"--ingest-operator-keys", apikey.HashString(operatorKey), // as in production: the hash, not the key
	}
	fanoutFlags = []string{
		"--fanout-ack-wait", "5s",
		"--fanout-retry-delay", "250ms",
	}
	deliveryFlags = []string{
		"--delivery-allow-cidrs", "127.0.0.0/8", // the SSRF guard denies loopback otherwise
		// The receiver runs in the test process: on a loaded machine (a
		// second make test beside this one) it may take seconds to answer.
		"--delivery-timeout", "5s",
		"--delivery-max-timeout", "5s",
		"--delivery-ack-wait", "11s", // must exceed the max timeout by more than 5s
		"--delivery-error-backoff", "250ms",
		"--delivery-shutdown-grace", "2s",
	}
	schedulerFlags = []string{
		"--scheduler-poll-interval", "100ms",
		"--scheduler-claim-lease", "5s",
	}
)

// operatorKey is the API key the tests call ingest with; the services are
// configured with its hash.
var operatorKey = func() string {
	k, _, err := apikey.Generate()
	if err != nil {
		panic(err)
	}
	return k
}()

// cluster is a deployment of Hookline as separate processes: one broker
// on a fixed loopback port with file storage — nats-server with
// JetStream, or kfake-server (a Kafka-protocol test broker) — and any
// number of service replicas, all on one store.
type cluster struct {
	t         *testing.T
	bin       string // directory of the executables
	dir       string // logs and the broker's store
	store     string // --store of every service
	keys      string // --secret-keys of every service
	transport string // broker.NATS or broker.Kafka
	natsAddr  string // host:port, fixed across nats-server restarts
	natsMon   string // host:port of nats-server's monitoring endpoint
	kafkaAddr string // host:port, fixed across kfake-server restarts

	// syncAlways makes the broker fsync every write, so that a SIGKILL of
	// the broker loses nothing it acknowledged.
	syncAlways bool

	nats     *process               // current nats-server (on NATS)
	kfake    *process               // current kfake-server (on Kafka)
	started  []*process             // every process started, in order
	services map[string]*process    // current process of each replica name
	specs    map[string]serviceSpec // how each replica name was started
	starts   map[string]int         // processes started per name, for log names
}

// serviceSpec is the executable and own flags of a replica.
type serviceSpec struct {
	binary string
	flags  []string
}

// newCluster prepares a cluster on store with the executables in bin,
// whose broker is transport's. When the test ends — passed, failed or
// panicking — it stops every process and, if the test failed, prints the
// end of every log.
func newCluster(t *testing.T, bin, store, transport string) *cluster {
	c := &cluster{
		t: t, bin: bin, dir: t.TempDir(), store: store, keys: secretKeys(t), transport: transport,
		natsAddr: freeAddr(t), natsMon: freeAddr(t), kafkaAddr: freeAddr(t),
		services: map[string]*process{}, specs: map[string]serviceSpec{}, starts: map[string]int{},
	}
	t.Cleanup(func() {
		c.stopAll()
		c.printLogsOnFailure()
	})
	return c
}

// secretKeys is a keyring of one new key, in the text form of
// --secret-keys.
func secretKeys(t *testing.T) string {
	t.Helper()
	k, err := keyring.Generate("mp-1")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// start starts a process, recording it for stopAll.
func (c *cluster) start(name, binary string, args ...string) *process {
	c.t.Helper()
	p := startProcess(c.t, name, c.logPath(name), filepath.Join(c.bin, binary), args...)
	c.started = append(c.started, p)
	return p
}

// stopAll stops every service at once (SIGTERM, then SIGKILL after
// stopTimeout), then the broker, so the services shut down while the
// broker still answers.
func (c *cluster) stopAll() {
	var services, brokers []*process
	for _, p := range c.started {
		if p.name == "nats-server" || p.name == "kfake-server" {
			brokers = append(brokers, p)
		} else {
			services = append(services, p)
		}
	}
	c.stopConcurrently(services)
	c.stopConcurrently(brokers)
}

// stopConcurrently stops ps in parallel and reports each failure to stop.
func (c *cluster) stopConcurrently(ps []*process) {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.stop(stopTimeout) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			c.t.Errorf("stopping %s: %v", ps[i].name, err)
		}
	}
}

// logPath returns a fresh log file name for the next process called name.
func (c *cluster) logPath(name string) string {
	c.starts[name]++
	return filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", name, c.starts[name]))
}

// startNATS starts nats-server (again, after stopNATS, on the same port
// and store directory) and waits until JetStream is healthy.
func (c *cluster) startNATS() {
	c.t.Helper()
	host, port := splitAddr(c.t, c.natsAddr)
	_, monPort := splitAddr(c.t, c.natsMon)
	// Lame duck mode (stopNATS) lets clients go over a few seconds, after a
	// grace of one.
	conf := "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"1s\"\n"
	if c.syncAlways {
		conf += "jetstream {\n  sync_interval: always\n}\n"
	}
	confPath := filepath.Join(c.dir, "nats-server.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.nats = c.start("nats-server", "nats-server",
		"-c", confPath, "-a", host, "-p", port, "-m", monPort, "-js", "-sd", filepath.Join(c.dir, "jetstream"), "-n", "hookline-test")
	c.nats.waitHTTP200(c.t, "http://"+c.natsMon+"/healthz")
}

// stopNATS stops nats-server the way an operator restarts a broker: in
// lame duck mode (SIGUSR2), which tells the clients, stops JetStream
// (writing its state) and then closes the clients; it waits for the exit.
func (c *cluster) stopNATS() {
	c.t.Helper()
	if err := c.nats.lameDuck(natsStopTimeout); err != nil {
		c.t.Fatalf("nats-server: %v", err)
	}
}

// natsStopTimeout bounds a lame duck stop: the grace period, then the
// clients closed at most one a second.
const natsStopTimeout = 45 * time.Second

func (c *cluster) natsURL() string { return "nats://" + c.natsAddr }

// brokerName names the broker process in logs and fault names.
func (c *cluster) brokerName() string {
	if c.transport == broker.Kafka {
		return "kfake-server"
	}
	return "nats-server"
}

// startBroker starts the broker (again, after stopBroker or killBroker,
// on the same port and store) and waits until it answers.
func (c *cluster) startBroker() {
	c.t.Helper()
	if c.transport == broker.NATS {
		c.startNATS()
		return
	}
	args := []string{"--addr", c.kafkaAddr, "--data-dir", filepath.Join(c.dir, "kafka")}
	if c.syncAlways {
		args = append(args, "--sync")
	}
	c.kfake = c.start("kfake-server", "kfake-server", args...)
	c.kfake.waitTCP(c.t, c.kafkaAddr)
}

// stopBroker stops the broker the way an operator restarts one: nats-server
// in lame duck mode (stopNATS), kfake-server with SIGTERM, which writes its
// state first. It waits for the exit.
func (c *cluster) stopBroker() {
	c.t.Helper()
	if c.transport == broker.NATS {
		c.stopNATS()
		return
	}
	if err := c.kfake.stop(stopTimeout); err != nil {
		c.t.Fatalf("kfake-server: %v", err)
	}
}

// killBroker kills the broker with SIGKILL and starts it again.
func (c *cluster) killBroker() {
	c.t.Helper()
	if c.transport == broker.NATS {
		c.nats.kill(c.t)
	} else {
		c.kfake.kill(c.t)
	}
	c.startBroker()
}

// brokerFlags are the services' flags that point them at the broker.
func (c *cluster) brokerFlags() []string {
	if c.transport == broker.Kafka {
		return []string{"--transport", "kafka", "--kafka-brokers", c.kafkaAddr, "--kafka-partitions", "8"}
	}
	return []string{"--nats-url", c.natsURL()}
}

// startService starts the replica name of binary with the shared flags
// and its own, and returns it without waiting for it to be ready.
func (c *cluster) startService(name, binary string, flags ...string) *process {
	c.t.Helper()
	c.specs[name] = serviceSpec{binary: binary, flags: flags}
	ops := freeAddr(c.t)
	args := append(c.brokerFlags(), "--store", c.store, "--secret-keys", c.keys, "--ops-addr", ops,
		"--log-format", "text", "--log-level", "info")
	args = append(args, flags...)
	p := c.start(name, binary, args...)
	p.opsAddr = ops
	c.services[name] = p
	return p
}

// startStack starts the broker and the deployment the tests break — one
// ingest (its gRPC API on the address returned), one scheduler, two
// fanout and two delivery replicas — and waits until all are ready.
func (c *cluster) startStack() (grpcAddr string) {
	c.t.Helper()
	c.startBroker()
	grpcAddr = freeAddr(c.t)
	c.waitReady(
		c.startService("ingest", "hookline-ingest", append([]string{"--ingest-grpc-addr", grpcAddr}, ingestFlags...)...),
		c.startService("scheduler", "hookline-scheduler", schedulerFlags...),
		c.startService("fanout-1", "hookline-fanout", fanoutFlags...),
		c.startService("fanout-2", "hookline-fanout", fanoutFlags...),
		c.startService("delivery-1", "hookline-delivery", deliveryFlags...),
		c.startService("delivery-2", "hookline-delivery", deliveryFlags...),
	)
	return grpcAddr
}

// waitReady waits until every process answers 200 on /readyz.
func (c *cluster) waitReady(ps ...*process) {
	c.t.Helper()
	for _, p := range ps {
		p.waitHTTP200(c.t, "http://"+p.opsAddr+"/readyz")
	}
}

// restart kills replica name with SIGKILL — no shutdown, no acks, no
// naks — and starts a replacement with the same arguments, as a
// supervisor would.
func (c *cluster) restart(name string) {
	c.t.Helper()
	c.services[name].kill(c.t)
	spec := c.specs[name]
	c.waitReady(c.startService(name, spec.binary, spec.flags...))
}

// unexpectedExits lists the processes that exited without the test
// stopping them.
func (c *cluster) unexpectedExits() []string {
	var out []string
	for _, p := range c.started {
		if !p.running() && !p.killed {
			out = append(out, fmt.Sprintf("%s exited on its own: %v", p.name, p.err))
		}
	}
	return out
}

// printLogsOnFailure prints the end of every process's log when the test
// failed.
// With HOOKLINE_MULTIPROCESS_LOGS set to a directory, it also copies the
// whole logs there, under the test's name.
func (c *cluster) printLogsOnFailure() {
	if !c.t.Failed() {
		return
	}
	for _, p := range c.started {
		c.t.Logf("==== last lines of %s ====\n%s", filepath.Base(p.logPath), childproc.Tail(p.logPath, 40))
	}
	if dir := os.Getenv("HOOKLINE_MULTIPROCESS_LOGS"); dir != "" {
		dst := filepath.Join(dir, strings.ReplaceAll(c.t.Name(), "/", "_"))
		if err := os.CopyFS(dst, os.DirFS(c.dir)); err != nil {
			c.t.Logf("copying the logs to %s: %v", dst, err)
		} else {
			c.t.Logf("logs copied to %s", dst)
		}
	}
}

// splitAddr splits host:port.
func splitAddr(t *testing.T, addr string) (host, port string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return host, port
}
