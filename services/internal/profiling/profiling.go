// Package profiling serves Go's runtime profiles (net/http/pprof) on a
// handler of its own, never on http.DefaultServeMux, so a binary exposes
// them only where it mounts them: on the ops address with --pprof, or on
// `hookline dev --pprof-addr`. Profiles reveal internals and cost CPU
// while taken, so every binary keeps them off by default.
package profiling

import (
	"net/http"
	"net/http/pprof"
)

// Prefix is the path under which Register mounts the profiles.
const Prefix = "/debug/pprof/"

// Register mounts the profile endpoints under Prefix on mux: the index,
// every named profile (goroutine, heap, allocs, block, mutex,
// threadcreate) with ?debug=1 for text, a CPU profile (?seconds=N), an
// execution trace, the command line and symbol lookup.
func Register(mux *http.ServeMux) {
	mux.HandleFunc(Prefix, pprof.Index) // named profiles too
	mux.HandleFunc(Prefix+"cmdline", pprof.Cmdline)
	mux.HandleFunc(Prefix+"profile", pprof.Profile)
	mux.HandleFunc(Prefix+"symbol", pprof.Symbol)
	mux.HandleFunc(Prefix+"trace", pprof.Trace)
}

// Handler returns a handler serving only the profiles.
func Handler() http.Handler {
	mux := http.NewServeMux()
	Register(mux)
	return mux
}
