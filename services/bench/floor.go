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
// embedded JetStream server reached in-process through natsjs, the SQLite
// store), and the rate the machine could reach if nothing else ran. It is
// a lower bound on the cost of a delivery, not an estimate of it: it
// leaves out ingest's gRPC, subscription matching, signing, retries'
// bookkeeping and telemetry, and measures each part at large batches.
type FloorResult struct {
	Messages int `json:"messages"`
	// The CPU time of this process per message for one JetStream hop of
	// each stream, split into its publish and its pull-and-ack.
	EventsPublishUs     float64 `json:"events_publish_cpu_us"`
	EventsConsumeUs     float64 `json:"events_consume_cpu_us"`
	DeliveriesPublishUs float64 `json:"deliveries_publish_cpu_us"`
	DeliveriesConsumeUs float64 `json:"deliveries_consume_cpu_us"`
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
	// own rate; Ratio is it over the baseline's rate.
	PerSecond float64 `json:"per_second"`
	Ratio     float64 `json:"ratio_to_baseline"`
}

// RunFloor measures the parts with messages messages per JetStream stream
// and per store shape, in fresh data under dir.
func RunFloor(ctx context.Context, dir string, messages int, logger *slog.Logger) (*FloorResult, error) {
	ctx, cancel := context.WithTimeout(ctx, floorTimeout)
	defer cancel()
	work, err := os.MkdirTemp(dir, "hookline-floor-")
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	defer func() { _ = os.RemoveAll(work) }()
	f := &FloorResult{Messages: messages}
	if err := f.measureBroker(ctx, filepath.Join(work, "nats"), messages); err != nil {
		return nil, fmt.Errorf("floor: broker: %w", err)
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

// measureBroker publishes and then consumes messages messages on EVENTS
// and on DELIVERIES of a fresh embedded server.
func (f *FloorResult) measureBroker(ctx context.Context, dir string, messages int) error {
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
	for _, s := range []struct {
		stream           transport.Stream
		publish, consume *float64
	}{
		{transport.Events, &f.EventsPublishUs, &f.EventsConsumeUs},
		{transport.Deliveries, &f.DeliveriesPublishUs, &f.DeliveriesConsumeUs},
	} {
		cpu := selfCPU()
		if err := publishFloor(ctx, tr, s.stream, messages); err != nil {
			return fmt.Errorf("publish to %s: %w", s.stream, err)
		}
		*s.publish = perUs(selfCPU()-cpu, messages)
		cpu = selfCPU()
		if err := consumeFloor(ctx, tr, s.stream, messages); err != nil {
			return fmt.Errorf("consume %s: %w", s.stream, err)
		}
		*s.consume = perUs(selfCPU()-cpu, messages)
	}
	return nil
}

// floorMessage is a message as fanout publishes a delivery: a PayloadSize
// body and the hookline-* headers of package wire (those of an event and
// of a delivery, so both hops carry as many).
func floorMessage(id string, data []byte) transport.Message {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	return transport.Message{
		ID:      id,
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

func publishFloor(ctx context.Context, tr *natsjs.Transport, stream transport.Stream, messages int) error {
	data := AppendPayload(nil, time.Now().UnixNano(), 0)
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
					batch = append(batch, floorMessage(string(stream)+"-"+strconv.Itoa(i), data))
				}
				if _, err := tr.Publish(ctx, stream, batch...); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func consumeFloor(ctx context.Context, tr *natsjs.Transport, stream transport.Stream, messages int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var n atomic.Int64
	all := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, stream, transport.ConsumerConfig{Group: "floor", Concurrency: floorConsumers}, func(ctx context.Context, m transport.Received) {
			if err := m.Ack(ctx); err != nil {
				return // redelivered after the ack wait; the count waits for it
			}
			if n.Add(1) == int64(messages) {
				close(all)
			}
		})
	}()
	select {
	case <-all:
	case err := <-done:
		return fmt.Errorf("consumer stopped after %d of %d messages: %w", n.Load(), messages, err)
	case <-ctx.Done():
		return fmt.Errorf("consumed %d of %d messages: %w", n.Load(), messages, ctx.Err())
	}
	cancel()
	return <-done
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
	for _, c := range []struct {
		into   *Ceiling
		store  StoreFloor
		fanout float64
	}{{&f.Ceiling1to1, f.Store1to1, 1}, {&f.Ceiling1to10, f.Store1to10, 10}} {
		c.into.CPUUs = round(events/c.fanout + deliveries + c.store.CPUUs + f.POSTUs)
		if c.into.CPUUs > 0 {
			c.into.PerSecond = float64(cores) * 1e6 / c.into.CPUUs
		}
		if c.store.PerSecond > 0 && c.store.PerSecond < c.into.PerSecond {
			c.into.PerSecond = c.store.PerSecond
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

func perUs(seconds float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return seconds * 1e6 / float64(n)
}
