package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/natsembed"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
	"github.com/hookline/hookline/pkg/transport/natsjs"
	"github.com/hookline/hookline/services/internal/wire"
)

// Floor settings. The batches are larger than the pipeline's own at the
// rates it reaches (fanout and delivery batch what arrives within a
// millisecond or two: about ten at 6,000 deliveries/s), so each part is
// measured at its cheapest.
const (
	// floorPublishBatch is how many messages one Publish call carries
	// (the per-message cost hardly moves between 100 and 1,000).
	floorPublishBatch = 1000
	// floorPublishers are the concurrent Publish callers.
	floorPublishers = 4
	// floorConsumers is the consumer group's concurrency (delivery's
	// default --delivery-concurrency).
	floorConsumers = 256
	// floorStoreWriters are the concurrent store callers and
	// floorStoreBatch the deliveries of each call (at 10, as the pipeline
	// writes them at its maximum rate, the write path costs a third more).
	floorStoreWriters = 16
	floorStoreBatch   = 100
	// floorTimeout bounds each part.
	floorTimeout = 5 * time.Minute
)

// FloorResult is what the parts every delivery must go through cost when
// each runs alone, on the same components `hookline dev` uses (the
// embedded JetStream server reached in-process through natsjs, or on
// Kafka package kafka against a kfake-server process; the SQLite store),
// and the rate the machine could reach if nothing else ran. It is a lower
// bound on the cost of a delivery, not an estimate of it: it leaves out
// ingest's gRPC, subscription matching, signing, retries' bookkeeping and
// telemetry, and measures each part at large batches.
type FloorResult struct {
	Messages int `json:"messages"`
	// Transport is the transport whose hops were measured: TransportNATS
	// (an embedded JetStream server, in this process) or TransportKafka
	// (package kafka against a kfake-server process of its own).
	Transport string `json:"transport"`
	// The CPU time per message for one broker hop of each stream, split
	// into its publish and its pull-and-ack: this process's, plus on
	// Kafka the kfake-server process's.
	EventsPublishUs     float64 `json:"events_publish_cpu_us"`
	EventsConsumeUs     float64 `json:"events_consume_cpu_us"`
	DeliveriesPublishUs float64 `json:"deliveries_publish_cpu_us"`
	DeliveriesConsumeUs float64 `json:"deliveries_consume_cpu_us"`
	// The wall-clock rates of the same phases, messages per second: a
	// publish from its start to the last acknowledged batch, a consume
	// from the first message handed out to the last acknowledged (the
	// consumer group's join left out).
	EventsPublishPerSec     float64 `json:"events_publish_per_second"`
	EventsConsumePerSec     float64 `json:"events_consume_per_second"`
	DeliveriesPublishPerSec float64 `json:"deliveries_publish_per_second"`
	DeliveriesConsumePerSec float64 `json:"deliveries_consume_per_second"`
	// BrokerCPUShare is the broker process's share of the hops' CPU time
	// (Kafka only: the embedded NATS server's is not told apart).
	BrokerCPUShare float64 `json:"broker_process_cpu_share,omitempty"`
	// Hops1to1, Hops1to10 and HopsRetry are the deliveries per second the
	// broker hops alone carry, one phase after another (kfake serves its
	// requests one at a time, in one loop): both hops of a delivery at
	// fan-out 1→1, a tenth of the EVENTS hop and the DELIVERIES hop at
	// 1→10, the DELIVERIES hop alone for a retry. The pipeline's rate
	// against them tells whether the transport is its bottleneck.
	Hops1to1  float64 `json:"broker_hops_1to1_per_second"`
	Hops1to10 float64 `json:"broker_hops_1to10_per_second"`
	HopsRetry float64 `json:"broker_hops_retry_per_second"`
	// StoreSkipped says that the store was not measured (the multiprocess
	// stack, whose store is PostgreSQL): no store parts and no ceilings.
	StoreSkipped bool `json:"store_skipped,omitempty"`
	// Store1to1 and Store1to10 are the store's write path per delivery:
	// fanout's InsertFanout of events with their deliveries, then
	// delivery's RecordAttempts, with one and with ten deliveries per
	// event.
	Store1to1  StoreFloor `json:"store_1to1"`
	Store1to10 StoreFloor `json:"store_1to10"`
	// POSTUs is the baseline's CPU time per POST (client and receiver),
	// the part of a delivery that the HTTP request itself costs.
	POSTUs float64 `json:"post_cpu_us"`
	// Cores are the CPUs the parts share.
	Cores int `json:"cores"`
	// Ceiling1to1 and Ceiling1to10 are the rates these parts alone allow.
	Ceiling1to1  Ceiling `json:"ceiling_1to1"`
	Ceiling1to10 Ceiling `json:"ceiling_1to10"`
}

// StoreFloor is the store's write path measured alone.
type StoreFloor struct {
	Deliveries int     `json:"deliveries"`
	CPUUs      float64 `json:"cpu_us_per_delivery"`
	// PerSecond is the rate the write path reached using every core: SQLite
	// has one writer, so no pipeline on this store can go faster.
	PerSecond float64 `json:"per_second"`
}

// Ceiling is the delivery rate a floor allows.
type Ceiling struct {
	// CPUUs is the floor's CPU time per delivery: every part it goes
	// through once (the EVENTS hop divided among an event's deliveries).
	CPUUs float64 `json:"cpu_us_per_delivery"`
	// PerSecond is the lower of the cores divided by CPUUs and the store's
	// own rate (on Kafka also kfake's hops alone, since kfake serves its
	// requests one at a time); Ratio is it over the baseline's rate.
	PerSecond float64 `json:"per_second"`
	Ratio     float64 `json:"ratio_to_baseline"`
}

// FloorConfig says what RunFloor measures and where.
type FloorConfig struct {
	// Dir receives the floor's fresh data ("": the system's temporary
	// directory).
	Dir string
	// Messages per stream and deliveries per store shape.
	Messages int
	// Transport is TransportNATS ("" too) or TransportKafka, which needs
	// KfakeServer, the kfake-server executable.
	Transport   string
	KfakeServer string
	// SkipStore measures the broker hops only.
	SkipStore bool
}

// RunFloor measures the parts with cfg.Messages messages per stream and
// deliveries per store shape, in fresh data under cfg.Dir.
func RunFloor(ctx context.Context, cfg FloorConfig, logger *slog.Logger) (*FloorResult, error) {
	ctx, cancel := context.WithTimeout(ctx, floorTimeout)
	defer cancel()
	work, err := os.MkdirTemp(cfg.Dir, "hookline-floor-")
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	messages := cfg.Messages
	f := &FloorResult{Messages: messages, Transport: cfg.Transport, StoreSkipped: cfg.SkipStore}
	if f.Transport == "" {
		f.Transport = TransportNATS
	}
	if f.Transport == TransportKafka {
		err = f.measureKafka(ctx, cfg.KfakeServer, filepath.Join(work, "kfake"), messages)
	} else {
		err = f.measureNATS(ctx, filepath.Join(work, "nats"), messages)
	}
	if err != nil {
		return nil, fmt.Errorf("floor: broker: %w", err)
	}
	if cfg.SkipStore {
		return f, nil
	}
	for _, c := range []struct {
		fanout int
		into   *StoreFloor
	}{{1, &f.Store1to1}, {10, &f.Store1to10}} {
		path := filepath.Join(work, "store-"+strconv.Itoa(c.fanout)+".db")
		if *c.into, err = measureStore(ctx, path, messages, c.fanout, logger); err != nil {
			return nil, fmt.Errorf("floor: store at fan-out 1→%d: %w", c.fanout, err)
		}
	}
	return f, nil
}

// measureNATS publishes and then consumes messages messages on EVENTS
// and on DELIVERIES of a fresh embedded server.
func (f *FloorResult) measureNATS(ctx context.Context, dir string, messages int) error {
	ns, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: dir})
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	tr, err := natsjs.New(ctx, natsjs.Config{URL: ns.ClientURL(), Name: "hookline-floor", Options: append(ns.ConnectOptions(), nats.InProcessServer(ns))}, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer func() { _ = tr.Close() }()
	return f.measureHops(ctx, tr, nil, messages, false)
}

// measureKafka starts a kfake-server process (bin) with its data in dir,
// and publishes and then consumes messages messages on EVENTS and on
// DELIVERIES through package kafka, counting kfake-server's CPU time in
// the hops'.
func (f *FloorResult) measureKafka(ctx context.Context, bin, dir string, messages int) (err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("kfake-server directory: %w", err)
	}
	k, addr, err := startKfake(ctx, bin, dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, k.stop()) }()
	tr, err := kafka.New(ctx, kafka.Config{Brokers: []string{addr}, ClientID: "hookline-floor"}, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("kafka on kfake-server %s: %w", addr, err)
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	return f.measureHops(ctx, tr, k, messages, true)
}

// measureHops publishes and then consumes messages messages on EVENTS and
// on DELIVERIES of tr, recording each phase's CPU time per message (this
// process's, plus brokerProc's when not nil) and its rate. keyed gives the
// deliveries a Key per subscription, as fanout does, which partitions
// them on Kafka.
func (f *FloorResult) measureHops(ctx context.Context, tr transport.Transport, brokerProc *child, messages int, keyed bool) error {
	var brokerCPU, totalCPU float64
	cpu := func() (self, broker float64, err error) {
		if brokerProc == nil {
			return selfCPU(), 0, nil
		}
		u, err := readProcUsage(brokerProc.cmd.Process.Pid)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", brokerProc.name, err)
		}
		return selfCPU(), u.CPUSeconds, nil
	}
	phase := func(usPer, perSec *float64, run func() (time.Duration, error)) error {
		self0, broker0, err := cpu()
		if err != nil {
			return err
		}
		d, err := run()
		if err != nil {
			return err
		}
		self1, broker1, err := cpu()
		if err != nil {
			return err
		}
		brokerCPU += broker1 - broker0
		totalCPU += self1 - self0 + broker1 - broker0
		*usPer = perUs(self1-self0+broker1-broker0, messages)
		if d > 0 {
			*perSec = round(float64(messages) / d.Seconds())
		}
		return nil
	}
	for _, s := range []struct {
		stream                   transport.Stream
		publish, consume         *float64
		publishRate, consumeRate *float64
	}{
		{transport.Events, &f.EventsPublishUs, &f.EventsConsumeUs, &f.EventsPublishPerSec, &f.EventsConsumePerSec},
		{transport.Deliveries, &f.DeliveriesPublishUs, &f.DeliveriesConsumeUs, &f.DeliveriesPublishPerSec, &f.DeliveriesConsumePerSec},
	} {
		keys := keyed && s.stream == transport.Deliveries
		if err := phase(s.publish, s.publishRate, func() (time.Duration, error) { return publishFloor(ctx, tr, s.stream, messages, keys) }); err != nil {
			return fmt.Errorf("publish to %s: %w", s.stream, err)
		}
		if err := phase(s.consume, s.consumeRate, func() (time.Duration, error) { return consumeFloor(ctx, tr, s.stream, messages) }); err != nil {
			return fmt.Errorf("consume %s: %w", s.stream, err)
		}
	}
	if brokerProc != nil && totalCPU > 0 {
		f.BrokerCPUShare = round3(brokerCPU / totalCPU)
	}
	return nil
}

// floorSubscriptions is the number of subscription ids the keyed
// deliveries of the floor are spread over, as many as a scenario's.
const floorSubscriptions = subscriptions

// floorMessage is a message as fanout publishes a delivery: a PayloadSize
// body and the hookline-* headers of package wire (those of an event and
// of a delivery, so both hops carry as many), keyed by key when not empty.
func floorMessage(id, key string, data []byte) transport.Message {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return transport.Message{
		ID:      id,
		Key:     key,
		Subject: "acme.order.created",
		Headers: map[string]string{
			wire.HeaderEventID: id, wire.HeaderTenant: "acme", wire.HeaderEventType: "order.created",
			wire.HeaderOccurredAt: now, wire.HeaderReceivedAt: now,
			wire.HeaderDeliveryID: id, wire.HeaderSubscriptionID: "sub_floor", wire.HeaderAttempt: "1",
			wire.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		},
		Data: data,
	}
}

// publishFloor publishes messages messages on stream from
// floorPublishers goroutines, floorPublishBatch per call, keyed by
// subscription when keyed, and returns how long it took.
func publishFloor(ctx context.Context, tr transport.Publisher, stream transport.Stream, messages int, keyed bool) (time.Duration, error) {
	data := AppendPayload(nil, time.Now().UnixNano(), 0)
	start := time.Now()
	var next atomic.Int64
	errs := make([]error, floorPublishers)
	var wg sync.WaitGroup
	for w := range floorPublishers {
		wg.Go(func() {
			batch := make([]transport.Message, 0, floorPublishBatch)
			for {
				first := int(next.Add(floorPublishBatch)) - floorPublishBatch
				if first >= messages {
					return
				}
				batch = batch[:0]
				for i := first; i < min(first+floorPublishBatch, messages); i++ {
					key := ""
					if keyed {
						key = "sub_floor_" + strconv.Itoa(i%floorSubscriptions)
					}
					batch = append(batch, floorMessage(string(stream)+"-"+strconv.Itoa(i), key, data))
				}
				if _, err := tr.Publish(ctx, stream, batch...); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), errors.Join(errs...)
}

// consumeFloor consumes and acknowledges messages messages of stream with
// a group of floorConsumers, and returns the time from the first message
// handed out to the last acknowledged.
func consumeFloor(ctx context.Context, tr transport.Consumer, stream transport.Stream, messages int) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n atomic.Int64
	var first atomic.Int64 // Unix nanoseconds of the first message handed out
	var last time.Time
	all := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, stream, transport.ConsumerConfig{Group: "floor", Concurrency: floorConsumers}, func(ctx context.Context, m transport.Received) {
			first.CompareAndSwap(0, time.Now().UnixNano())
			if err := m.Ack(ctx); err != nil {
				return // redelivered after the ack wait; the count waits for it
			}
			if n.Add(1) == int64(messages) {
				last = time.Now()
				close(all)
			}
		})
	}()
	select {
	case <-all:
	case err := <-done:
		return 0, fmt.Errorf("consumer stopped after %d of %d messages: %w", n.Load(), messages, err)
	case <-ctx.Done():
		return 0, fmt.Errorf("consumed %d of %d messages: %w", n.Load(), messages, ctx.Err())
	}
	cancel()
	return last.Sub(time.Unix(0, first.Load())), <-done
}

// measureStore runs the write path of deliveries deliveries, fanout
// deliveries per event, from floorStoreWriters goroutines on a fresh
// SQLite store at path.
func measureStore(ctx context.Context, path string, deliveries, fanout int, logger *slog.Logger) (StoreFloor, error) {
	entry, err := keyring.Generate("bench")
	if err != nil {
		return StoreFloor{}, err
	}
	ring, err := keyring.Parse(entry)
	if err != nil {
		return StoreFloor{}, err
	}
	st, err := sqlite.Open(ctx, path, sqlite.Options{Keyring: ring}, logger)
	if err != nil {
		return StoreFloor{}, err
	}
	defer func() { _ = st.Close() }()
	subs := make([]string, fanout)
	for i := range subs {
		subs[i] = ids.NewSubscription(time.Now())
	}
	payload := AppendPayload(nil, time.Now().UnixNano(), 0)
	var next atomic.Int64
	errs := make([]error, floorStoreWriters)
	var wg sync.WaitGroup
	cpu, start := selfCPU(), time.Now()
	for w := range floorStoreWriters {
		wg.Go(func() {
			var (
				evs []store.Event
				ds  []store.Delivery
				rs  []store.AttemptResult
			)
			for next.Add(floorStoreBatch) <= int64(deliveries) {
				evs, ds, rs = evs[:0], ds[:0], rs[:0]
				now := time.Now()
				for len(ds) < floorStoreBatch {
					ev := store.Event{ID: ids.NewEvent(now), Tenant: "acme", Type: "order.created", Payload: payload,
						Labels: map[string]string{}, OccurredAt: now, ReceivedAt: now}
					evs = append(evs, ev)
					for _, sub := range subs[:min(fanout, floorStoreBatch-len(ds))] {
						d := store.Delivery{ID: ids.Delivery(ev.ID, sub), EventID: ev.ID, SubscriptionID: sub, Tenant: ev.Tenant,
							EventType: ev.Type, Status: store.DeliveryPending, CreatedAt: now, UpdatedAt: now}
						ds = append(ds, d)
						rs = append(rs, store.AttemptResult{Status: store.DeliverySucceeded, Attempt: store.Attempt{
							DeliveryID: d.ID, Number: 1, EventID: ev.ID, SubscriptionID: sub, Tenant: ev.Tenant,
							StartedAt: now, Duration: time.Millisecond, StatusCode: 200, ResponseBody: []byte("ok")}})
					}
				}
				if err := st.InsertFanout(ctx, evs, ds); err != nil {
					errs[w] = err
					return
				}
				if err := st.RecordAttempts(ctx, rs); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed, used := time.Since(start).Seconds(), selfCPU()-cpu
	if err := errors.Join(errs...); err != nil {
		return StoreFloor{}, err
	}
	done := deliveries / floorStoreBatch * floorStoreBatch
	return StoreFloor{Deliveries: done, CPUUs: round(perUs(used, done)), PerSecond: round(float64(done) / elapsed)}, nil
}

// derive computes the ceilings from the parts, the baseline's CPU per
// POST and rate, and cores.
func (f *FloorResult) derive(b Baseline, cores int) {
	f.Cores = cores
	for _, run := range b.Runs {
		if run.Posts > 0 && (f.POSTUs == 0 || perUs(run.CPUSeconds, run.Posts) < f.POSTUs) {
			f.POSTUs = perUs(run.CPUSeconds, run.Posts) // the cheaper run: the floor must not overstate
		}
	}
	events := f.EventsPublishUs + f.EventsConsumeUs
	deliveries := f.DeliveriesPublishUs + f.DeliveriesConsumeUs
	f.Hops1to1 = round(hopsRate(1, f.EventsPublishPerSec, f.EventsConsumePerSec, f.DeliveriesPublishPerSec, f.DeliveriesConsumePerSec))
	f.Hops1to10 = round(hopsRate(10, f.EventsPublishPerSec, f.EventsConsumePerSec, f.DeliveriesPublishPerSec, f.DeliveriesConsumePerSec))
	f.HopsRetry = round(hopsRate(1, 0, 0, f.DeliveriesPublishPerSec, f.DeliveriesConsumePerSec))
	ceilings := []struct {
		into   *Ceiling
		store  StoreFloor
		fanout float64
		hops   float64
	}{{&f.Ceiling1to1, f.Store1to1, 1, f.Hops1to1}, {&f.Ceiling1to10, f.Store1to10, 10, f.Hops1to10}}
	if f.StoreSkipped {
		ceilings = nil // no store figure: a ceiling without it would flatter the pipeline
	}
	for _, c := range ceilings {
		c.into.CPUUs = round(events/c.fanout + deliveries + c.store.CPUUs + f.POSTUs)
		if c.into.CPUUs > 0 {
			c.into.PerSecond = float64(cores) * 1e6 / c.into.CPUUs
		}
		if c.store.PerSecond > 0 && c.store.PerSecond < c.into.PerSecond {
			c.into.PerSecond = c.store.PerSecond
		}
		// kfake serves every request in one loop: its hops cannot spread
		// over the cores as the CPU bound assumes.
		if f.Transport == TransportKafka && c.hops > 0 && c.hops < c.into.PerSecond {
			c.into.PerSecond = c.hops
		}
		c.into.PerSecond = round(c.into.PerSecond)
		if b.PerSecond > 0 {
			c.into.Ratio = round3(c.into.PerSecond / b.PerSecond)
		}
	}
	for _, p := range []*float64{&f.EventsPublishUs, &f.EventsConsumeUs, &f.DeliveriesPublishUs, &f.DeliveriesConsumeUs, &f.POSTUs} {
		*p = round(*p)
	}
}

// hopsRate is the deliveries per second of the broker hops alone at
// fan-out 1→fanout, their phases one after another: an EVENTS publish and
// consume per event (shared by its fanout deliveries) and a DELIVERIES
// publish and consume per delivery, at the given rates (0: a phase not
// part of it). It is 0 when no phase was measured.
func hopsRate(fanout, eventsPublish, eventsConsume, deliveriesPublish, deliveriesConsume float64) float64 {
	var secs float64
	for _, r := range []struct{ rate, per float64 }{
		{eventsPublish, fanout}, {eventsConsume, fanout}, {deliveriesPublish, 1}, {deliveriesConsume, 1},
	} {
		if r.rate > 0 {
			secs += 1 / (r.rate * r.per)
		}
	}
	if secs == 0 {
		return 0
	}
	return 1 / secs
}

func perUs(seconds float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return seconds * 1e6 / float64(n)
}
