package bench

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/hookline/hookline/services/internal/childproc"
)

// Stacks the harness can run Hookline as.
const (
	// StackDev is `hookline dev`: the four services in one process on an
	// embedded NATS server (on Kafka: a kfake-server process) and SQLite.
	StackDev = "dev"
	// StackMultiprocess is the four service binaries as separate
	// processes on nats-server (on Kafka: kfake-server) and PostgreSQL.
	StackMultiprocess = "multiprocess"
)

// system is the Hookline under test in one scenario.
type system interface {
	// grpcAddress is the address of the ingest and admin gRPC API.
	grpcAddress() string
	// alive returns nil while every process runs, else what exited (with
	// the end of its log).
	alive() error
	// usage is the CPU time and memory of Hookline's processes, summed.
	usage() (ProcUsage, error)
	// goroutines counts Hookline's goroutines, in total and per entry
	// function; -1 without error when no profiles are served.
	goroutines(ctx context.Context) (int, map[string]int, error)
	// brokerProcess is the broker's own process (nats-server or
	// kfake-server), whose usage also counts in usage; nil when the
	// broker is embedded in Hookline.
	brokerProcess() *child
	// stop stops every process (and drops what the scenario created).
	stop() error
}

// startSystem starts Hookline as cfg.Stack says, its data and logs in dir.
func startSystem(ctx context.Context, cfg Config, dir string, pprof bool, logger *slog.Logger) (system, error) {
	switch cfg.Stack {
	case StackMultiprocess:
		return startMultiprocess(ctx, cfg, dir, logger)
	case StackDev, "":
		if cfg.Transport == TransportKafka {
			return startDevOnKafka(ctx, cfg, dir, pprof)
		}
		p, err := startDev(ctx, cfg.Hookline, dir, pprof, cfg.DevLogLevel, cfg.DevArgs)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
	return nil, fmt.Errorf("unknown stack %q", cfg.Stack)
}

// grpcAddress implements system.
func (p *devProcess) grpcAddress() string { return p.grpcAddr }

// brokerProcess implements system: hookline dev embeds its NATS server.
func (p *devProcess) brokerProcess() *child { return nil }

// alive implements system.
func (p *devProcess) alive() error {
	if p.running() {
		return nil
	}
	return fmt.Errorf("hookline dev exited (%v); end of %s:\n%s", p.err, filepath.Base(p.logPath), childproc.Tail(p.logPath, 20))
}
