// Package crdbtest gives tests a fresh PostgreSQL (or CockroachDB)
// database on the test server, so that the crdb store's tests, and any
// other package's, run isolated from each other and in parallel.
//
// The server is the one HOOKLINE_TEST_POSTGRES_URL names, by default the
// machine's PostgreSQL at DefaultServerURL. Tests do not skip when it is
// unreachable: they fail, saying how to start it, because CI must run them.
package crdbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvServerURL names the environment variable holding the test server's
// URL.
const EnvServerURL = "HOOKLINE_TEST_POSTGRES_URL"

// DefaultServerURL is the test server used when EnvServerURL is unset:
// PostgreSQL on this machine, trust authentication.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DatabasePrefix starts the name of every database NewDatabase creates.
const DatabasePrefix = "hookline_test_"

// startHint tells how to start the machine's PostgreSQL server.
const startHint = "start PostgreSQL with:\n    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n" +
	"or point " + EnvServerURL + " at a reachable PostgreSQL or CockroachDB server"

// ServerURL returns the test server's URL: EnvServerURL's value, or
// DefaultServerURL.
func ServerURL() string {
	if u := os.Getenv(EnvServerURL); u != "" {
		return u
	}
	return DefaultServerURL
}

// NewDatabase creates a fresh, empty database named DatabasePrefix plus
// random hex on the test server, returns its URL (the server URL with the
// database name in place of its own) and drops it when tb ends
// (DROP DATABASE ... WITH (FORCE) on PostgreSQL, which also ends
// connections left open; CASCADE on CockroachDB). It fails tb, telling how
// to start PostgreSQL, when the server cannot be reached.
func NewDatabase(tb testing.TB) string {
	tb.Helper()
	server := ServerURL()
	u, err := url.Parse(server)
	if err != nil {
		tb.Fatalf("crdbtest: %s: bad url: %v", EnvServerURL, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, server)
	if err != nil {
		tb.Fatalf("crdbtest: cannot reach the test database server %s: %v\n%s", u.Redacted(), err, startHint)
	}
	defer conn.Close(context.Background())
	var version string
	if err := conn.QueryRow(ctx, `SELECT version()`).Scan(&version); err != nil {
		tb.Fatalf("crdbtest: query the test database server %s: %v", u.Redacted(), err)
	}
	cockroach := strings.Contains(version, "CockroachDB")

	b := make([]byte, 8)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	name := DatabasePrefix + hex.EncodeToString(b)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+ident); err != nil {
		tb.Fatalf("crdbtest: create database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, server)
		if err != nil {
			tb.Errorf("crdbtest: drop database %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		drop := `DROP DATABASE IF EXISTS ` + ident + ` WITH (FORCE)`
		if cockroach {
			drop = `DROP DATABASE IF EXISTS ` + ident + ` CASCADE`
		}
		if _, err := conn.Exec(ctx, drop); err != nil {
			tb.Errorf("crdbtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}
