// Package configdoc describes the flags of every Hookline command that
// runs part of the platform, and renders docs/configuration.md from them.
//
// Each command's flag set is built the way the command itself builds it —
// bootstrap.FlagSet for the service binaries, the cobra command of
// `hookline dev` and `hookline migrate` — so the document, --help and the
// HOOKLINE_* variables cannot drift apart. `make docs` regenerates the
// document (go run ./internal/configdoc/gen); `make verify` and this
// package's tests fail when the committed copy is stale.
package configdoc

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/services/cli"
	"github.com/hookline/hookline/services/internal/bootstrap"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// Command is one documented command.
type Command struct {
	// Name is the command as typed: "hookline-delivery", "hookline dev".
	Name string
	// Summary says what the command runs, in a sentence or two of Markdown.
	Summary string
	// Service marks the service binaries, which share bootstrap's flags
	// (SharedFlags).
	Service bool
	// Flags returns a fresh flag set holding every flag of the command,
	// bound to fresh configuration, and a function that validates that
	// configuration as the command does at start-up (nil when the command
	// validates only while running).
	Flags func() (*pflag.FlagSet, func() error)
}

// Commands returns every documented command, in document order: the
// service binaries of the service table, then `hookline dev` and
// `hookline migrate`.
func Commands() []Command {
	var cmds []Command
	for _, svc := range servicetable.All() {
		cmds = append(cmds, service(svc))
	}
	return append(cmds,
		subcommand("dev",
			"All the services in one process, on an embedded NATS JetStream server and a SQLite database kept in `--data-dir`; for development (`make run`). It takes every service's own flags, with development defaults (loopback addresses, loopback receivers allowed), and of the shared connection flags only `--transport` and the `--kafka-*` flags: `--transport kafka` runs it on the Kafka brokers of `--kafka-brokers` instead of the embedded NATS server."),
		subcommand("migrate",
			"Applies the store's pending schema migrations and prints the versions applied. Run it before starting or upgrading the service binaries, which do not migrate a postgres store unless `--store-migrate` is set."),
	)
}

// Lookup returns the command named name.
func Lookup(name string) (Command, bool) {
	for _, c := range Commands() {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// service describes the binary of a service of the table, with a flag set
// built as its main builds it.
func service(svc servicetable.Service) Command {
	return Command{Name: svc.Binary(), Summary: svc.Summary, Service: true, Flags: func() (*pflag.FlagSet, func() error) {
		var boot bootstrap.Config
		inst := svc.New()
		fs := bootstrap.FlagSet(svc.Binary(), &boot, inst.Config)
		return fs, func() error { return errors.Join(boot.Validate(), inst.Config.Validate()) }
	}}
}

// subcommand describes `hookline <name>` by its cobra command's own flags.
func subcommand(name, summary string) Command {
	return Command{Name: "hookline " + name, Summary: summary, Flags: func() (*pflag.FlagSet, func() error) {
		cmd, _, err := cli.NewRoot().Find([]string{name})
		if err != nil || cmd.Name() != name {
			panic(fmt.Sprintf("configdoc: hookline has no %q command", name))
		}
		// LocalFlags leaves out the flags inherited from the root command
		// (--server, --token, ...), which the command does not use.
		return cmd.LocalFlags(), nil
	}}
}

// SharedFlags returns the flags every service binary has: bootstrap's.
func SharedFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("shared", pflag.ContinueOnError)
	new(bootstrap.Config).RegisterFlags(fs)
	config.AnnotateUsage(fs)
	return fs
}

// Description returns a flag's usage without the "[$HOOKLINE_...]"
// annotation, which the document shows in a column of its own.
func Description(f *pflag.Flag) string {
	return strings.TrimSuffix(f.Usage, " [$"+config.EnvName(f.Name)+"]")
}
