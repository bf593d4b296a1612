package configdoc

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/config"
)

// Path is where the generated document lives, relative to the repository
// root.
const Path = "docs/configuration.md"

const intro = `# Configuration

<!-- Generated from the binaries' flag sets by ` + "`make docs`" + ` (services/internal/configdoc). Do not edit. -->

Every Hookline binary is configured with command-line flags, and every flag can
also be set with an environment variable: the flag's name in upper case, dashes
turned into underscores, after ` + "`HOOKLINE_`" + ` — ` + "`--delivery-ack-wait`" + ` is
` + "`HOOKLINE_DELIVERY_ACK_WAIT`" + `. ` + "`--help`" + ` lists the same flags, each with its variable.

- **Precedence**: a flag given on the command line wins over its environment
  variable, which wins over the default.
- **Durations** use Go syntax: ` + "`500ms`, `30s`, `2m`, `1h30m`" + `; the largest unit is the
  hour (` + "`120h`" + ` for five days).
- **Lists** are comma-separated, as a flag or as a variable: ` + "`127.0.0.0/8,::1/128`" + `.
- **Booleans** are ` + "`true`" + ` or ` + "`false`" + `; a bare ` + "`--store-migrate`" + ` means true.
- **Errors**: a service checks its whole configuration before it connects to
  anything and reports every invalid setting at once, each naming its flag (or
  its variable, for a value that does not parse), then exits with status 1.

Examples for a deployment are in [deploy/env](../deploy/env) and
[deploy/compose.yaml](../deploy/compose.yaml).

## The store

` + "`--store`" + ` (` + "`HOOKLINE_STORE`" + `) names the store, required by every service binary and by
` + "`hookline migrate`" + `:

- ` + "`postgres://USER@HOST:PORT/DATABASE?sslmode=...`" + ` (or ` + "`postgresql://`" + `): CockroachDB — or
  PostgreSQL — the production store, and the only one the service binaries take.
  ` + "`--store-max-conns`" + ` sizes each process's connection pool.
- ` + "`sqlite:PATH`" + `: a SQLite file, the store of ` + "`hookline dev`" + ` (which keeps it in
  ` + "`--data-dir`" + `); ` + "`hookline migrate`" + ` accepts it too. The service binaries refuse it
  and do not link SQLite at all.

Schema migrations of a postgres store are applied by ` + "`hookline migrate`" + `, run once
before the services start or are upgraded (a Kubernetes Job, the ` + "`migrate`" + ` service of
deploy/compose.yaml). The services do not migrate by default and refuse to start
on an outdated schema; ` + "`--store-migrate`" + ` makes them apply pending migrations at
start instead. A SQLite store applies its migrations whenever it is opened.
`

// Markdown renders docs/configuration.md.
func Markdown() []byte {
	var b bytes.Buffer
	b.WriteString(intro)
	cmds := Commands()

	b.WriteString("\n## Contents\n\n")
	b.WriteString("- [Flags shared by every service binary](#flags-shared-by-every-service-binary)\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "- [%s](#%s)\n", c.Name, anchor(c.Name))
	}

	shared := SharedFlags()
	b.WriteString("\n## Flags shared by every service binary\n\n")
	var bins []string
	for _, c := range cmds {
		if c.Service {
			bins = append(bins, c.Name)
		}
	}
	fmt.Fprintf(&b, "%s all take these.\n\n", strings.Join(bins, ", "))
	table(&b, shared, nil)

	for _, c := range cmds {
		fs, _ := c.Flags()
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", c.Name, c.Summary)
		if c.Service {
			fmt.Fprintf(&b, "Besides the [shared flags](#flags-shared-by-every-service-binary):\n\n")
			table(&b, fs, shared)
		} else {
			table(&b, fs, nil)
		}
	}
	return b.Bytes()
}

// table writes a Markdown table of fs's visible flags, leaving out those
// also in skip (which may be nil).
func table(b *bytes.Buffer, fs *pflag.FlagSet, skip *pflag.FlagSet) {
	b.WriteString("| Flag | Environment | Default | Description |\n")
	b.WriteString("|---|---|---|---|\n")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" || (skip != nil && skip.Lookup(f.Name) != nil) {
			return
		}
		fmt.Fprintf(b, "| %s | `%s` | %s | %s |\n", flagCell(f), config.EnvName(f.Name), defaultCell(f), cell(Description(f)))
	})
}

// flagCell is "`--name` type", with the shorthand if there is one.
func flagCell(f *pflag.Flag) string {
	s := "`--" + f.Name + "`"
	if f.Shorthand != "" {
		s = "`-" + f.Shorthand + "`, " + s
	}
	if typ, _ := pflag.UnquoteUsage(f); typ != "" {
		s += " " + typ
	}
	return s
}

// defaultCell shows a flag's default as it would be typed.
func defaultCell(f *pflag.Flag) string {
	v := f.DefValue
	if strings.HasSuffix(f.Value.Type(), "Slice") || strings.HasSuffix(f.Value.Type(), "Array") {
		v = strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	}
	if v == "" {
		return "*(empty)*"
	}
	return "`" + v + "`"
}

// cell escapes s for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// anchor is the GitHub heading anchor of a heading made of name.
func anchor(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), " ", "-")
}
