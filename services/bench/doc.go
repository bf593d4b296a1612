// Package bench is Hookline's benchmark harness: it runs `hookline dev` as
// a child process, offers it open-loop load over gRPC, receives the
// webhooks on an in-process HTTP receiver, and reports throughput, latency,
// CPU time and memory per scenario, each throughput figure also as a ratio
// to a baseline measured in the same run (the same POSTs sent straight to
// the same receiver by a plain Go client).
//
// # Method
//
//   - Open loop: events are scheduled at a fixed rate and their scheduled
//     time is written into the payload. Latency runs from an event's
//     scheduled time to its first 2xx receipt at the receiver, so a
//     publisher that falls behind shows up as latency, never as a lower
//     rate.
//   - A ledger that must balance: every (event, subscription) pair that
//     ingest accepted is delivered (received and answered 2xx),
//     dead-lettered (per the admin API), or missing. A scenario with a
//     missing pair after the drain timeout is FAILED and its figures are
//     not reported as results. Duplicates are counted.
//   - The maximum sustainable rate is found by stepping the offered rate up
//     until a step's p99 exceeds a limit or its backlog (scheduled pairs
//     minus delivered pairs) keeps growing; the last passing step is the
//     figure, and latency is then measured at half that rate.
//
// # Transports
//
// By default Hookline runs on NATS JetStream (embedded in `hookline dev`,
// or a nats-server process on the multiprocess stack). With Config.Transport
// TransportKafka every scenario starts a kfake-server process of its own
// and runs Hookline with --transport kafka on it; the floor's broker hops
// then go through package kafka against another kfake-server process, and
// a TransportCheck per scenario sets its rate against those hops alone,
// to tell whether the transport is the bottleneck. kfake is a
// Kafka-protocol test broker in one process, not Kafka: every figure of
// such a run says so (KfakeLabel), and it is rendered between the markers
// MarkerBeginKafka and MarkerEndKafka, apart from the NATS figures.
//
// The package is a library so that the smoke test can run it; the
// hookline-bench command is a thin wrapper around Run.
package bench
