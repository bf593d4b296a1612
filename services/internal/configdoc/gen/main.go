// Command gen writes docs/configuration.md from the flag sets of the
// Hookline binaries (see package configdoc). `make docs` runs it:
//
//	go run ./internal/configdoc/gen -o ../docs/configuration.md
//
// With -o - (the default) it writes to standard output.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hookline/hookline/services/internal/configdoc"
)

func main() {
	out := flag.String("o", "-", "file to write, or - for standard output")
	flag.Parse()
	doc := configdoc.Markdown()
	var err error
	if *out == "-" {
		_, err = os.Stdout.Write(doc)
	} else {
		err = os.WriteFile(*out, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc gen:", err)
		os.Exit(1)
	}
}
