package sqlite

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testKeyring is the keyring of the package's tests.
var testKeyring = storetest.Keyring("k1")

// testOptions are the Options of the package's tests.
func testOptions() Options { return Options{Keyring: testKeyring} }

func openFile(t *testing.T) *Store {
	t.Helper()
	return openPath(t, filepath.Join(t.TempDir(), "hookline.db"), testKeyring)
}

// openPath opens the store at path with kr, closed when t ends.
func openPath(t *testing.T, path string, kr *keyring.Keyring) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, Options{Keyring: kr}, testLogger(t))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// fileOpener is a storetest.Opener on a fresh database file: every call
// opens the same file.
func fileOpener(t *testing.T) storetest.Opener {
	path := filepath.Join(t.TempDir(), "hookline.db")
	return func(t *testing.T, kr *keyring.Keyring) (store.Store, error) {
		s, err := Open(t.Context(), path, Options{Keyring: kr}, testLogger(t))
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s, nil
	}
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, fileOpener)
}

func TestConformanceMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) storetest.Opener {
		opened := false
		return func(t *testing.T, kr *keyring.Keyring) (store.Store, error) {
			if opened {
				return nil, storetest.ErrCannotReopen // a second ":memory:" is another database
			}
			opened = true
			s, err := Open(t.Context(), ":memory:", Options{Keyring: kr}, testLogger(t))
			if err != nil {
				return nil, err
			}
			t.Cleanup(func() { s.Close() })
			return s, nil
		}
	})
}

func TestMigrationsFreshAndReopen(t *testing.T) {
	t.Parallel()
	ms, err := migrations()
	if err != nil {
		t.Fatalf("migrations: %v", err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	var want []int
	for i, m := range ms {
		if m.version != i+1 {
			t.Fatalf("migration %s has version %d, want %d (contiguous from 1)", m.name, m.version, i+1)
		}
		want = append(want, m.version)
	}

	path := filepath.Join(t.TempDir(), "hookline.db")
	var logs bytes.Buffer
	s, err := Open(t.Context(), path, testOptions(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	got := appliedVersions(t, s)
	if !slices.Equal(versionsOf(got), want) {
		t.Fatalf("fresh database recorded versions %v, want %v", versionsOf(got), want)
	}
	for _, a := range got {
		if a.appliedAt <= 0 {
			t.Fatalf("version %d has applied_at %d", a.version, a.appliedAt)
		}
	}
	if n := strings.Count(logs.String(), "applied migration"); n != len(ms) {
		t.Fatalf("fresh open logged %d applied migrations, want %d:\n%s", n, len(ms), logs.String())
	}
	sub := storetest.NewSubscription("acme")
	if err := s.CreateSubscription(t.Context(), sub, 0); err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Reopening an up-to-date database applies nothing and keeps the data.
	logs.Reset()
	s, err = Open(t.Context(), path, testOptions(), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if strings.Contains(logs.String(), "applied migration") {
		t.Fatalf("reopen applied migrations:\n%s", logs.String())
	}
	if again := appliedVersions(t, s); !slices.Equal(again, got) {
		t.Fatalf("reopen changed schema_migrations: %v, was %v", again, got)
	}
	applied, err := migrate(t.Context(), s.write, testKeyring, testLogger(t))
	if err != nil || len(applied) != 0 {
		t.Fatalf("migrate on an up-to-date database applied %v, err %v", applied, err)
	}
	if _, err := s.GetSubscription(t.Context(), store.TenantScope("acme"), sub.ID); err != nil {
		t.Fatalf("subscription lost across reopen: %v", err)
	}
}

type appliedMigration struct {
	version   int
	appliedAt int64
}

func appliedVersions(t *testing.T, s *Store) []appliedMigration {
	t.Helper()
	rows, err := s.read.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("query schema_migrations: %v", err)
	}
	defer rows.Close()
	var out []appliedMigration
	for rows.Next() {
		var a appliedMigration
		if err := rows.Scan(&a.version, &a.appliedAt); err != nil {
			t.Fatalf("scan: %v", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	return out
}

func versionsOf(as []appliedMigration) []int {
	var out []int
	for _, a := range as {
		out = append(out, a.version)
	}
	return out
}

func TestOpenConfiguresWAL(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	var mode string
	var syncLevel, busy int
	if err := s.write.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.write.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&syncLevel); err != nil {
		t.Fatal(err)
	}
	if err := s.read.QueryRowContext(t.Context(), `PRAGMA busy_timeout`).Scan(&busy); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || syncLevel != 1 || busy != busyTimeoutMS {
		t.Fatalf("journal_mode %q synchronous %d busy_timeout %d; want wal, 1 (NORMAL), %d", mode, syncLevel, busy, busyTimeoutMS)
	}
	// The read pool refuses writes.
	if _, err := s.read.ExecContext(t.Context(), `DELETE FROM subscriptions`); err == nil {
		t.Fatal("a write through the read pool succeeded")
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"", "x.db?_pragma=foo", filepath.Join(t.TempDir(), "missing", "dir", "x.db")} {
		if s, err := Open(t.Context(), path, testOptions(), testLogger(t)); err == nil {
			s.Close()
			t.Fatalf("Open(%q) succeeded", path)
		}
	}
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), Options{}, testLogger(t))
	if err == nil {
		s.Close()
		t.Fatal("Open without a keyring succeeded")
	}
	if !strings.Contains(err.Error(), "keyring") {
		t.Fatalf("Open without a keyring: %q does not say what is missing", err)
	}
}

// TestConcurrentStoresSharedFile opens the same file twice, as two
// processes would, and hammers both: with busy_timeout and IMMEDIATE
// transactions no write fails, and no retry is claimed twice across them.
func TestConcurrentStoresSharedFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "shared.db")
	var stores [2]*Store
	for i := range stores {
		s, err := Open(t.Context(), path, testOptions(), testLogger(t))
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		defer s.Close()
		stores[i] = s
	}
	ctx := t.Context()
	sub := storetest.NewSubscription("acme")
	if err := stores[0].CreateSubscription(ctx, sub, 0); err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 6, 20
	// ds have a retry due; others get their attempts recorded, each
	// scheduling a next attempt that is not due yet.
	var evs []store.Event
	var ds, others []store.Delivery
	var rs []store.ScheduledRetry
	for i := range workers * perWorker {
		ev := storetest.NewEvent("acme", "order.created", storetest.Base)
		d := storetest.NewDelivery(ev, sub, storetest.Base)
		evs, ds = append(evs, ev), append(ds, d)
		rs = append(rs, store.ScheduledRetry{DeliveryID: d.ID, Attempt: 2, DueAt: storetest.Base.Add(-time.Duration(i))})
		ev = storetest.NewEvent("acme", "order.created", storetest.Base)
		evs, others = append(evs, ev), append(others, storetest.NewDelivery(ev, sub, storetest.Base))
	}
	if err := stores[1].InsertFanout(ctx, evs, nil); err != nil {
		t.Fatal(err)
	}
	if err := stores[0].InsertFanout(ctx, nil, append(slices.Clone(ds), others...)); err != nil {
		t.Fatal(err)
	}
	if err := stores[1].ScheduleRetries(ctx, rs); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	claimed := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		s := stores[w%2]
		wg.Go(func() {
			// Each worker records attempt 1 of its own deliveries in batches...
			mine := others[w*perWorker : (w+1)*perWorker]
			for i := 0; i < len(mine); i += 5 {
				var batch []store.AttemptResult
				for _, d := range mine[i : i+5] {
					batch = append(batch, store.AttemptResult{Attempt: storetest.NewAttempt(d, 1, storetest.Base),
						Status: store.DeliveryRetrying, NextAttemptAt: storetest.Base.Add(time.Hour)})
				}
				if err := s.RecordAttempts(ctx, batch); err != nil {
					errs <- err
					return
				}
				// ...and claims retries in between.
				due, err := s.ClaimDueRetries(ctx, storetest.Base, 4, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, d := range due {
					claimed[d.DeliveryID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent write failed: %v", err)
	}
	// Drain what is left through the other store.
	for round := 0; ; round++ {
		if round > len(ds) {
			t.Fatal("claiming does not drain")
		}
		due, err := stores[1].ClaimDueRetries(ctx, storetest.Base, 50, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) == 0 {
			break
		}
		for _, d := range due {
			claimed[d.DeliveryID]++
		}
	}
	if len(claimed) != len(ds) {
		t.Fatalf("claimed %d distinct retries, want %d", len(claimed), len(ds))
	}
	for id, n := range claimed {
		if n != 1 {
			t.Fatalf("retry %s claimed %d times", id, n)
		}
	}
	for _, d := range others {
		got, err := stores[0].GetDelivery(ctx, store.AllTenants(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Attempts != 1 || got.Status != store.DeliveryRetrying || !got.NextAttemptAt.Equal(storetest.Base.Add(time.Hour)) {
			t.Fatalf("delivery %s is %s after %d attempts, next at %v; want retrying after 1, next at Base+1h",
				d.ID, got.Status, got.Attempts, got.NextAttemptAt)
		}
	}
}

// benchStore opens a file store for b, closed when b ends, with one
// subscription of tenant acme.
func benchStore(b *testing.B) (*Store, *store.Subscription) {
	b.Helper()
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), testOptions(), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	sub := storetest.NewSubscription("acme")
	if err := s.CreateSubscription(b.Context(), sub, 0); err != nil {
		b.Fatal(err)
	}
	return s, sub
}

// BenchmarkRecordAttempts measures the hot path: batches of attempt
// results, each advancing its delivery, in one transaction per batch. Most
// attempts succeed (outcome=succeeded); outcome=retrying also schedules
// each delivery's next attempt, and outcome=mixed has one result in ten
// retrying.
func BenchmarkRecordAttempts(b *testing.B) {
	storetest.BenchRecordAttempts(b, func(b *testing.B) (store.Store, *store.Subscription) { return benchStore(b) })
}

// BenchmarkSubscriptionsRevision reads the subscription revision, as
// fanout does before matching each batch (about 27 µs per read with the
// statement prepared per query, 15 µs prepared once, on a 2-core host).
func BenchmarkSubscriptionsRevision(b *testing.B) {
	s, _ := benchStore(b)
	for b.Loop() {
		if _, err := s.SubscriptionsRevision(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}
