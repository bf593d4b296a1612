package kafka_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

// TestTLS: against a broker that only speaks TLS, with a certificate of a
// CA made for the test (valid for 127.0.0.1), a Transport whose
// Config.TLS trusts that CA publishes, consumes, signals and is Ready;
// with mutual TLS it presents its client certificate. Config.TLS is built
// in memory, or from PEM files with tlsfiles.ClientConfig as a service
// would from its flags. (A Transport that does not trust the CA, or
// presents no certificate where one is required, fails fast:
// TestNewFailsFast.)
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir, "ca")
	certPEM, keyPEM := ca.IssueClient(t, "hookline")
	clientCert, clientKey := ca.WriteFiles(t, dir, "client", certPEM, keyPEM)
	fromFiles := func(c tlsfiles.ClientConfig) *tls.Config {
		cfg, err := c.TLSConfig()
		if err != nil {
			t.Fatalf("tlsfiles: %v", err)
		}
		return cfg
	}
	tests := []struct {
		name   string
		mutual bool
		client *tls.Config
	}{
		{"CA in memory", false, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}},
		{"CA file through tlsfiles", false, fromFiles(tlsfiles.ClientConfig{CAFile: caFile})},
		{"mutual TLS through tlsfiles", true, fromFiles(tlsfiles.ClientConfig{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, kfake.TLS(serverTLS(t, ca, tc.mutual)))
			tr := openWith(t, kafka.Config{Brokers: c.ListenAddrs(), TLS: tc.client})
			roundTrip(t, tr, "tls")
		})
	}
}

// roundTrip checks that tr works end to end: Ready, a signal reaches a
// listener, and a published message reaches a consumer group, each wait
// bounded by waitTimeout.
func roundTrip(t *testing.T, tr *kafka.Transport, prefix string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := tr.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	signals := make(chan string, 16)
	stop, err := tr.Listen(ctx, prefix, func(data []byte) { signals <- string(data) })
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer stop()
	if err := tr.Notify(ctx, prefix, []byte("ping")); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	select {
	case s := <-signals:
		if s != "ping" {
			t.Fatalf("signal %q, want ping", s)
		}
	case <-ctx.Done():
		t.Fatal("the signal did not arrive")
	}

	id := prefix + "-1"
	if _, err := tr.Publish(ctx, transport.Deliveries, transport.Message{ID: id, Key: prefix, Data: []byte("x")}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan transport.Message, 1)
	cctx, stopConsume := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(cctx, transport.Deliveries, transport.ConsumerConfig{Group: prefix}, func(hctx context.Context, m transport.Received) {
			_ = m.Ack(hctx)
			select {
			case got <- *m.Message():
			default:
			}
		})
	}()
	select {
	case m := <-got:
		if m.ID != id || string(m.Data) != "x" {
			t.Errorf("consumed %s %q, want %s %q", m.ID, m.Data, id, "x")
		}
	case <-ctx.Done():
		t.Error("the message was not consumed")
	}
	stopConsume()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Consume: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Error("Consume did not return after cancel")
	}
}
