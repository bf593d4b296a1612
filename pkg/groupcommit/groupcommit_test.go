package groupcommit

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBatchesConcurrentCallers(t *testing.T) {
	t.Parallel()
	var calls, total atomic.Int64
	release := make(chan struct{})
	b := New(Config{MaxItems: 64, Linger: time.Hour}, func(_ context.Context, items []int, errs []error) {
		<-release
		calls.Add(1)
		total.Add(int64(len(items)))
	})
	defer b.Close()
	const n = 256
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := b.Do(context.Background(), i); err != nil {
				t.Errorf("Do(%d) = %v", i, err)
			}
		})
	}
	close(release)
	wg.Wait()
	// With Linger an hour, only full batches can flush: exactly n/64.
	if got := calls.Load(); got != n/64 {
		t.Fatalf("flushes = %d; want %d", got, n/64)
	}
	if total.Load() != n {
		t.Fatalf("items flushed = %d; want %d", total.Load(), n)
	}
}

func TestLingerFlushesPartialBatch(t *testing.T) {
	t.Parallel()
	b := New(Config{MaxItems: 1000, Linger: time.Millisecond}, func(context.Context, []string, []error) {})
	defer b.Close()
	done := make(chan error, 1)
	go func() { done <- b.Do(context.Background(), "x") }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a lone item was never flushed")
	}
}

func TestPerItemErrors(t *testing.T) {
	t.Parallel()
	bad := errors.New("bad")
	b := New(Config{MaxItems: 8, Linger: time.Millisecond}, func(_ context.Context, items []int, errs []error) {
		for i, v := range items {
			if v%2 == 1 {
				errs[i] = bad
			}
		}
	})
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			err := b.Do(context.Background(), i)
			if (i%2 == 1) != errors.Is(err, bad) {
				t.Errorf("Do(%d) = %v", i, err)
			}
		})
	}
	wg.Wait()
}

func TestCloseFlushesQueuedAndRejectsLater(t *testing.T) {
	t.Parallel()
	// synctest.Wait lets the test know every caller has queued its item
	// (and is blocked waiting for the outcome) before Close runs; without
	// it, a caller scheduled late would meet ErrClosed and the test could
	// not tell a lost queued item from a late one.
	synctest.Test(t, func(t *testing.T) {
		var flushed atomic.Int64
		release := make(chan struct{})
		b := New(Config{MaxItems: 1, Linger: time.Millisecond}, func(_ context.Context, items []int, _ []error) {
			<-release
			flushed.Add(int64(len(items)))
		})
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				if err := b.Do(context.Background(), i); err != nil {
					t.Errorf("Do = %v", err)
				}
			})
		}
		synctest.Wait() // all three queued; the first flush blocked on release
		if got := flushed.Load(); got != 0 {
			t.Fatalf("flushed %d before release", got)
		}
		closed := make(chan struct{})
		go func() { b.Close(); close(closed) }()
		close(release)
		<-closed
		wg.Wait()
		if flushed.Load() != 3 {
			t.Fatalf("flushed %d; want 3", flushed.Load())
		}
		if err := b.Do(context.Background(), 9); !errors.Is(err, ErrClosed) {
			t.Fatalf("Do after Close = %v; want ErrClosed", err)
		}
		b.Close() // idempotent
	})
}

func TestFlushTimeout(t *testing.T) {
	t.Parallel()
	b := New(Config{Timeout: 5 * time.Millisecond}, func(ctx context.Context, _ []int, errs []error) {
		<-ctx.Done()
		for i := range errs {
			errs[i] = ctx.Err()
		}
	})
	defer b.Close()
	if err := b.Do(context.Background(), 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v; want deadline exceeded", err)
	}
}

// TestBatchGrowsWhileFlushersBusy: a batch waiting for a busy flusher
// keeps taking the items that queue meanwhile, so the next flush carries
// all of them instead of only those that arrived within its linger.
func TestBatchGrowsWhileFlushersBusy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var mu sync.Mutex
		var sizes []int
		b := New(Config{MaxItems: 64, Linger: time.Millisecond}, func(_ context.Context, items []int, _ []error) {
			<-release
			mu.Lock()
			sizes = append(sizes, len(items))
			mu.Unlock()
		})
		defer b.Close()
		var wg sync.WaitGroup
		do := func(i int) {
			wg.Go(func() {
				if err := b.Do(context.Background(), i); err != nil {
					t.Errorf("Do(%d) = %v", i, err)
				}
			})
		}
		do(0)
		time.Sleep(2 * time.Millisecond) // virtual: item 0's linger is over
		synctest.Wait()                  // item 0 is being flushed, the flusher blocked
		do(1)
		time.Sleep(2 * time.Millisecond) // virtual: item 1's linger is over
		synctest.Wait()
		for i := 2; i < 11; i++ {
			do(i)
		}
		synctest.Wait()
		if n := b.Waiting(); n != 10 {
			t.Fatalf("Waiting = %d while the flusher is busy; want 10", n)
		}
		close(release)
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		if len(sizes) != 2 || sizes[0] != 1 || sizes[1] != 10 {
			t.Fatalf("batch sizes %v; want [1 10]", sizes)
		}
	})
}

// TestNegativeLingerFlushesAtOnce: with Linger < 0 a lone item is flushed
// without waiting (in a synctest bubble no virtual time passes).
func TestNegativeLingerFlushesAtOnce(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		b := New(Config{Linger: -1}, func(context.Context, []int, []error) {})
		defer b.Close()
		start := time.Now()
		if err := b.Do(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Fatalf("Do took %v of virtual time; want none", d)
		}
	})
}
