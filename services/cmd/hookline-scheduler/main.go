// Command hookline-scheduler runs the scheduler service. Flags and HOOKLINE_*
// environment variables are listed by --help.
package main

import (
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/internal/bootstrap"
	"github.com/hookline/hookline/services/scheduler"
)

func main() {
	fs := pflag.NewFlagSet("hookline-scheduler", pflag.ExitOnError)
	var boot bootstrap.Config
	var cfg scheduler.Config
	boot.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	bootstrap.Main("hookline-scheduler", fs, &boot, cfg.Validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return scheduler.New(cfg, d)
	})
}
