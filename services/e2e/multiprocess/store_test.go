package multiprocess

import "testing"

// storeURL returns the --store value shared by every service process: a
// fresh database on the machine's PostgreSQL server, migrated once before
// any service starts — the way a deployment migrates before it rolls out
// (postgresStore). The service binaries take no other store: they do not
// link SQLite.
func storeURL(t *testing.T) string {
	t.Helper()
	return postgresStore(t)
}
