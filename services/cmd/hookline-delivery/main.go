// Command hookline-delivery runs the delivery service. --help and
// docs/configuration.md list its flags and their HOOKLINE_* environment
// variables; services/internal/configdoc builds the same flag set for the
// docs, so a flag added here must be added there too.
package main

import (
	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

const name = "hookline-delivery"

func main() {
	var boot bootstrap.Config
	var cfg delivery.Config
	fs := bootstrap.FlagSet(name, &boot, cfg.RegisterFlags)
	// A closure, so that the parsed cfg is validated, not a copy taken now.
	validate := func() error { return cfg.Validate() }
	bootstrap.Main(name, fs, &boot, validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return delivery.New(cfg, d)
	})
}
