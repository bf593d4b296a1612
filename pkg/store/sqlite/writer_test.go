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
	insert := func(k string, fail bool) func(tx *sql.Tx) error {
		return func(tx *sql.Tx) error {
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
		err := s.inWriteTx(ctx, "hold", func(tx *sql.Tx) error {
			close(entered)
			<-release
			return insert("hold", false)(tx)
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
	err := s.inWriteTx(context.Background(), "late", func(*sql.Tx) error { return nil })
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close = %v; want ErrClosed", err)
	}
}
