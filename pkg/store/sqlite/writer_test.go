package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestWritesCombineAndFailAlone: operations queued while the writer is
// busy run in one transaction; one that fails is undone and reported
// alone, the others commit.
func TestWritesCombineAndFailAlone(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	ctx := t.Context()
	if _, err := s.write.ExecContext(ctx, `CREATE TABLE combine_test (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	insert := func(k string, fail bool) writeFunc {
		return func(ctx context.Context, tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO combine_test (k) VALUES (?)`, k); err != nil {
				return err
			}
			if fail {
				return errors.New("op failed after writing")
			}
			return nil
		}
	}
	// Hold the writer so the next operations queue up behind it.
	entered, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := s.inWriteTx(ctx, "hold", func(ctx context.Context, tx *sql.Tx) error {
			close(entered)
			<-release
			return insert("hold", false)(ctx, tx)
		})
		if err != nil {
			t.Errorf("hold: %v", err)
		}
	})
	<-entered
	const n = 8
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = s.inWriteTx(ctx, "op", insert(fmt.Sprint(i), i == 3)) })
	}
	// Every operation is queued before the writer is freed.
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for s.writer.batch.Waiting() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d operations queued", s.writer.batch.Waiting(), n)
		}
		<-tick.C
	}
	before := s.writer.txs.Load()
	close(release)
	wg.Wait()
	if txs := s.writer.txs.Load() - before; txs != 1 {
		t.Fatalf("%d queued operations took %d transactions; want 1", n, txs)
	}
	for i, err := range errs {
		if (err != nil) != (i == 3) {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	var keys []string
	rows, err := s.read.QueryContext(ctx, `SELECT k FROM combine_test ORDER BY k`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	want := "[0 1 2 4 5 6 7 hold]"
	if fmt.Sprint(keys) != want {
		t.Fatalf("committed %v; want %s (op 3 undone)", keys, want)
	}
}

// TestWriteAfterClose fails with ErrClosed.
func TestWriteAfterClose(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	err := s.inWriteTx(context.Background(), "late", func(context.Context, *sql.Tx) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close = %v; want ErrClosed", err)
	}
}

// TestStartedOperationOutlivesItsContext: once an operation runs, its
// caller's cancellation neither cuts its statements short nor disturbs
// the transaction it shares; it commits whole.
func TestStartedOperationOutlivesItsContext(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	if _, err := s.write.ExecContext(t.Context(), `CREATE TABLE outlive_test (k TEXT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	err := s.inWriteTx(ctx, "cancelled midway", func(ctx context.Context, tx *sql.Tx) error {
		for i, k := range []string{"before", "after"} {
			if i == 1 {
				cancel()
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO outlive_test (k) VALUES (?)`, k); err != nil {
				return fmt.Errorf("insert %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("operation whose caller cancelled midway: %v", err)
	}
	var n int
	if err := s.read.QueryRowContext(t.Context(), `SELECT count(*) FROM outlive_test`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%d rows committed; want 2", n)
	}
}

// TestWriterJournalsInMemory: the writer connection keeps statement and
// savepoint journals in memory (temp_store = MEMORY, reported as 2).
func TestWriterJournalsInMemory(t *testing.T) {
	t.Parallel()
	s := openFile(t)
	var mode int
	if err := s.write.QueryRowContext(t.Context(), `PRAGMA temp_store`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != 2 {
		t.Fatalf("temp_store = %d; want 2 (MEMORY)", mode)
	}
}
