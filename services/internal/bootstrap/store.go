package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb"
)

// This file must not import pkg/store/sqlite: the service binaries are
// built on this package, and they do not link SQLite (configdoc's
// TestServiceBinariesLinkNoDevBackends checks it). hookline migrate, which
// accepts a SQLite file too, opens it itself.

// StoreUsage is the help text of a service binary's --store flag.
const StoreUsage = "where the store is: postgres://USER@HOST:PORT/DB?sslmode=... (or postgresql://) " +
	"for CockroachDB or PostgreSQL; SQLite is for hookline dev only"

// StoreKind tells which store implementation a --store value names.
type StoreKind int

// Store kinds.
const (
	// StoreSQLite is a SQLite file: sqlite:PATH. Only ParseStoreLocation
	// returns it; the service binaries refuse it.
	StoreSQLite StoreKind = iota + 1
	// StorePostgres is CockroachDB (or PostgreSQL): a postgres:// or
	// postgresql:// URL.
	StorePostgres
)

// StoreLocation is a parsed --store value.
type StoreLocation struct {
	Kind StoreKind
	// Path is the SQLite file, for StoreSQLite.
	Path string
	// URL is the connection URL as given, for StorePostgres.
	URL string
}

// String returns the location for messages and logs, with any password
// in a URL replaced by "xxxxx".
func (l StoreLocation) String() string {
	if l.Kind == StoreSQLite {
		return "sqlite:" + l.Path
	}
	return redactURL(l.URL)
}

// ParseStore parses the --store value of a service binary: a postgres://
// or postgresql:// URL, for CockroachDB or PostgreSQL. A sqlite:PATH value
// is refused with an error that says so. Its errors name the flag and never
// show a password.
func ParseStore(v string) (StoreLocation, error) {
	switch {
	case isPostgresURL(v):
		return parsePostgres(v)
	case strings.HasPrefix(v, "sqlite:"):
		return StoreLocation{}, fmt.Errorf("--store %q: the service binaries need a postgres:// URL (CockroachDB or PostgreSQL); SQLite is for hookline dev", redactURL(v))
	}
	return StoreLocation{}, fmt.Errorf("--store %q: want postgres://USER@HOST:PORT/DATABASE (or postgresql://) for CockroachDB or PostgreSQL", redactURL(v))
}

// ParseStoreLocation parses a --store value that may also name a SQLite
// file, as hookline migrate's does: sqlite:PATH, or a postgres:// or
// postgresql:// URL. Its errors name the flag and never show a password.
func ParseStoreLocation(v string) (StoreLocation, error) {
	switch {
	case strings.HasPrefix(v, "sqlite:") && len(v) > len("sqlite:"):
		return StoreLocation{Kind: StoreSQLite, Path: strings.TrimPrefix(v, "sqlite:")}, nil
	case isPostgresURL(v):
		return parsePostgres(v)
	}
	return StoreLocation{}, fmt.Errorf("--store %q: want sqlite:PATH or postgres://USER@HOST:PORT/DATABASE", redactURL(v))
}

// isPostgresURL reports whether v has the scheme of a postgres store.
func isPostgresURL(v string) bool {
	return strings.HasPrefix(v, "postgres://") || strings.HasPrefix(v, "postgresql://")
}

// parsePostgres checks that the postgres URL v parses.
func parsePostgres(v string) (StoreLocation, error) {
	if _, err := url.Parse(v); err != nil {
		// A *url.Error repeats the whole URL, password included.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return StoreLocation{}, fmt.Errorf("--store: invalid URL: %w", err)
	}
	return StoreLocation{Kind: StorePostgres, URL: v}, nil
}

// redactURL hides the password of v if v parses as a URL with one.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil || u.User == nil {
		return v
	}
	return u.Redacted()
}

// StoreOptions tune OpenStore.
type StoreOptions struct {
	// MaxConns caps the connection pool; 0 means the pool's default.
	MaxConns int32
	// Migrate applies pending migrations at open; when false, opening
	// fails if the schema is behind.
	Migrate bool
	// Keyring seals and opens the signing secrets. Required.
	Keyring *keyring.Keyring
}

// OpenStore opens the postgres store at loc (CockroachDB or PostgreSQL,
// through pkg/store/crdb). It refuses any other kind of store.
func OpenStore(ctx context.Context, loc StoreLocation, opts StoreOptions, logger *slog.Logger) (store.Store, error) {
	if loc.Kind != StorePostgres {
		return nil, fmt.Errorf("store %v: the service binaries need a postgres:// URL (CockroachDB or PostgreSQL)", loc)
	}
	st, err := crdb.Open(ctx, loc.URL, crdb.Options{MaxConns: opts.MaxConns, Migrate: opts.Migrate, Keyring: opts.Keyring}, logger)
	if err != nil {
		return nil, err // not st: a nil *crdb.Store in a store.Store is not nil
	}
	return st, nil
}
