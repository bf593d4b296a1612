package groupcommit

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBatchesConcurrentAdds(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var calls, items atomic.Int64
	var first sync.Once
	started := make(chan struct{})
	b := New(func(_ context.Context, vs []int) error {
		first.Do(func() { close(started); <-release }) // hold the first flush so others queue
		calls.Add(1)
		items.Add(int64(len(vs)))
		return nil
	}, 64, 1)
	defer b.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Add(context.Background(), -1) }()
	<-started
	const n = 100
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- b.Add(context.Background(), i) }()
	}
	// Wait until all n are queued behind the held flush, then release it.
	for len(b.in) < min(n, cap(b.in)) {
		runtimeGosched()
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if items.Load() != n+1 {
		t.Fatalf("flushed %d items, want %d", items.Load(), n+1)
	}
	if calls.Load() > 4 {
		t.Fatalf("%d flushes for %d items: not batched", calls.Load(), n+1)
	}
}

func TestFlushErrorReachesEveryCaller(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	b := New(func(context.Context, []string) error { return boom }, 8, 2)
	defer b.Close()
	for range 5 {
		if err := b.Add(context.Background(), "x"); !errors.Is(err, boom) {
			t.Fatalf("Add = %v, want boom", err)
		}
	}
}

func TestAddAfterClose(t *testing.T) {
	t.Parallel()
	b := New(func(context.Context, []int) error { return nil }, 8, 1)
	b.Close()
	b.Close()
	if err := b.Add(context.Background(), 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close = %v", err)
	}
}

func runtimeGosched() { runtime.Gosched() }
