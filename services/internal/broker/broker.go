// Package broker is the one switch between Hookline's transports: the
// --transport flag (nats or kafka) and each transport's connection and
// stream settings, validated up front and turned into a connected
// transport.Transport. Every service binary takes these flags through
// package bootstrap; `hookline dev` takes --transport and the Kafka flags
// (its NATS is embedded); the multi-process tests and benchmarks pass the
// same flags to the binaries. No service knows which transport it runs on.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// The transports --transport names.
const (
	NATS  = "nats"
	Kafka = "kafka"
)

// Config chooses the transport and configures both; only the chosen one's
// settings are validated and used.
type Config struct {
	// Transport is NATS or Kafka.
	Transport string
	// NATS configures the NATS JetStream transport.
	NATS NATSConfig
	// Kafka configures the Kafka transport.
	Kafka KafkaConfig
}

// NATSConfig is the connection to a NATS server or cluster and the
// settings of the streams Hookline creates there.
type NATSConfig struct {
	// URL is the server URL, or several comma-separated.
	URL string
	// Auth is how to authenticate and verify the server.
	Auth natsjs.Auth
	// Replicas is the streams' replication factor: 3 on a cluster.
	Replicas int
	// Storage is "file" or "memory".
	Storage string
	// EventsMaxAge bounds how long EVENTS keeps events for replay.
	EventsMaxAge time.Duration
	// EventsMaxBytes and DeliveriesMaxBytes cap the streams' sizes; 0
	// means no cap.
	EventsMaxBytes, DeliveriesMaxBytes ByteSize
	// DuplicateWindow is how long the servers remember message IDs.
	DuplicateWindow time.Duration
}

// KafkaConfig is the connection to a Kafka cluster and the settings of the
// topics Hookline creates there.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port each.
	Brokers []string
	// Partitions of each stream topic, created when missing.
	Partitions int
	// ReplicationFactor of the topics created: 3 on a cluster.
	ReplicationFactor int
	// EventsRetention and DeliveriesRetention are the topics'
	// retention.ms.
	EventsRetention, DeliveriesRetention time.Duration
	// DuplicateWindow bounds the client-side deduplication windows.
	DuplicateWindow time.Duration
	// SASLMechanism is empty (no SASL), SCRAM-SHA-256, SCRAM-SHA-512 or
	// PLAIN; SASLUser and SASLPasswordFile are its credentials.
	SASLMechanism, SASLUser, SASLPasswordFile string
	// TLS turns TLS on with the system roots; TLSFiles set a CA bundle and
	// a client certificate (either also turns TLS on).
	TLS      bool
	TLSFiles tlsfiles.ClientConfig
}

// RegisterFlags registers --transport and every NATS and Kafka flag on fs,
// with the defaults; the service binaries take them all.
func (c *Config) RegisterFlags(fs *pflag.FlagSet) {
	c.RegisterTransportFlag(fs, "message broker: nats (--nats-*) or kafka (--kafka-*)")
	c.NATS.RegisterFlags(fs)
	c.Kafka.RegisterFlags(fs)
}

// RegisterTransportFlag registers only --transport, with usage: for a
// command that provides NATS itself (`hookline dev`).
func (c *Config) RegisterTransportFlag(fs *pflag.FlagSet, usage string) {
	fs.StringVar(&c.Transport, "transport", NATS, usage)
}

// RegisterFlags registers the NATS flags (--nats-*) on fs.
func (c *NATSConfig) RegisterFlags(fs *pflag.FlagSet) {
	c.Storage = "file"
	fs.StringVar(&c.URL, "nats-url", "nats://127.0.0.1:4222", "NATS server URL(s), comma-separated")
	c.Auth.RegisterFlags(fs, "nats-")
	fs.IntVar(&c.Replicas, "nats-replicas", natsjs.DefaultReplicas, "replicas of each JetStream stream Hookline creates or updates: 3 on a production cluster (1 on a single server)")
	fs.StringVar(&c.Storage, "nats-storage", c.Storage, "storage of the streams: file, or memory (lost when a server restarts: for tests only); cannot change once the streams exist")
	fs.DurationVar(&c.EventsMaxAge, "nats-events-max-age", natsjs.DefaultEventsMaxAge, "how long the EVENTS stream keeps accepted events for replay")
	fs.Var(&c.EventsMaxBytes, "nats-events-max-bytes", "size cap of the EVENTS stream per replica, e.g. 50GiB; the oldest events are dropped beyond it, so size it above fanout's worst lag (0: no cap)")
	fs.Var(&c.DeliveriesMaxBytes, "nats-deliveries-max-bytes", "size cap of the DELIVERIES stream per replica, e.g. 10GiB; when full, new deliveries are refused and fanout retries, nothing is dropped (0: no cap)")
	fs.DurationVar(&c.DuplicateWindow, "nats-duplicate-window", natsjs.DefaultDuplicateWindow, "how long the servers remember message IDs to drop republished copies; keep it longer than --fanout-ack-wait and the scheduler's claim lease, and short (every ID of the window is held in the servers' memory)")
}

// RegisterFlags registers the Kafka flags (--kafka-*) on fs.
func (c *KafkaConfig) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringSliceVar(&c.Brokers, "kafka-brokers", nil, "Kafka bootstrap brokers, host:port, comma-separated (required with --transport kafka)")
	fs.IntVar(&c.Partitions, "kafka-partitions", kafka.DefaultPartitions, "partitions of each topic Hookline creates (hookline.events, hookline.deliveries); bounds a consumer group's parallelism; an existing topic with fewer is an error")
	fs.IntVar(&c.ReplicationFactor, "kafka-replication-factor", kafka.DefaultReplicationFactor, "replication factor of the topics Hookline creates: 3 on a production cluster")
	fs.DurationVar(&c.EventsRetention, "kafka-events-retention", kafka.DefaultEventsRetention, "retention of hookline.events (replay window)")
	fs.DurationVar(&c.DeliveriesRetention, "kafka-deliveries-retention", kafka.DefaultDeliveryRetention, "retention of hookline.deliveries; longer than any consumer lag, or undelivered work is dropped")
	fs.DurationVar(&c.DuplicateWindow, "kafka-duplicate-window", kafka.DefaultDuplicateWindow, "how long producers and consumers remember message IDs to skip copies (Kafka has no broker-side deduplication)")
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", "", "SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (empty: no SASL)")
	fs.StringVar(&c.SASLUser, "kafka-sasl-user", "", "SASL user name; its password is read from --kafka-sasl-password-file")
	fs.StringVar(&c.SASLPasswordFile, "kafka-sasl-password-file", "", "file holding the SASL password (one line), read at start; no flag or variable takes the password itself")
	fs.BoolVar(&c.TLS, "kafka-tls", false, "connect to the brokers over TLS, verifying them against the system roots (or --kafka-tls-ca-file)")
	fs.StringVar(&c.TLSFiles.CAFile, "kafka-tls-ca-file", "", "PEM CA bundle the brokers' certificates are verified against; turns TLS on")
	fs.StringVar(&c.TLSFiles.CertFile, "kafka-tls-cert-file", "", "PEM client certificate presented to the brokers (mutual TLS); turns TLS on")
	fs.StringVar(&c.TLSFiles.KeyFile, "kafka-tls-key-file", "", "PEM private key of --kafka-tls-cert-file")
}

// Validate reports every problem with the chosen transport's settings,
// each naming its flag.
func (c *Config) Validate() error {
	switch c.Transport {
	case NATS:
		return c.NATS.Validate()
	case Kafka:
		return c.Kafka.Validate()
	}
	return fmt.Errorf("--transport %q: must be %s or %s", c.Transport, NATS, Kafka)
}

// Validate reports every problem with the NATS settings.
func (c *NATSConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("--nats-url: must not be empty"))
	}
	if err := c.Auth.Validate("nats-"); err != nil {
		errs = append(errs, err)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("--nats-replicas %d: must be 1 to 5 (JetStream's limit)", c.Replicas))
	}
	if _, err := c.storage(); err != nil {
		errs = append(errs, err)
	}
	if c.EventsMaxAge <= 0 {
		errs = append(errs, fmt.Errorf("--nats-events-max-age %v: must be positive", c.EventsMaxAge))
	}
	if c.DuplicateWindow <= 0 {
		errs = append(errs, fmt.Errorf("--nats-duplicate-window %v: must be positive", c.DuplicateWindow))
	}
	return errors.Join(errs...)
}

func (c *NATSConfig) storage() (jetstream.StorageType, error) {
	switch c.Storage {
	case "file":
		return jetstream.FileStorage, nil
	case "memory":
		return jetstream.MemoryStorage, nil
	}
	return 0, fmt.Errorf("--nats-storage %q: must be file or memory", c.Storage)
}

// Validate reports every problem with the Kafka settings.
func (c *KafkaConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("--kafka-brokers: required with --transport kafka"))
	}
	for _, b := range c.Brokers {
		if host, port, err := net.SplitHostPort(b); err != nil || host == "" || port == "" {
			errs = append(errs, fmt.Errorf("--kafka-brokers %q: want host:port", b))
		}
	}
	if c.Partitions < 1 {
		errs = append(errs, fmt.Errorf("--kafka-partitions %d: must be at least 1", c.Partitions))
	}
	if c.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("--kafka-replication-factor %d: must be at least 1", c.ReplicationFactor))
	}
	for flag, d := range map[string]time.Duration{"kafka-events-retention": c.EventsRetention, "kafka-deliveries-retention": c.DeliveriesRetention, "kafka-duplicate-window": c.DuplicateWindow} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s %v: must be positive", flag, d))
		}
	}
	if c.DeliveriesRetention > 0 && c.DeliveriesRetention < time.Hour {
		errs = append(errs, fmt.Errorf("--kafka-deliveries-retention %v: must be at least 1h (undelivered work older than the retention is dropped by the brokers)", c.DeliveriesRetention))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
		if c.SASLUser != "" || c.SASLPasswordFile != "" {
			errs = append(errs, errors.New("--kafka-sasl-mechanism: required when --kafka-sasl-user or --kafka-sasl-password-file is set"))
		}
	case kafka.ScramSHA256, kafka.ScramSHA512, kafka.Plain:
		if c.SASLUser == "" {
			errs = append(errs, errors.New("--kafka-sasl-user: required with --kafka-sasl-mechanism"))
		}
		if c.SASLPasswordFile == "" {
			errs = append(errs, errors.New("--kafka-sasl-password-file: required with --kafka-sasl-mechanism"))
		} else if _, err := readSecret(c.SASLPasswordFile); err != nil {
			errs = append(errs, fmt.Errorf("--kafka-sasl-password-file: %w", err))
		}
	default:
		errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %q: must be %s, %s or %s", c.SASLMechanism, kafka.ScramSHA256, kafka.ScramSHA512, kafka.Plain))
	}
	if err := c.TLSFiles.Validate("kafka-tls-"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tlsOn reports whether the Kafka connections use TLS.
func (c *KafkaConfig) tlsOn() bool {
	return c.TLS || c.TLSFiles.CAFile != "" || c.TLSFiles.CertFile != ""
}

// Open connects the chosen transport, creating or updating its streams or
// topics, and returns it; name identifies the connection in the broker's
// monitoring and logs (the binary's name). It retries an unreachable
// broker until ctx ends and fails at once on what retrying cannot cure
// (refused credentials, settings the broker refuses).
func (c *Config) Open(ctx context.Context, name string, logger *slog.Logger) (transport.Transport, error) {
	switch c.Transport {
	case NATS:
		storage, err := c.NATS.storage()
		if err != nil {
			return nil, err
		}
		tr, err := natsjs.New(ctx, natsjs.Config{
			URL: c.NATS.URL, Name: name, Auth: c.NATS.Auth, Replicas: c.NATS.Replicas, Storage: storage,
			EventsMaxAge: c.NATS.EventsMaxAge, EventsMaxBytes: int64(c.NATS.EventsMaxBytes), DeliveriesMaxBytes: int64(c.NATS.DeliveriesMaxBytes),
			DuplicateWindow: c.NATS.DuplicateWindow,
		}, logger)
		if err != nil {
			return nil, fmt.Errorf("connect to NATS: %w", err)
		}
		return tr, nil
	case Kafka:
		kc, err := c.Kafka.transportConfig(name)
		if err != nil {
			return nil, err
		}
		tr, err := kafka.New(ctx, kc, logger)
		if err != nil {
			return nil, fmt.Errorf("connect to Kafka: %w", err)
		}
		return tr, nil
	}
	return nil, fmt.Errorf("--transport %q: must be %s or %s", c.Transport, NATS, Kafka)
}

// transportConfig is the kafka.Config of c, with the password and TLS
// files read.
func (c *KafkaConfig) transportConfig(name string) (kafka.Config, error) {
	kc := kafka.Config{
		Brokers: c.Brokers, ClientID: name, Partitions: c.Partitions, ReplicationFactor: c.ReplicationFactor,
		EventsRetention: c.EventsRetention, DeliveriesRetention: c.DeliveriesRetention, DuplicateWindow: c.DuplicateWindow,
	}
	if c.SASLMechanism != "" {
		password, err := readSecret(c.SASLPasswordFile)
		if err != nil {
			return kafka.Config{}, fmt.Errorf("--kafka-sasl-password-file: %w", err)
		}
		kc.SASL = &kafka.SASL{Mechanism: strings.ToUpper(c.SASLMechanism), Username: c.SASLUser, Password: password}
	}
	if c.tlsOn() {
		cfg, err := c.TLSFiles.TLSConfig()
		if err != nil {
			return kafka.Config{}, fmt.Errorf("--kafka-tls-*: %w", err)
		}
		kc.TLS = cfg
	}
	return kc, nil
}
