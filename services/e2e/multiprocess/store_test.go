package multiprocess

import (
	"os"
	"path/filepath"
	"testing"
)

// storeEnv selects the store every service runs on: "postgres" or
// "sqlite"; defaultStore when unset.
const (
	storeEnv     = "HOOKLINE_TEST_STORE"
	defaultStore = "postgres"
)

// storeURL returns the --store value shared by every service process:
//
//   - postgres: a fresh database on the machine's PostgreSQL server,
//     migrated once before any service starts — the way a deployment
//     migrates before it rolls out (postgresStore);
//   - sqlite: one SQLite file in WAL mode, which several processes can
//     share (each service migrates it at start).
func storeURL(t *testing.T) string {
	t.Helper()
	kind := os.Getenv(storeEnv)
	if kind == "" {
		kind = defaultStore
	}
	switch kind {
	case "postgres":
		return postgresStore(t)
	case "sqlite":
		return "sqlite:" + filepath.Join(t.TempDir(), "hookline.db")
	default:
		t.Fatalf("%s=%q: want postgres or sqlite", storeEnv, kind)
		return ""
	}
}
