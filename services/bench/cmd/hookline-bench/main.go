// Command hookline-bench runs Hookline's benchmark (see package bench and
// docs/benchmarks.md): the baseline, then each scenario on a fresh
// `hookline dev`, printing the tables and writing the results.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/bench"
)

func main() {
	cfg := bench.DefaultConfig()
	fs := pflag.NewFlagSet("hookline-bench", pflag.ExitOnError)
	cfg.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	rep, err := bench.Run(ctx, cfg, logger)
	if err == nil {
		err = rep.WriteText(os.Stdout)
	}
	if err == nil {
		err = rep.WriteFiles(cfg)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hookline-bench:", err)
		os.Exit(1)
	}
	if rep.Failed {
		os.Exit(2)
	}
}
