package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/sqlite"
)

// StoreUsage is the help text of a --store flag.
const StoreUsage = "where the store is: postgres://USER@HOST:PORT/DB?sslmode=... (or postgresql://) for CockroachDB, " +
	"or sqlite:PATH for a local SQLite file (development; migrates on open)"

// StoreKind tells which store implementation a --store value names.
type StoreKind int

// Store kinds.
const (
	// StoreSQLite is a SQLite file: sqlite:PATH.
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

// ParseStore parses a --store value: sqlite:PATH, or a postgres:// or
// postgresql:// URL. Its errors name the flag and never show a password.
func ParseStore(v string) (StoreLocation, error) {
	switch {
	case strings.HasPrefix(v, "sqlite:") && len(v) > len("sqlite:"):
		return StoreLocation{Kind: StoreSQLite, Path: strings.TrimPrefix(v, "sqlite:")}, nil
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
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
	return StoreLocation{}, fmt.Errorf("--store %q: want sqlite:PATH or postgres://USER@HOST:PORT/DATABASE", redactURL(v))
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
	// MaxConns caps a postgres store's connection pool; 0 means the
	// pool's default. SQLite ignores it.
	MaxConns int32
	// Migrate applies a postgres store's pending migrations at open; when
	// false, opening fails if the schema is behind. SQLite always migrates.
	Migrate bool
}

// OpenStore opens the store at loc.
func OpenStore(ctx context.Context, loc StoreLocation, opts StoreOptions, logger *slog.Logger) (store.Store, error) {
	switch loc.Kind {
	case StoreSQLite:
		st, err := sqlite.Open(ctx, loc.Path, logger)
		if err != nil {
			return nil, err // not st: a nil *sqlite.Store in a store.Store is not nil
		}
		return st, nil
	case StorePostgres:
		st, err := crdb.Open(ctx, loc.URL, crdb.Options{MaxConns: opts.MaxConns, Migrate: opts.Migrate}, logger)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("store %v: unknown kind %d", loc, loc.Kind)
}
