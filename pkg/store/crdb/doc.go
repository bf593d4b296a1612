// Package crdb implements store.Store on CockroachDB over the PostgreSQL
// wire protocol, with a github.com/jackc/pgx/v5 connection pool. The same
// code runs against PostgreSQL, which the tests use in CockroachDB's place
// (crdbtest gives each test a fresh database). It is the production store;
// it passes the same conformance suite (storetest) as the SQLite store and
// keeps its conventions, so both behave identically.
//
// # Dialects
//
// Open detects the server with `SELECT version()`: DialectCockroach when
// it mentions CockroachDB, DialectPostgres otherwise. At run time both
// dialects get exactly the same statements, all within what CockroachDB
// accepts: no advisory locks, no PL/pgSQL, no sequences, no foreign keys,
// no PostgreSQL-only functions. Batches travel as parallel arrays expanded
// with multi-argument unnest(...); upserts use INSERT ... ON CONFLICT;
// multi-table changes are data-modifying WITH clauses; queue-like claims
// use SELECT ... FOR UPDATE SKIP LOCKED in a MATERIALIZED WITH clause.
//
// Only the schema differs. Every migration exists in two forms,
// migrations/NNNN_name.postgres.sql and NNNN_name.cockroach.sql, and the
// CockroachDB form adds USING HASH (hash sharding) to the primary key and
// the indexes whose keys arrive in time order (ULID event ids, created_at,
// started_at, received_at, due_at), so that inserts spread over ranges
// instead of piling onto the last one; a test checks the two forms differ
// in nothing else.
//
// The servers' default isolation levels differ too (SERIALIZABLE on
// CockroachDB, READ COMMITTED on PostgreSQL); every statement is written
// to be correct under both: conditional writes re-check their predicate on
// the row they change (PostgreSQL re-reads a concurrently changed row's
// latest version; CockroachDB restarts the statement), and claims lock the
// rows they take.
//
// # Round trips, transactions and retries
//
// Every method makes one round trip whatever the batch size, with a few
// exceptions: Purge (a transaction of up to four statements),
// CreateSubscription and CreateAPIKey (which read the existing row after
// an insert that conflicted, to tell a repeat from a conflict; a
// subscription create with a limit also counts the tenant's
// subscriptions), ReencryptSecrets (a transaction that locks the rows it
// reads, then writes them back in one statement) and LookupIdempotencyKeys
// (one query per thousand keys). Most send one statement. A batch of N
// attempts is one INSERT ... SELECT FROM unnest(...) chained to the
// delivery UPDATE and to the scheduled retries' DELETE (final results) or
// upsert (retrying results). CockroachDB refuses a statement that
// modifies one table twice, so where two statements are needed they go
// in one pgx batch, which the server runs as one implicit transaction:
// InsertFanout's events and deliveries, and RecordAttempts' removal of
// settled retries when its batch also schedules retries. A single
// statement or batch is an implicit transaction, which CockroachDB
// retries by itself when it can.
//
// Purge runs several statements in one transaction through
// crdbpgxv5.ExecuteTx (github.com/cockroachdb/cockroach-go/v2), which uses
// CockroachDB's client-side retry protocol: SAVEPOINT cockroach_restart,
// ROLLBACK TO it and run again on a retryable error (SQLSTATE 40001), and
// RELEASE SAVEPOINT to commit. On PostgreSQL the protocol works as well:
// the savepoint is an ordinary one and the COMMIT that follows RELEASE is
// the real commit. crdb.ExecuteInTx ignores that COMMIT's error, so on
// PostgreSQL the store reports it itself.
//
// Beyond that, any operation that fails with a serialization failure
// (40001: CockroachDB could not retry it itself) or a PostgreSQL deadlock
// (40P01) is run again from scratch, a few times, after a short jittered
// pause; batches are sorted by key so concurrent batches lock rows in the
// same order. That is safe because every operation is idempotent.
//
// # Idempotency
//
// A transaction may run again after an ambiguous commit (the commit went
// through but its acknowledgement was lost), so every write leaves the
// same state when repeated: rows are keyed by the ids callers give (random
// ULIDs or hashes, never server-generated), inserts are ON CONFLICT DO
// NOTHING (or DO UPDATE to the same values), and updates are conditional
// (a delivery only moves forward to a higher attempt number). Duplicates
// within one batch are resolved in Go before it is sent (the first wins,
// or the last for ScheduleRetries), as ON CONFLICT DO UPDATE may not touch
// a row twice.
//
// # Encoding
//
// As in the SQLite store: times are INT8 unix nanoseconds, UTC, and NULL
// where the Go value is the zero time and the column is optional (the
// suite checks nanosecond precision); subscription timeouts and retry
// schedules are INT8 milliseconds, attempt durations INT8 nanoseconds;
// lists and maps are JSONB; payloads and response bodies BYTEA. Page
// tokens have the SQLite store's format.
//
// # Prepared statements
//
// pgx prepares statements itself: in its default mode
// (QueryExecModeCacheStatement) each connection prepares a statement the
// first time it runs and keeps it in a per-connection cache, so every hot
// path runs as a prepared statement without explicit Prepare calls.
// Statements without parameters (migrations, transaction control) use the
// simple protocol.
//
// # Tenant scopes
//
// Tenant-facing queries take a store.Scope; a tenant's scope adds
// "AND tenant = $n" to the statement itself (AllTenants adds nothing), so
// rows of other tenants are never read, and the zero Scope fails with
// store.ErrNoScope before any statement is sent.
//
// # Signing secrets
//
// A subscription's signing secrets (their JSON) are sealed with the
// keyring given in Options.Keyring (package keyring: AES-256-GCM, the
// subscription's id as additional data, so a sealed value moved to another
// row does not open) into secrets_sealed, with the sealing key's id in
// secrets_key_id. Open reads the distinct key ids (from an index) and
// refuses to start, wrapping store.ErrMissingSecretKey, if the keyring
// lacks one. ReencryptSecrets moves rows to the current key after a
// rotation, compare-and-set on the key id and sealed bytes it read.
//
// Before migration 4 the secrets were a plaintext JSONB column, secrets.
// Migration 4 adds the sealed columns and makes secrets nullable; its Go
// step (run by Migrate, MigrateWith and Open with Options.Migrate, after
// the SQL migrations, every time) seals each row still holding plaintext
// and sets its secrets to NULL in one conditional UPDATE per batch (only
// if the row still holds the plaintext that was sealed). A run interrupted
// anywhere leaves every row either sealed or in the clear, and the next run
// finishes; concurrent runs are safe. Open without Options.Migrate refuses
// a database with plaintext left (ErrPlaintextSecrets: run `hookline
// migrate`). Writes never put plaintext in the column again, and
// UpdateSubscription clears it.
//
// # Migrations and the migration lease
//
// Migrations are embedded, versioned from 1 and forward-only; each is
// recorded in schema_migrations (version, name, applied_at) once its
// statements have run, one by one. Each statement is idempotent (IF NOT
// EXISTS), so a migration interrupted half way runs again from its start.
// Migrate (`hookline migrate`) or Open with Options.Migrate applies them;
// Open without it fails with a *SchemaBehindError ("schema at version N,
// binary needs M: run `hookline migrate`") if any is missing.
//
// Several replicas may migrate at once. CockroachDB has no advisory
// locks, so they serialise on a lease row, migration_lease (id = 1,
// holder, expires_at): a migrator takes it with one INSERT ... ON CONFLICT
// (id) DO UPDATE ... WHERE the lease has expired (or is already its own),
// renews it every 10 s while it works, and deletes it when done. The
// others poll until they hold it, or until every migration has been
// applied meanwhile, or until their context ends. A holder that dies
// stops renewing and its lease expires after 30 s; a holder that fails to
// renew in time, or finds its lease taken over, stops migrating. Under the
// lease the pending versions are read again, and a version row is inserted
// ON CONFLICT DO NOTHING, so each version is applied and reported by one
// migrator only.
//
// # Observing statements
//
// Options.Tracer is installed on every connection of the store's pool
// (and of the pool MigrateWith builds), so it sees every statement the
// package sends: the store's queries, transaction control, the migrations
// and the lease statements.
package crdb
