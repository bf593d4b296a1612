// Command hookline-scheduler runs the scheduler service. --help and
// docs/configuration.md list its flags and their HOOKLINE_* environment
// variables; services/internal/configdoc builds the same flag set for the
// docs, so a flag added here must be added there too.
package main

import (
	"github.com/hookline/hookline/services/internal/bootstrap"
	"github.com/hookline/hookline/services/scheduler"
)

const name = "hookline-scheduler"

func main() {
	var boot bootstrap.Config
	var cfg scheduler.Config
	fs := bootstrap.FlagSet(name, &boot, cfg.RegisterFlags)
	// A closure, so that the parsed cfg is validated, not a copy taken now.
	validate := func() error { return cfg.Validate() }
	bootstrap.Main(name, fs, &boot, validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return scheduler.New(cfg, d)
	})
}
