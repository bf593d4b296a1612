// Command hookline-delivery runs the delivery service. --help and
// docs/configuration.md list its flags and their HOOKLINE_* environment
// variables, all taken from the service table (services/internal/servicetable).
package main

import (
	"github.com/hookline/hookline/services/internal/bootstrap"
	"github.com/hookline/hookline/services/internal/servicetable"
)

func main() { bootstrap.Main(servicetable.MustLookup("delivery")) }
