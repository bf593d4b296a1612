//go:build race

package ingest

// raceEnabled says the race detector is on: it multiplies the process's
// memory (shadow memory), so RSS bounds are not checked.
const raceEnabled = true
