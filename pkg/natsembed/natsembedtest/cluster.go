package natsembedtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/poll"
)

// ClusterName is the cluster name of every cluster StartCluster starts.
const ClusterName = "hookline-test"

// ClusterReadyTimeout bounds how long StartCluster, Restart and WaitReady
// wait for the cluster's JetStream to be ready.
const ClusterReadyTimeout = 30 * time.Second

// nodeReadyTimeout bounds how long a node may take to open its ports.
const nodeReadyTimeout = 10 * time.Second

// clusterLogEnv names the environment variable that, when set, sends the
// servers' log lines to the test's log.
const clusterLogEnv = "NATSEMBEDTEST_LOG"

// startAttempts is how many sets of cluster ports StartCluster tries: a
// port picked free may be taken by someone else before a server binds it.
const startAttempts = 3

// Cluster is a JetStream cluster of real nats-server instances running in
// this process, on loopback only, for tests. Each node has its own store
// directory, server name, client port and cluster (route) port, all kept
// across Restart, and every node routes to every other. Like a single
// embedded server it admits only clients presenting its credentials
// (ConnectOptions). Its methods are safe for concurrent use; shutting down
// and restarting nodes is serialised.
type Cluster struct {
	creds natsembed.Credentials
	log   testing.TB // the servers' log lines go to its log; nil discards them

	opMu sync.Mutex // held while nodes start or stop

	mu     sync.Mutex // guards the fields below and those of nodes
	routes []*url.URL // every node's route URL, in node order
	nodes  []*clusterNode
}

// clusterNode is one member of a Cluster.
type clusterNode struct {
	name        string
	storeDir    string
	clientPort  int // -1 until the first instance has bound one
	clusterPort int
	ns          *server.Server // nil while the node is shut down
}

// StartCluster starts an n-node JetStream cluster on 127.0.0.1 and
// returns once JetStream has a meta leader that counts every node as an
// online peer and every node reports healthy (server.Healthz), or fails
// the test after ClusterReadyTimeout. n must be at least 2: JetStream
// sizes its meta group at two peers or more, so a one-node cluster never
// elects a leader (Start runs a single server); surviving the loss of a
// node takes 3. Every node is shut down, and all its goroutines ended,
// when the test ends; its store is a t.TempDir(). Setting
// NATSEMBEDTEST_LOG in the environment sends the servers' logs (debug
// level included) to the test's log.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 2 {
		t.Fatalf("natsembedtest: a JetStream cluster needs at least 2 nodes, not %d (Start runs a single server)", n)
	}
	creds, err := natsembed.NewCredentials()
	if err != nil {
		t.Fatalf("natsembedtest: %v", err)
	}
	c := &Cluster{creds: creds}
	if os.Getenv(clusterLogEnv) != "" {
		c.log = t
	}
	for i := range n {
		c.nodes = append(c.nodes, &clusterNode{name: fmt.Sprintf("%s-%d", ClusterName, i)})
	}
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		// Fresh stores for each attempt: a failed one may have written
		// cluster state naming ports no longer used.
		for _, nd := range c.nodes {
			nd.storeDir = t.TempDir()
		}
		// Registered after the TempDirs, so it runs before they are
		// removed. Shutting down twice is harmless.
		t.Cleanup(c.shutdownAll)
		if lastErr = c.startAll(); lastErr == nil {
			break
		}
		c.shutdownAll()
	}
	if lastErr != nil {
		t.Fatalf("natsembedtest: start a %d-node cluster (%d attempts): %v", n, startAttempts, lastErr)
	}
	c.WaitReady(t)
	return c
}

// startAll picks new cluster ports and starts every node on them.
func (c *Cluster) startAll() error {
	ports, err := freePorts(len(c.nodes))
	if err != nil {
		return err
	}
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.mu.Lock()
	c.routes = c.routes[:0]
	for i, nd := range c.nodes {
		nd.clusterPort = ports[i]
		nd.clientPort = -1
		c.routes = append(c.routes, &url.URL{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[i]))})
	}
	c.mu.Unlock()
	for _, nd := range c.nodes {
		if err := c.startNode(nd); err != nil {
			return err
		}
	}
	return nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("pick a cluster port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// startNode starts nd on its ports and store dir and returns once it
// accepts clients and routes. c.opMu is held.
func (c *Cluster) startNode(nd *clusterNode) error {
	c.mu.Lock()
	routes := make([]*url.URL, len(c.routes)) // copies: the server keeps them
	for i, u := range c.routes {
		cp := *u
		routes[i] = &cp
	}
	name, storeDir, clientPort, clusterPort := nd.name, nd.storeDir, nd.clientPort, nd.clusterPort
	c.mu.Unlock()

	opts := &server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		Port:       clientPort,
		// The only user, as on a single embedded server: a client without
		// its signature is refused. Routes need no credentials.
		Nkeys: []*server.NkeyUser{{Nkey: c.creds.PublicKey()}},
		Cluster: server.ClusterOpts{
			Name:        ClusterName,
			Host:        "127.0.0.1",
			Port:        clusterPort,
			Compression: server.CompressionOpts{Mode: server.CompressionOff},
		},
		// Every node, itself included (a route to itself is detected and
		// dropped): JetStream sizes its meta group from this list.
		Routes:    routes,
		JetStream: true,
		StoreDir:  storeDir,
		NoSigs:    true,
		NoLog:     true,
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("configure node %s: %w", name, err)
	}
	// Always our own logger, never the server's default one: that one
	// calls os.Exit on Fatalf.
	logs := &clusterLog{name: name, t: c.log}
	ns.SetLogger(logs, c.log != nil, false)
	ns.Start()
	fail := func(err error) error {
		ns.Shutdown()
		ns.WaitForShutdown()
		return err
	}
	// The route listener opens in a goroutine: a port taken meanwhile
	// shows as a fatal log line, not as a failure of Start.
	deadline := time.Now().Add(nodeReadyTimeout)
	for !ns.ReadyForConnections(50 * time.Millisecond) {
		if msg := logs.fatalMessage(); msg != "" {
			return fail(fmt.Errorf("start node %s: %s", name, msg))
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("node %s (client port %d, cluster port %d) not ready for connections within %s",
				name, clientPort, clusterPort, nodeReadyTimeout))
		}
	}
	if msg := logs.fatalMessage(); msg != "" {
		return fail(fmt.Errorf("start node %s: %s", name, msg))
	}
	addr, ok := ns.Addr().(*net.TCPAddr)
	if !ok {
		return fail(fmt.Errorf("node %s has no client address", name))
	}
	c.mu.Lock()
	nd.clientPort = addr.Port
	nd.ns = ns
	c.mu.Unlock()
	return nil
}

// WaitReady waits until every running node reports healthy
// (server.Healthz: accepting connections, JetStream enabled, current with
// a meta leader, and the streams and consumers it hosts current), exactly
// one node is the meta leader, and the leader counts every running node as
// an online JetStream peer. It fails the test after ClusterReadyTimeout.
func (c *Cluster) WaitReady(t testing.TB) {
	t.Helper()
	poll.WithinReason(t, ClusterReadyTimeout, "the JetStream cluster to be ready", c.ready)
}

// ready reports whether the cluster is ready, and if not, why.
func (c *Cluster) ready() (bool, string) {
	c.mu.Lock()
	var running []*clusterNode
	for _, nd := range c.nodes {
		if nd.ns != nil {
			running = append(running, &clusterNode{name: nd.name, ns: nd.ns})
		}
	}
	c.mu.Unlock()
	if len(running) == 0 {
		return false, "no node is running"
	}
	var leaders []*clusterNode
	for _, nd := range running {
		if !nd.ns.JetStreamEnabled() {
			return false, nd.name + ": JetStream not enabled"
		}
		if h := nd.ns.Healthz(nil); h.Error != "" || h.Status != "ok" {
			return false, fmt.Sprintf("%s: health %s: %s", nd.name, h.Status, h.Error)
		}
		if nd.ns.JetStreamIsLeader() {
			leaders = append(leaders, nd)
		}
	}
	if len(leaders) != 1 {
		return false, fmt.Sprintf("%d meta leaders", len(leaders))
	}
	if peers := leaders[0].ns.JetStreamClusterPeers(); len(peers) != len(running) {
		return false, fmt.Sprintf("meta leader %s sees online peers %q, want %d", leaders[0].name, peers, len(running))
	}
	return true, ""
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// ServerName is node i's server name, the name JetStream reports for it
// (StreamInfo.Cluster.Leader, say). It stays the same across Restart.
func (c *Cluster) ServerName(i int) string { return c.nodes[i].name }

// Index is the index of the node whose server name is name, or -1.
func (c *Cluster) Index(name string) int {
	for i, nd := range c.nodes {
		if nd.name == name {
			return i
		}
	}
	return -1
}

// ClientURL is node i's client URL, nats://127.0.0.1:<port>; it stays the
// same across Restart.
func (c *Cluster) ClientURL(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.nodes[i].clientPort))
}

// ClientURLs is every node's client URL, comma-separated in node order, as
// nats.Connect (and natsjs.Config.URL) takes a cluster's.
func (c *Cluster) ClientURLs() string {
	urls := make([]string, len(c.nodes))
	for i := range c.nodes {
		urls[i] = c.ClientURL(i)
	}
	return strings.Join(urls, ",")
}

// ConnectOptions returns what a client needs besides the URLs: the option
// presenting the cluster's credentials, which every node requires.
func (c *Cluster) ConnectOptions() []nats.Option {
	return []nats.Option{c.creds.Option()}
}

// Shutdown stops node i and returns once all its goroutines have ended.
// Its store dir and ports are kept for Restart. It is a graceful stop
// (server.Shutdown), not a crash: the node first steps down from leading
// any Raft group, so the other nodes elect new leaders at once rather than
// after an election timeout. Shutting down a node that is not running
// does nothing.
func (c *Cluster) Shutdown(i int) {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	c.stopNode(i)
}

// stopNode stops node i if it runs. c.opMu is held.
func (c *Cluster) stopNode(i int) {
	c.mu.Lock()
	ns := c.nodes[i].ns
	c.nodes[i].ns = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// Restart starts node i again (shutting it down first if it runs) with the
// same server name, store dir, client and cluster ports, so it rejoins the
// cluster with the streams it held, and returns once WaitReady would: the
// node is healthy again, which includes its streams and consumers having
// caught up as far as it can tell. It fails the test if the node cannot
// start or the cluster is not ready within ClusterReadyTimeout.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	c.opMu.Lock()
	c.stopNode(i)
	err := c.startNode(c.nodes[i])
	c.opMu.Unlock()
	if err != nil {
		t.Fatalf("natsembedtest: restart: %v", err)
	}
	c.WaitReady(t)
}

// shutdownAll stops every running node at once and waits for all of them.
func (c *Cluster) shutdownAll() {
	c.opMu.Lock()
	defer c.opMu.Unlock()
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Go(func() { c.stopNode(i) })
	}
	wg.Wait()
}

// clusterLog is a server.Logger that remembers the first fatal message
// and, when t is set, writes every line to the test's log.
type clusterLog struct {
	name string
	t    testing.TB // nil: discard

	mu    sync.Mutex
	fatal string
}

func (l *clusterLog) fatalMessage() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fatal
}

func (l *clusterLog) log(level, format string, v []any) {
	if l.t != nil {
		l.t.Logf("%s %s: %s", l.name, level, fmt.Sprintf(format, v...))
	}
}

func (l *clusterLog) Noticef(format string, v ...any) { l.log("INF", format, v) }
func (l *clusterLog) Warnf(format string, v ...any)   { l.log("WRN", format, v) }
func (l *clusterLog) Errorf(format string, v ...any)  { l.log("ERR", format, v) }
func (l *clusterLog) Debugf(format string, v ...any)  { l.log("DBG", format, v) }
func (l *clusterLog) Tracef(format string, v ...any)  { l.log("TRC", format, v) }

// Fatalf records the message and does not exit: a node that cannot start
// surfaces as an error from startNode instead.
func (l *clusterLog) Fatalf(format string, v ...any) {
	l.mu.Lock()
	if l.fatal == "" {
		l.fatal = fmt.Sprintf(format, v...)
	}
	l.mu.Unlock()
	l.log("FTL", format, v)
}

var _ server.Logger = (*clusterLog)(nil)
