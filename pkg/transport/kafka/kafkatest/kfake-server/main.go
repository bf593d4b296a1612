// Command kfake-server runs kfake, a fake Kafka broker for tests, as a
// process of its own, so that multi-process tests and benchmarks can start,
// stop and kill a broker the way they would a real one.
//
// It is NOT Kafka. kfake (github.com/twmb/franz-go/pkg/kfake) is a test
// double that speaks the Kafka wire protocol: one process, one broker, no
// replication, with its own simplified storage. It is faithful enough to
// test clients such as package kafka against, but its behaviour under
// failure and its performance say nothing about a Kafka cluster's: never
// point a production service at it, and read numbers measured against it
// as numbers about the clients only.
//
// Usage:
//
//	kfake-server [--addr 127.0.0.1:9092] [--data-dir DIR] [--sync] [--partitions N]
//	             [--group-min-session-timeout D] [--log-level LEVEL]
//
// It listens on loopback only: --addr must be a loopback IP (127.0.0.0/8
// or ::1) or "localhost" (taken as 127.0.0.1, without a lookup), and port
// 0 picks a free port. Once it accepts connections it prints one line to
// standard output, with the address actually bound:
//
//	kfake listening on 127.0.0.1:9092
//
// SIGTERM (or SIGINT) closes it cleanly: with --data-dir, its whole state
// is written to DIR first, and the next start on the same DIR reloads the
// topics, their records and the groups' committed offsets. SIGKILL is the
// crash case: kfake writes every produced batch and every offset commit
// to DIR (write(2), no buffering in the process) before acknowledging it,
// so the next start still finds them; what the operating system had not
// written to the disk yet is lost only if the machine itself goes down,
// unless --sync, which syncs every batch to the disk before acknowledging
// it (slower). Without --data-dir everything is in memory and lost at
// exit.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// config is the command line.
type config struct {
	addr              string // loopback host:port, host an IP literal
	dataDir           string
	sync              bool
	partitions        int
	minSessionTimeout time.Duration
	logLevel          kfake.LogLevel
}

var logLevels = map[string]kfake.LogLevel{
	"none":  kfake.LogLevelNone,
	"error": kfake.LogLevelError,
	"warn":  kfake.LogLevelWarn,
	"info":  kfake.LogLevelInfo,
	"debug": kfake.LogLevelDebug,
}

// parseFlags parses args and checks them.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := pflag.NewFlagSet("kfake-server", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	var level string
	fs.StringVar(&c.addr, "addr", "127.0.0.1:9092", "loopback `host:port` to listen on (port 0: any free port)")
	fs.StringVar(&c.dataDir, "data-dir", "", "`directory` to persist state to and reload it from (empty: memory only)")
	fs.BoolVar(&c.sync, "sync", false, "sync every produced batch to disk before acknowledging it (with --data-dir)")
	fs.IntVar(&c.partitions, "partitions", 0, "partitions of topics created without a count (0: kfake's default, 10)")
	fs.DurationVar(&c.minSessionTimeout, "group-min-session-timeout", 0, "lowest consumer group session timeout accepted (0: kfake's default, 6s)")
	fs.StringVar(&level, "log-level", "none", "kfake's log level on standard error: none, error, warn, info or debug")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	addr, err := loopbackAddr(c.addr)
	if err != nil {
		return config{}, fmt.Errorf("--addr: %w", err)
	}
	c.addr = addr
	if c.sync && c.dataDir == "" {
		return config{}, errors.New("--sync needs --data-dir")
	}
	if c.partitions < 0 {
		return config{}, fmt.Errorf("--partitions: %d is negative", c.partitions)
	}
	if c.minSessionTimeout < 0 {
		return config{}, fmt.Errorf("--group-min-session-timeout: %v is negative", c.minSessionTimeout)
	}
	var ok bool
	if c.logLevel, ok = logLevels[strings.ToLower(level)]; !ok {
		return config{}, fmt.Errorf("--log-level: unknown level %q (want none, error, warn, info or debug)", level)
	}
	return c, nil
}

// loopbackAddr checks that addr is host:port with a loopback IP literal
// (or "localhost", taken as 127.0.0.1 without a lookup) and returns it
// with the IP.
func loopbackAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", fmt.Errorf("%q: port %q is not a number from 0 to 65535", addr, port)
	}
	port = strconv.FormatUint(p, 10)
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("%q: kfake-server listens on loopback only; the host must be a loopback IP such as 127.0.0.1 or ::1", addr)
	}
	return net.JoinHostPort(ip.String(), port), nil
}

// run runs the broker until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "kfake-server:", err)
		return 2
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1 unless told otherwise: listen on
		// the address asked for instead.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, c.addr) }),
		kfake.WithLogger(kfake.BasicLogger(stderr, c.logLevel)),
	}
	if c.dataDir != "" {
		opts = append(opts, kfake.DataDir(c.dataDir))
	}
	if c.sync {
		opts = append(opts, kfake.SyncWrites())
	}
	if c.partitions > 0 {
		opts = append(opts, kfake.DefaultNumPartitions(c.partitions))
	}
	if c.minSessionTimeout > 0 {
		opts = append(opts, kfake.GroupMinSessionTimeout(c.minSessionTimeout))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		fmt.Fprintf(stderr, "kfake-server: start kfake on %s: %v\n", c.addr, err)
		return 1
	}
	fmt.Fprintf(stdout, "kfake listening on %s\n", cluster.ListenAddrs()[0])
	<-ctx.Done()
	cluster.Close() // with --data-dir, writes everything to it
	return 0
}
