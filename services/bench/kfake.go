package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hookline/hookline/services/internal/childproc"
)

// KfakeLabel says what every figure of a run on TransportKafka was
// measured on: kfake, not Kafka.
const KfakeLabel = "kfake (" + kfakeIs + ")"

// kfakeIs says what kfake is.
const kfakeIs = "a Kafka-protocol test broker in one process, not Kafka"

// kfakeBinary is the name of the kfake-server executable, built from
// github.com/hookline/hookline/pkg/transport/kafka/kafkatest/kfake-server.
const kfakeBinary = "kfake-server"

// kfakeReady is what kfake-server prints to standard output, followed by
// the address it bound, once it accepts connections.
const kfakeReady = "kfake listening on "

// kfakeStopGrace bounds kfake-server's stop: on SIGTERM it writes its whole
// state to its data directory before exiting, which takes longer than a
// service's stop after a large backlog.
const kfakeStopGrace = 60 * time.Second

// kfakeServerPath returns the kfake-server executable of cfg: KfakeServer,
// or kfake-server beside Hookline (as the multiprocess stack finds the
// service binaries), having checked that it exists.
func (c Config) kfakeServerPath() (string, error) {
	bin := c.KfakeServer
	if bin == "" {
		bin = filepath.Join(filepath.Dir(c.Hookline), kfakeBinary)
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("kfake-server %s: %w (make bench-kafka builds it into bin/; or go build -o bin/ github.com/hookline/hookline/pkg/transport/kafka/kafkatest/kfake-server)", bin, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("kfake-server: %w", err)
	}
	return abs, nil
}

// startKfake starts kfake-server bin on a free loopback port (chosen by
// kfake itself, port 0) with its data in dir/kafka and its output in
// dir/kfake-server.log, and waits until it prints the address it
// listens on, which it returns.
func startKfake(ctx context.Context, bin, dir string) (*child, string, error) {
	c, err := startChild(kfakeBinary, dir, bin, "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "kafka"), "--log-level", "error")
	if err != nil {
		return nil, "", err
	}
	c.grace = kfakeStopGrace
	addr, err := c.waitKfakeAddr(ctx)
	if err != nil {
		_ = c.stop()
		return nil, "", err
	}
	return c, addr, nil
}

// waitKfakeAddr polls c's log for kfake-server's ready line, up to
// readyTimeout, and returns the address in it.
func (c *child) waitKfakeAddr(ctx context.Context) (string, error) {
	deadline := time.Now().Add(readyTimeout)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		if addr, ok := kfakeAddrIn(c.logPath); ok {
			return addr, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("%s: no %q line after %v; log:\n%s", c.name, strings.TrimSpace(kfakeReady), readyTimeout, childproc.Tail(c.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for readiness: %w", c.name, ctx.Err())
		case <-c.exited:
			if addr, ok := kfakeAddrIn(c.logPath); ok {
				return "", fmt.Errorf("%s exited (%v) right after listening on %s; log:\n%s", c.name, c.err, addr, childproc.Tail(c.logPath, 20))
			}
			return "", fmt.Errorf("%s exited before it was ready (%v); log:\n%s", c.name, c.err, childproc.Tail(c.logPath, 20))
		case <-t.C:
		}
	}
}

// kfakeAddrIn returns the address of the first ready line in the log at
// path.
func kfakeAddrIn(path string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), kfakeReady); ok && addr != "" {
			return addr, true
		}
	}
	return "", false
}

// kafkaFlags are the flags that point `hookline dev` or a service binary
// at the kfake-server at addr.
func kafkaFlags(addr string) []string {
	return []string{"--transport", TransportKafka, "--kafka-brokers", addr}
}

// devOnKafka is `hookline dev --transport kafka` with the kfake-server
// process it runs on. kfake-server's CPU time and memory count as
// Hookline's, as nats-server's do on the multiprocess stack (and the
// embedded NATS server's do, in-process, on the dev stack).
type devOnKafka struct {
	*devProcess
	kfake *child
}

// startDevOnKafka starts kfake-server, then `hookline dev` on it (the
// extra arguments last, so that they win over the Kafka flags).
func startDevOnKafka(ctx context.Context, cfg Config, dir string, pprof bool) (_ *devOnKafka, err error) {
	bin, err := cfg.kfakeServerPath()
	if err != nil {
		return nil, err
	}
	k, addr, err := startKfake(ctx, bin, dir)
	if err != nil {
		return nil, err
	}
	p, err := startDev(ctx, cfg.Hookline, dir, pprof, cfg.DevLogLevel, append(kafkaFlags(addr), cfg.DevArgs...))
	if err != nil {
		if serr := k.stop(); serr != nil {
			err = fmt.Errorf("%w (and stopping kfake-server: %v)", err, serr)
		}
		return nil, err
	}
	return &devOnKafka{devProcess: p, kfake: k}, nil
}

// alive implements system: hookline dev and kfake-server.
func (d *devOnKafka) alive() error {
	if !d.kfake.running() {
		return fmt.Errorf("kfake-server exited (%v); end of its log:\n%s", d.kfake.err, childproc.Tail(d.kfake.logPath, 20))
	}
	return d.devProcess.alive()
}

// usage implements system: hookline dev's and kfake-server's, summed
// (peak RSS is the sum of each process's peak, an upper bound).
func (d *devOnKafka) usage() (ProcUsage, error) {
	u, err := d.devProcess.usage()
	if err != nil {
		return u, err
	}
	k, err := readProcUsage(d.kfake.cmd.Process.Pid)
	if err != nil {
		return u, fmt.Errorf("kfake-server: %w", err)
	}
	return u.plus(k), nil
}

// brokerProcess implements system.
func (d *devOnKafka) brokerProcess() *child { return d.kfake }

// stop implements system: hookline dev first (it commits its offsets and
// leaves its groups on the way out), then kfake-server.
func (d *devOnKafka) stop() error {
	return errors.Join(d.devProcess.stop(), d.kfake.stop())
}
