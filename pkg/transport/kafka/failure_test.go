package kafka_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

// failFast bounds how long New may take to report a failure that retrying
// cannot fix: one connection attempt, not a retry loop (the context New
// gets is far longer).
const failFast = 2 * time.Second

// serverTLS returns a kfake TLS config presenting a certificate of ca for
// localhost, 127.0.0.1 and ::1, requiring client certificates of ca when
// mutual is set.
func serverTLS(t testing.TB, ca *tlsfilestest.CA, mutual bool) *tls.Config {
	t.Helper()
	pair, err := tls.X509KeyPair(ca.IssueServer(t, "kfake"))
	if err != nil {
		t.Fatalf("server key pair: %v", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if mutual {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = ca.Pool()
	}
	return cfg
}

// refuseCreateTopics makes c answer every CreateTopics request with code
// for every topic.
func refuseCreateTopics(c *kfake.Cluster, code int16) {
	c.ControlKey(int16(kmsg.CreateTopics), func(r kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := r.(*kmsg.CreateTopicsRequest)
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, tp := range req.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = tp.Topic
			rt.ErrorCode = code
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
}

// TestNewFailsFast: a failure that retrying cannot fix (credentials or a
// certificate the broker or the client refuses, a topic the broker will
// not create) makes New return within failFast, with an error that says
// what is wrong, long before its context ends; it logs no retry warning.
func TestNewFailsFast(t *testing.T) {
	t.Parallel()
	ca, other := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
	scram := func(mech, user, pass string) *kafka.SASL {
		return &kafka.SASL{Mechanism: mech, Username: user, Password: pass}
	}
	tests := []struct {
		name    string
		cluster []kfake.Opt
		setup   func(c *kfake.Cluster)
		cfg     kafka.Config // Brokers filled in
		want    []string     // substrings of the error
	}{
		{
			name:    "wrong SCRAM-SHA-256 password",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(kafka.ScramSHA256, "hookline", "s3cret")},
			cfg:     kafka.Config{SASL: scram(kafka.ScramSHA256, "hookline", "wrong")},
			want:    []string{"refused SASL SCRAM-SHA-256 authentication as \"hookline\"", "Config.SASL"},
		},
		{
			name:    "wrong SCRAM-SHA-512 password",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(kafka.ScramSHA512, "hookline", "s3cret")},
			cfg:     kafka.Config{SASL: scram(kafka.ScramSHA512, "hookline", "wrong")},
			want:    []string{"refused SASL SCRAM-SHA-512 authentication"},
		},
		{
			name:    "unknown PLAIN user",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(kafka.Plain, "hookline", "s3cret")},
			cfg:     kafka.Config{SASL: scram(kafka.Plain, "nobody", "s3cret")},
			want:    []string{"refused SASL PLAIN authentication as \"nobody\""},
		},
		{
			name:    "mechanism the broker has no user for",
			cluster: []kfake.Opt{kfake.EnableSASL(), kfake.Superuser(kafka.ScramSHA256, "hookline", "s3cret")},
			cfg:     kafka.Config{SASL: scram(kafka.ScramSHA512, "hookline", "s3cret")},
			want:    []string{"refused SASL SCRAM-SHA-512 authentication"},
		},
		{
			name:    "broker certificate from an untrusted CA",
			cluster: []kfake.Opt{kfake.TLS(serverTLS(t, ca, false))},
			cfg:     kafka.Config{TLS: &tls.Config{RootCAs: other.Pool(), MinVersion: tls.VersionTLS12}},
			want:    []string{"certificate is not trusted", "unknown authority", "RootCAs"},
		},
		{
			name:    "broker certificate and system roots",
			cluster: []kfake.Opt{kfake.TLS(serverTLS(t, ca, false))},
			cfg:     kafka.Config{TLS: &tls.Config{MinVersion: tls.VersionTLS12}},
			want:    []string{"certificate is not trusted"},
		},
		{
			name:    "broker certificate for another name",
			cluster: []kfake.Opt{kfake.TLS(serverTLS(t, ca, false))},
			cfg:     kafka.Config{TLS: &tls.Config{RootCAs: ca.Pool(), ServerName: "kafka.example", MinVersion: tls.VersionTLS12}},
			want:    []string{"certificate is not trusted", "kafka.example"},
		},
		{
			name:    "client certificate required, none given",
			cluster: []kfake.Opt{kfake.TLS(serverTLS(t, ca, true))},
			cfg:     kafka.Config{TLS: &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}},
			want:    []string{"refused the TLS connection", "certificate"},
		},
		{
			name: "topic creation denied by ACLs",
			cluster: []kfake.Opt{
				kfake.EnableSASL(), kfake.EnableACLs(),
				kfake.Superuser(kafka.ScramSHA256, "admin", "admin"),
				kfake.User(kafka.ScramSHA256, "app", "pw"),
			},
			cfg:  kafka.Config{SASL: scram(kafka.ScramSHA256, "app", "pw")},
			want: []string{"cannot create topic hookline.", "Authorization Failed"},
		},
		{
			name:  "topic creation refused by a policy",
			setup: func(c *kfake.Cluster) { refuseCreateTopics(c, 44) }, // POLICY_VIOLATION
			cfg:   kafka.Config{},
			want:  []string{"cannot create topic hookline.", "Policy Violation"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, tc.cluster...)
			if tc.setup != nil {
				tc.setup(c)
			}
			cfg := tc.cfg
			cfg.Brokers = c.ListenAddrs()
			cfg.Partitions = testPartitions
			logger, logs := newLogRecorder(t)
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			start := time.Now()
			tr, err := kafka.New(ctx, cfg, logger)
			took := time.Since(start)
			if err == nil {
				_ = tr.Close()
				t.Fatal("New succeeded")
			}
			if took > failFast || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("New took %v to fail (want at most %v, no retries until the deadline): %v", took, failFast, err)
			}
			t.Logf("New failed after %v: %v", took.Round(time.Millisecond), err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if w := logs.atLeast(slog.LevelWarn); len(w) > 0 {
				t.Errorf("New logged warnings for a failure it did not retry: %q", w)
			}
		})
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestNewRetriesUnreachableBrokers: with nothing listening at the broker
// address, New retries until its context ends (not less), logs one
// warning (not one per retry) and returns an error naming the brokers and
// wrapping the context's error. Brokers that appear while it retries are
// connected to, with one info line.
func TestNewRetriesUnreachableBrokers(t *testing.T) {
	t.Parallel()
	t.Run("never reachable", func(t *testing.T) {
		t.Parallel()
		addr := closedPort(t)
		logger, logs := newLogRecorder(t)
		const wait = 2500 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		start := time.Now()
		tr, err := kafka.New(ctx, kafka.Config{Brokers: []string{addr}, Partitions: testPartitions}, logger)
		took := time.Since(start)
		if err == nil {
			_ = tr.Close()
			t.Fatal("New succeeded with nothing listening")
		}
		if took < wait-50*time.Millisecond || took > wait+failFast {
			t.Errorf("New returned after %v, want about its context's %v", took, wait)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error %q should wrap the deadline and name the broker %s and the last failure", err, addr)
		}
		if n := logs.count(slog.LevelWarn, "cannot reach the brokers"); n != 1 {
			t.Errorf("%d warnings about unreachable brokers, want 1: %q", n, logs.atLeast(slog.LevelWarn))
		}
		if w := logs.atLeast(slog.LevelWarn); len(w) != 1 {
			t.Errorf("logged %d lines at warning level or above, want 1: %q", len(w), w)
		}
	})
	t.Run("reachable later", func(t *testing.T) {
		t.Parallel()
		b := newRestartable(t)
		b.Stop()
		logger, logs := newLogRecorder(t)
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		type result struct {
			tr  *kafka.Transport
			err error
		}
		done := make(chan result, 1)
		go func() {
			tr, err := kafka.New(ctx, kafka.Config{Brokers: b.Addrs(), Partitions: testPartitions}, logger)
			done <- result{tr, err}
		}()
		waitLog(t, logs, slog.LevelWarn, "cannot reach the brokers")
		b.Start(t)
		var r result
		select {
		case r = <-done:
		case <-time.After(waitTimeout):
			t.Fatal("New did not return once the broker was up")
		}
		if r.err != nil {
			t.Fatalf("New: %v", r.err)
		}
		if err := r.tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if n := logs.count(slog.LevelWarn, "cannot reach the brokers"); n != 1 {
			t.Errorf("%d warnings about unreachable brokers, want 1: %q", n, logs.atLeast(slog.LevelWarn))
		}
		if n := logs.count(slog.LevelInfo, "connected to the brokers"); n != 1 {
			t.Errorf("%d info lines about connecting, want 1", n)
		}
	})
}

// waitLog waits (within waitTimeout) until logs holds a record at level
// whose message contains msg.
func waitLog(t testing.TB, logs *logRecorder, level slog.Level, msg string) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for logs.count(level, msg) == 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("no %s log %q within %v; logged: %q", level, msg, waitTimeout, logs.atLeast(slog.LevelInfo))
		}
	}
}

// TestNewRetriesTransientTopicErrors: a retriable error creating the
// topics (a controller moving) is retried, and the brokers, reachable all
// along, are not reported unreachable: New succeeds without a warning.
func TestNewRetriesTransientTopicErrors(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	var refused atomic.Int32
	c.ControlKey(int16(kmsg.CreateTopics), func(r kmsg.Request) (kmsg.Response, error, bool) {
		if refused.Add(1) > 2 {
			return nil, nil, false // the broker handles it
		}
		c.KeepControl()
		req := r.(*kmsg.CreateTopicsRequest)
		resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
		for _, tp := range req.Topics {
			rt := kmsg.NewCreateTopicsResponseTopic()
			rt.Topic = tp.Topic
			rt.ErrorCode = 41 // NOT_CONTROLLER, retriable
			resp.Topics = append(resp.Topics, rt)
		}
		return resp, nil, true
	})
	logger, logs := newLogRecorder(t)
	tr := openLogged(t, kafka.Config{Brokers: c.ListenAddrs()}, logger)
	if n := refused.Load(); n < 3 {
		t.Fatalf("CreateTopics refused %d times, want 2 and then handled", min(n, 2))
	}
	if w := logs.atLeast(slog.LevelWarn); len(w) > 0 {
		t.Errorf("warnings for a cluster that was reachable all along: %q", w)
	}
	roundTrip(t, tr, "transient")
}
