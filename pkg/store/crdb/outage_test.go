package crdb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store/crdb"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	"github.com/hookline/hookline/pkg/store/storetest"
)

// TestStoreSurvivesPostgresRestart runs the store on a PostgreSQL server
// of the test's own and kills it: Ready and writes fail, saying the
// server cannot be reached; once the server is back, the same store is
// ready and writes again, with no reopening.
func TestStoreSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := crdbtest.NewPrivate(t)
	st, err := crdb.Open(t.Context(), pg.URL(), crdb.Options{Migrate: true, Keyring: storetest.Keyring("k1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	call := func(f func(context.Context) error) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return f(ctx)
	}
	create := func(ctx context.Context) error {
		return st.CreateSubscription(ctx, storetest.NewSubscription("acme"), 0)
	}
	if err := call(create); err != nil {
		t.Fatal(err)
	}

	pg.Kill()
	if err := call(st.Ready); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Errorf("Ready with the server down: %v, want an error saying it cannot connect", err)
	}
	if err := call(create); err == nil {
		t.Error("a write with the server down succeeded")
	}

	pg.Start()
	poll.UntilReason(t, "the store ready again", func() (bool, string) {
		err := call(st.Ready)
		return err == nil, errText(err)
	})
	if err := call(create); err != nil {
		t.Fatalf("a write once the server is back: %v", err)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
