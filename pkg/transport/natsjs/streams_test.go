package natsjs_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hookline/hookline/pkg/natsembed/natsembedtest"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// TestStreamSettings: the production settings reach the streams as
// configured — storage, age and size limits — and a restart of a
// service with changed limits updates the streams in place.
func TestStreamSettings(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	_, js := natsembedtest.Connect(t, srv)
	ctx := ctxT(t)
	tests := []struct {
		name string
		cfg  natsjs.Config
		want map[string]jetstream.StreamConfig // only the fields compared below
	}{
		{"defaults", natsjs.Config{}, map[string]jetstream.StreamConfig{
			"HOOKLINE_EVENTS":     {Storage: jetstream.FileStorage, MaxAge: natsjs.DefaultEventsMaxAge, MaxBytes: -1, Discard: jetstream.DiscardOld, Duplicates: natsjs.DefaultDuplicateWindow, Replicas: 1},
			"HOOKLINE_DELIVERIES": {Storage: jetstream.FileStorage, MaxAge: 0, MaxBytes: -1, Discard: jetstream.DiscardNew, Duplicates: natsjs.DefaultDuplicateWindow, Replicas: 1},
		}},
		{"limits changed by a restart", natsjs.Config{EventsMaxAge: 48 * time.Hour, EventsMaxBytes: 64 << 20, DeliveriesMaxBytes: 32 << 20, DuplicateWindow: 45 * time.Second}, map[string]jetstream.StreamConfig{
			"HOOKLINE_EVENTS":     {Storage: jetstream.FileStorage, MaxAge: 48 * time.Hour, MaxBytes: 64 << 20, Discard: jetstream.DiscardOld, Duplicates: 45 * time.Second, Replicas: 1},
			"HOOKLINE_DELIVERIES": {Storage: jetstream.FileStorage, MaxAge: 0, MaxBytes: 32 << 20, Discard: jetstream.DiscardNew, Duplicates: 45 * time.Second, Replicas: 1},
		}},
	}
	// Sequential on one server: the second row is a service restarted
	// with new limits.
	for _, tc := range tests {
		cfg := embedded(srv)
		cfg.EventsMaxAge, cfg.EventsMaxBytes, cfg.DeliveriesMaxBytes, cfg.DuplicateWindow = tc.cfg.EventsMaxAge, tc.cfg.EventsMaxBytes, tc.cfg.DeliveriesMaxBytes, tc.cfg.DuplicateWindow
		tr := openWith(t, cfg, nil)
		for name, want := range tc.want {
			st, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatalf("%s: %s: %v", tc.name, name, err)
			}
			got := st.CachedInfo().Config
			if got.Storage != want.Storage || got.MaxAge != want.MaxAge || got.MaxBytes != want.MaxBytes ||
				got.Discard != want.Discard || got.Duplicates != want.Duplicates || got.Replicas != want.Replicas {
				t.Errorf("%s: %s: storage %v, max age %v, max bytes %d, discard %v, duplicates %v, replicas %d; want %v, %v, %d, %v, %v, %d",
					tc.name, name, got.Storage, got.MaxAge, got.MaxBytes, got.Discard, got.Duplicates, got.Replicas,
					want.Storage, want.MaxAge, want.MaxBytes, want.Discard, want.Duplicates, want.Replicas)
			}
		}
		_ = tr.Close()
	}
}

// TestStorageCannotChange: a service started with a storage type other
// than the existing streams' fails at once, naming the stream and both
// storage types, instead of retrying until its deadline.
func TestStorageCannotChange(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	openWith(t, embedded(srv), nil)
	cfg := embedded(srv)
	cfg.Storage = jetstream.MemoryStorage
	ctx, cancel := context.WithTimeout(context.Background(), poll.DefaultTimeout)
	defer cancel()
	began := time.Now()
	tr, err := natsjs.New(ctx, cfg, nil)
	if err == nil {
		_ = tr.Close()
		t.Fatal("New changed the streams' storage from file to memory")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New retried until its deadline (%v): %v", time.Since(began), err)
	}
	for _, want := range []string{"HOOKLINE_", "File storage", "Memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// TestFullDeliveriesRefusesNotDrops: DELIVERIES at its size cap refuses a
// new message (Publish fails) and keeps every message it holds, where an
// EVENTS cap drops the oldest events instead.
func TestFullDeliveriesRefusesNotDrops(t *testing.T) {
	t.Parallel()
	srv := natsembedtest.Start(t)
	_, js := natsembedtest.Connect(t, srv)
	cfg := embedded(srv)
	const limit = 16 << 10
	cfg.DeliveriesMaxBytes, cfg.EventsMaxBytes = limit, limit
	tr := openWith(t, cfg, nil)
	ctx := ctxT(t)
	payload := make([]byte, 1024)
	published := map[transport.Stream]int{}
	var refused error
	for i := 0; i < 2*limit/len(payload); i++ {
		m := transport.Message{ID: "d" + strconv.Itoa(i), Subject: "sub_1", Key: "sub_1", Data: payload}
		if _, err := tr.Publish(ctx, transport.Deliveries, m); err != nil {
			refused = err
			break
		}
		published[transport.Deliveries]++
	}
	if refused == nil {
		t.Fatalf("DELIVERIES accepted %d KiB with a %d KiB cap", published[transport.Deliveries], limit>>10)
	}
	for i := 0; i < 2*limit/len(payload); i++ {
		m := transport.Message{ID: "e" + strconv.Itoa(i), Subject: "acme", Key: "acme", Data: payload}
		if _, err := tr.Publish(ctx, transport.Events, m); err != nil {
			t.Fatalf("EVENTS refused message %d at its cap (it should drop its oldest): %v", i, err)
		}
		published[transport.Events]++
	}
	for stream, name := range map[transport.Stream]string{transport.Deliveries: "HOOKLINE_DELIVERIES", transport.Events: "HOOKLINE_EVENTS"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		n := int(st.CachedInfo().State.Msgs)
		switch stream {
		case transport.Deliveries:
			if n != published[stream] {
				t.Errorf("DELIVERIES holds %d messages, want every one of the %d accepted", n, published[stream])
			}
		case transport.Events:
			if n >= published[stream] {
				t.Errorf("EVENTS holds %d of %d messages over its cap: nothing was trimmed", n, published[stream])
			}
		}
	}
}
