// Command hookline-ingest runs the ingest service. Flags and HOOKLINE_*
// environment variables are listed by --help.
package main

import (
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

func main() {
	fs := pflag.NewFlagSet("hookline-ingest", pflag.ExitOnError)
	var boot bootstrap.Config
	var cfg ingest.Config
	boot.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	bootstrap.Main("hookline-ingest", fs, &boot, cfg.Validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return ingest.New(cfg, ingest.Deps{Store: d.Store, Transport: d.Transport, Logger: d.Logger})
	})
}
