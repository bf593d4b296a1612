// Command hookline-delivery runs the delivery service. Flags and HOOKLINE_*
// environment variables are listed by --help.
package main

import (
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/services/delivery"
	"github.com/hookline/hookline/services/internal/bootstrap"
)

func main() {
	fs := pflag.NewFlagSet("hookline-delivery", pflag.ExitOnError)
	var boot bootstrap.Config
	var cfg delivery.Config
	boot.RegisterFlags(fs)
	cfg.RegisterFlags(fs)
	bootstrap.Main("hookline-delivery", fs, &boot, cfg.Validate, func(d bootstrap.Deps) (bootstrap.Service, error) {
		return delivery.New(cfg, d)
	})
}
