package crdbcompat

import (
	"strings"
	"testing"
)

// TestParseRejectsPostgresOnly is the negative control of the whole
// package: statements PostgreSQL accepts and CockroachDB's parser rejects
// must come back as errors, so a helper that lets everything through would
// fail here rather than turn the compatibility tests into no-ops.
func TestParseRejectsPostgresOnly(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		// A tempting way to take a migration lease on PostgreSQL.
		`LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE`,
		`CREATE TABLE t (id SERIAL8) INHERITS (x)`,
		`CREATE RULE r AS ON INSERT TO t DO INSTEAD NOTHING`,
		`CREATE INDEX attempts_started ON attempts USING brin (started_at)`,
		`ALTER TABLE retries ADD CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)`,
		`VACUUM ANALYZE deliveries`,
		// PERFORM is not implemented by CockroachDB's PL/pgSQL.
		`DO $$ BEGIN PERFORM 1; END $$`,
		`SELEC 1`,
	} {
		err := ParseStatement(sql)
		if err == nil {
			t.Errorf("ParseStatement(%q) = nil, want a CockroachDB syntax error", sql)
			continue
		}
		t.Logf("%s\n-> %v", sql, firstLine(err))
	}
}

// TestParseAccepts is the positive control: PostgreSQL-and-CockroachDB
// statements of the kinds the store sends, and CockroachDB-only DDL.
func TestParseAccepts(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		`CREATE TABLE IF NOT EXISTS subscriptions (
			id TEXT PRIMARY KEY,
			tenant TEXT NOT NULL,
			event_types TEXT[] NOT NULL,
			headers JSONB NOT NULL DEFAULT '{}'::JSONB,
			created_at TIMESTAMPTZ NOT NULL
		)`,
		`CREATE INDEX IF NOT EXISTS deliveries_tenant_created ON deliveries (tenant, created_at DESC, id DESC)`,
		`CREATE TABLE events (id STRING NOT NULL, received_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id) USING HASH)`,
		`CREATE INDEX deliveries_created ON deliveries (created_at) USING HASH WITH (bucket_count = 8)`,
		`INSERT INTO events (id, tenant) SELECT * FROM unnest($1::TEXT[], $2::TEXT[]) ON CONFLICT (id) DO NOTHING`,
		`UPDATE scheduled_retries SET lease_until = $2 WHERE delivery_id = ANY($1) RETURNING delivery_id`,
		`SELECT delivery_id FROM scheduled_retries WHERE due_at <= $1 AND (lease_until IS NULL OR lease_until < $1)
			ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED`,
		`begin isolation level serializable read write`,
		`SAVEPOINT cockroach_restart`,
		`commit`,
		// What pgx sends for CopyFrom.
		`copy "events" ( "id", "tenant" ) from stdin binary;`,
		`DO $$ BEGIN RAISE NOTICE 'ok'; END $$`,
	} {
		if err := ParseStatement(sql); err != nil {
			t.Errorf("ParseStatement(%q): %v", sql, err)
		}
	}
}

func TestParseStatementWantsOne(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{``, `-- just a comment`, `SELECT 1; SELECT 2`} {
		if err := ParseStatement(sql); err == nil {
			t.Errorf("ParseStatement(%q) = nil, want an error", sql)
		}
	}
	stmts, err := ParseAll(`SELECT 1; SELECT 2;`)
	if err != nil || len(stmts) != 2 {
		t.Errorf("ParseAll of two statements = %d, %v; want 2, nil", len(stmts), err)
	}
}

func TestParseErrorShowsPosition(t *testing.T) {
	t.Parallel()
	err := ParseStatement(`CREATE TABLE t (id INT) INHERITS (x)`)
	if err == nil || !strings.Contains(err.Error(), "syntax error") || !strings.Contains(err.Error(), "^") {
		t.Fatalf("error = %v; want the syntax error with the caret detail", err)
	}
}

func TestHashSharded(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]bool{
		`CREATE INDEX i ON t (a) USING HASH`:                           true,
		`CREATE INDEX i ON t (a) USING HASH WITH (bucket_count = 8)`:   true,
		`CREATE UNIQUE INDEX i ON t (a) USING HASH`:                    true,
		`CREATE INDEX i ON t (a)`:                                      false,
		`CREATE TABLE t (a INT PRIMARY KEY USING HASH)`:                true,
		`CREATE TABLE t (a INT, PRIMARY KEY (a) USING HASH)`:           true,
		`CREATE TABLE t (a INT, INDEX (a) USING HASH)`:                 true,
		`CREATE TABLE t (a INT, UNIQUE INDEX (a) USING HASH)`:          true,
		`CREATE TABLE t (a INT PRIMARY KEY, b INT, INDEX (b))`:         false,
		`ALTER TABLE t ALTER PRIMARY KEY USING COLUMNS (a) USING HASH`: true,
		`ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)`:                    false,
		`ALTER TABLE t ADD COLUMN b INT`:                               false,
		`SELECT 'CREATE INDEX i ON t (a) USING HASH'`:                  false,
	} {
		stmt, err := ParseOne(sql)
		if err != nil {
			t.Errorf("ParseOne(%q): %v", sql, err)
			continue
		}
		if got := HashSharded(stmt); got != want {
			t.Errorf("HashSharded(%q) = %v, want %v", sql, got, want)
		}
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestModifiesTableTwice: statements that modify one table twice, which
// CockroachDB refuses without a cluster setting, are found wherever the
// modifications sit; statements that modify each table once, or read the
// table they modify, are not flagged.
func TestModifiesTableTwice(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]string{
		`WITH a AS (INSERT INTO t (x) VALUES (1) RETURNING x) DELETE FROM t WHERE x = 2`:                                                       "t",
		`WITH a AS (DELETE FROM t RETURNING x) INSERT INTO t SELECT x FROM a ON CONFLICT (x) DO UPDATE SET x = excluded.x`:                     "t",
		`WITH a AS (UPDATE public.t SET x = 1 RETURNING x), b AS (DELETE FROM t RETURNING x) SELECT (SELECT count(*) FROM a), 1`:               "t",
		`WITH a AS (WITH b AS (DELETE FROM t RETURNING x) SELECT x FROM b) INSERT INTO t SELECT x FROM a`:                                      "t",
		`SELECT * FROM [INSERT INTO t VALUES (1) RETURNING x] AS a, [DELETE FROM t RETURNING x] AS b`:                                          "t",
		`UPSERT INTO t (x) SELECT x FROM [DELETE FROM t RETURNING x]`:                                                                          "t",
		`WITH u AS (UPDATE deliveries SET status = 'dead' RETURNING id) DELETE FROM scheduled_retries WHERE delivery_id IN (SELECT id FROM u)`: "",
		`INSERT INTO t SELECT * FROM t ON CONFLICT (x) DO NOTHING`:                                                                             "",
		`DELETE FROM t WHERE (x, y) IN (SELECT r.x, r.y FROM t AS r JOIN unnest($1::INT8[]) AS f (x) ON f.x = r.x)`:                            "",
		`SELECT 1`: "",
	} {
		stmt, err := ParseOne(sql)
		if err != nil {
			t.Errorf("ParseOne(%q): %v", sql, err)
			continue
		}
		if got := ModifiesTableTwice(stmt); got != want {
			t.Errorf("ModifiesTableTwice(%q) = %q, want %q (modified: %q)", sql, got, want, ModifiedTables(stmt))
		}
	}
}
