package multiprocess

import (
	"context"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// postgresStore creates a fresh database on the machine's PostgreSQL
// server (dropped when the test ends), applies the CockroachDB store's
// migrations to it and returns its URL.
func postgresStore(t *testing.T) string {
	t.Helper()
	return migratedDatabase(t, crdbtest.NewDatabase(t))
}

// migratedDatabase applies the CockroachDB store's migrations to the
// database at url and returns url.
func migratedDatabase(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := crdb.Migrate(ctx, url, servicetest.Logger()); err != nil {
		t.Fatalf("migrating the test database: %v", err)
	}
	return url
}
