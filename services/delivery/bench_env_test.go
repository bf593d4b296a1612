package delivery_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/internal/servicetest"
)

type benchEnv struct {
	st store.Store
	tr *natsjs.Transport
}

func newBenchEnv(b *testing.B) benchEnv {
	b.Helper()
	return benchEnv{st: servicetest.Store(b), tr: servicetest.Transport(b)}
}

func benchSubscription(b *testing.B, st store.Store, url string, i int) *store.Subscription {
	b.Helper()
	s := storetest.NewSubscription(fmt.Sprintf("tenant%d", i%4))
	s.URL, s.RateLimit, s.Timeout = url, 0, 0
	s.Secrets[0].ExpiresAt = time.Time{}
	if err := st.CreateSubscription(context.Background(), s, 0); err != nil {
		b.Fatal(err)
	}
	return s
}
