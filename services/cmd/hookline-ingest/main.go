// Command hookline-ingest runs the ingest service. --help and
// docs/configuration.md list its flags and their HOOKLINE_* environment
// variables; services/internal/configdoc builds the same flag set for the
// docs, so a flag added here must be added there too.
package main

import (
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

const name = "hookline-ingest"

func main() {
	var boot bootstrap.Config
	var cfg ingest.Config
	fs := bootstrap.FlagSet(name, &boot, cfg.RegisterFlags)
	// A closure, so that the parsed cfg is validated, not a copy taken now.
	validate := func() error { return cfg.Validate() }
	bootstrap.Main(name, fs, &boot, validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return ingest.New(cfg, ingest.Deps{Store: d.Store, Transport: d.Transport, Logger: d.Logger})
	})
}
