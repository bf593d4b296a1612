// Package config binds command-line flags to HOOKLINE_* environment
// variables, so every service setting can be given either way.
//
// A flag named "delivery-concurrency" is read from the environment variable
// HOOKLINE_DELIVERY_CONCURRENCY. A flag given on the command line wins over
// the environment; the environment wins over the flag's default.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix starts every environment variable Hookline reads.
const EnvPrefix = "HOOKLINE_"

// EnvName returns the environment variable that sets flag name.
func EnvName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// ApplyEnv sets every flag of fs that was not given on the command line
// from its environment variable, if that is set. lookup is os.LookupEnv
// when nil. Every bad value is reported, joined, naming the variable.
func ApplyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed {
			return
		}
		name := EnvName(f.Name)
		v, ok := lookup(name)
		if !ok {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
		}
	})
	return errors.Join(errs...)
}

// AnnotateUsage appends "[$HOOKLINE_...]" to every flag's usage text, so
// --help documents the environment variables.
func AnnotateUsage(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		suffix := " [$" + EnvName(f.Name) + "]"
		if !strings.HasSuffix(f.Usage, suffix) {
			f.Usage += suffix
		}
	})
}
