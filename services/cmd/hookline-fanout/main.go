// Command hookline-fanout runs the fanout service. Flags and HOOKLINE_*
// environment variables are listed by --help.
package main

import (
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/fanout"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

func main() {
	fs := pflag.NewFlagSet("hookline-fanout", pflag.ExitOnError)
	var boot bootstrap.Config
	var cfg fanout.Config
	boot.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	bootstrap.Main("hookline-fanout", fs, &boot, cfg.Validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return fanout.New(cfg, d)
	})
}
