package broker_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/services/internal/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// parse registers the broker flags on a fresh flag set and parses args and
// env into them as the binaries do, then validates.
func parse(t *testing.T, args []string, env map[string]string) (broker.Config, error) {
	t.Helper()
	var c broker.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if err := config.ApplyEnv(fs, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr []string // substrings; none means valid
	}{
		{"defaults are NATS on localhost", nil, nil, nil},
		{"a NATS cluster", []string{"--nats-url", "nats://a:4222,nats://b:4222", "--nats-replicas", "3", "--nats-events-max-bytes", "50GiB", "--nats-deliveries-max-bytes", "10GB"}, nil, nil},
		{"unknown transport", []string{"--transport", "rabbitmq"}, nil, []string{`--transport "rabbitmq": must be nats or kafka`}},
		{"NATS settings out of range", []string{"--nats-replicas", "7", "--nats-storage", "tape", "--nats-duplicate-window", "0s"}, nil,
			[]string{"--nats-replicas 7: must be 1 to 5", `--nats-storage "tape": must be file or memory`, "--nats-duplicate-window 0s: must be positive"}},
		{"a size with an unknown unit", []string{"--nats-events-max-bytes", "5PB"}, nil, []string{`"5PB" is not a size`}},
		{"kafka from the environment", nil, map[string]string{"HOOKLINE_TRANSPORT": "kafka", "HOOKLINE_KAFKA_BROKERS": "k1:9092,k2:9092", "HOOKLINE_KAFKA_REPLICATION_FACTOR": "3"}, nil},
		{"kafka without brokers", []string{"--transport", "kafka"}, nil, []string{"--kafka-brokers: required with --transport kafka"}},
		{"kafka settings, every error at once", []string{"--transport", "kafka", "--kafka-brokers", "k1", "--kafka-partitions", "0", "--kafka-deliveries-retention", "10m", "--kafka-sasl-mechanism", "GSSAPI", "--kafka-tls-cert-file", missing}, nil,
			[]string{`--kafka-brokers "k1": want host:port`, "--kafka-partitions 0: must be at least 1", "--kafka-deliveries-retention 10m0s: must be at least 1h", `--kafka-sasl-mechanism "GSSAPI"`, "--kafka-tls-key-file: must be set when --kafka-tls-cert-file is set"}},
		{"SASL needs its user and password file", []string{"--transport", "kafka", "--kafka-brokers", "k:9092", "--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-password-file", missing}, nil,
			[]string{"--kafka-sasl-user: required", "--kafka-sasl-password-file: open " + missing}},
		{"SASL credentials without a mechanism", []string{"--transport", "kafka", "--kafka-brokers", "k:9092", "--kafka-sasl-user", "u"}, nil, []string{"--kafka-sasl-mechanism: required"}},
		{"SASL complete", []string{"--transport", "kafka", "--kafka-brokers", "k:9092", "--kafka-sasl-mechanism", "scram-sha-256", "--kafka-sasl-user", "u", "--kafka-sasl-password-file", password}, nil, nil},
		{"the other transport's settings are not checked", []string{"--kafka-partitions", "0"}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parse(t, tc.args, tc.env)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("invalid: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("valid, want an error")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantStr string
		wantErr bool
	}{
		{"0", 0, "0", false},
		{"1024", 1024, "1KiB", false},
		{"1000", 1000, "1000", false},
		{"512MiB", 512 << 20, "512MiB", false},
		{"10 GiB", 10 << 30, "10GiB", false},
		{"10GB", 10e9, "9765625KiB", false},
		{"2TiB", 2 << 40, "2TiB", false},
		{"-1", 0, "", true},
		{"1.5GiB", 0, "", true},
		{"GiB", 0, "", true},
		{"9999999TiB", 0, "", true},
		{"", 0, "", true},
	}
	for _, tc := range tests {
		var b broker.ByteSize
		err := b.Set(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("Set(%q): error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if int64(b) != tc.want || b.String() != tc.wantStr {
			t.Errorf("Set(%q) = %d (%s), want %d (%s)", tc.in, int64(b), b.String(), tc.want, tc.wantStr)
		}
	}
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"0", "1KiB", "10 GB", "-3", "9223372036854775807", "8EiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b broker.ByteSize
		if err := b.Set(s); err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("Set(%q) = %d: negative", s, b)
		}
		var again broker.ByteSize
		if err := again.Set(b.String()); err != nil || again != b {
			t.Fatalf("Set(%q) = %d, formatted %q, parsed back as %d (%v)", s, b, b.String(), again, err)
		}
	})
}

// startNATS runs a plain nats-server with JetStream on loopback.
func startNATS(t *testing.T) string {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return s.ClientURL()
}

// TestOpen: the switch connects the transport it names, which then
// carries a message from publisher to consumer.
func TestOpen(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"nats", func(t *testing.T) []string {
			return []string{"--nats-url", startNATS(t), "--nats-storage", "memory"}
		}},
		{"kafka", func(t *testing.T) []string {
			c, err := kfake.NewCluster(kfake.NumBrokers(1))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(c.Close)
			return []string{"--transport", "kafka", "--kafka-brokers", strings.Join(c.ListenAddrs(), ","), "--kafka-partitions", "2"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := parse(t, tc.args(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tr, err := c.Open(ctx, "broker-test", nil)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer tr.Close()
			if _, err := tr.Publish(ctx, transport.Events, transport.Message{ID: "m1", Subject: "acme", Key: "acme", Data: []byte("hello")}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			got := make(chan string, 1)
			cctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- tr.Consume(cctx, transport.Events, transport.ConsumerConfig{Group: "g"}, func(hctx context.Context, m transport.Received) {
					_ = m.Ack(hctx)
					select {
					case got <- string(m.Message().Data):
					default:
					}
				})
			}()
			select {
			case data := <-got:
				if data != "hello" {
					t.Errorf("received %q, want hello", data)
				}
			case <-ctx.Done():
				t.Error("nothing received")
			}
			stop()
			if err := <-done; err != nil {
				t.Errorf("Consume: %v", err)
			}
		})
	}
}
