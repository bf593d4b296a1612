package delivery_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

type benchEnv struct {
	st store.Store
	tr *natsjs.Transport
}

func newBenchEnv(b *testing.B) benchEnv {
	b.Helper()
	ctx := context.Background()
	ns := natsembedtest.Start(b)
	tr, err := natsjs.New(ctx, natsjs.Config{URL: ns.ClientURL()}, testLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), testLogger())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	return benchEnv{st: st, tr: tr}
}

func benchSubscription(b *testing.B, st store.Store, url string, i int) *store.Subscription {
	b.Helper()
	s := storetest.NewSubscription(fmt.Sprintf("tenant%d", i%4))
	s.URL, s.RateLimit, s.Timeout = url, 0, 0
	s.Secrets[0].ExpiresAt = time.Time{}
	if err := st.CreateSubscription(context.Background(), s); err != nil {
		b.Fatal(err)
	}
	return s
}
