package multiprocess

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/broker"
)

// The chaos soak: TestChaosSoak runs the multi-process stack (nats-server,
// one ingest, one scheduler, two fanout and two delivery replicas, all
// separate processes, on a PostgreSQL server of the test's own) under a
// steady open-loop load for a set time, and every 10–30 s kills something
// at random: a Hookline process or nats-server with SIGKILL (a supervisor
// starts it again at once), or PostgreSQL with `pg_ctl -m immediate`
// (started again at once). Then it waits for every accepted event to reach
// every subscription and reports the receiver's ledger: events published,
// pairs delivered, dead, missing, duplicates (each with its webhook-id) and
// attempt rows against requests. It fails unless nothing is missing,
// duplicates stay within soakMaxDuplicates of the pairs, every request of
// a pair carries its delivery id as webhook-id, and the attempt history
// holds every request (checkHistory).
//
// HOOKLINE_CHAOS_DURATION sets the time under load (default 90 s, the
// version make test runs; make chaos runs 10 minutes),
// HOOKLINE_CHAOS_SEED the faults' random seed (default: the time),
// HOOKLINE_CHAOS_REPORT a file to write the ledger to as JSON.
//
// nats-server runs with sync_interval: always: JetStream otherwise
// acknowledges a publish before its file store has written it, and a
// SIGKILL of the broker can lose acknowledged messages, which no client
// can make up for (docs/operations.md says the same for production).

const (
	soakSubs          = 5
	soakRate          = 50    // events per second, open loop
	soakMaxDuplicates = 0.005 // of the pairs
	soakBatchMax      = 200   // events per PublishBatch call
	soakCallTimeout   = 5 * time.Second
	// soakStall is how long the drain may go without progress before the
	// soak gives up on the pairs left.
	soakStall = 90 * time.Second
)

// soakFault is one fault injected during the soak, for the ledger.
type soakFault struct {
	At     string `json:"at"`     // time under load when injected
	Target string `json:"target"` // what was killed
	Took   string `json:"took"`   // until it was back
}

// soakLedger is the soak's report.
type soakLedger struct {
	Duration          string         `json:"duration"`
	Seed              uint64         `json:"seed"`
	Rate              int            `json:"rate_events_per_second"`
	Subscriptions     int            `json:"subscriptions"`
	Published         int            `json:"published_events"`
	Pairs             int            `json:"pairs"`
	Delivered         int            `json:"delivered_pairs"`
	Dead              int            `json:"dead_deliveries"`
	Missing           int            `json:"missing_pairs"`
	Duplicates        int            `json:"duplicate_deliveries"`
	DuplicateRate     float64        `json:"duplicate_rate"`
	DuplicateList     []duplicate    `json:"duplicate_list"`
	MultiIDPairs      int            `json:"pairs_with_more_than_one_webhook_id"`
	Requests          int            `json:"requests"`
	AttemptRows       int            `json:"attempt_rows"`
	UnknownRows       int            `json:"attempt_rows_outcome_unknown"`
	Contradictions    int            `json:"history_contradictions"`
	PublishRetries    int64          `json:"publish_calls_retried"`
	MaxPublishLate    string         `json:"max_publish_lateness"`
	DrainTook         string         `json:"drain_after_load"`
	Faults            []soakFault    `json:"faults"`
	DeliveryStatuses  map[string]int `json:"delivery_statuses"`
	UnexpectedExits   []string       `json:"unexpected_exits"`
	ReceiverProblems  int            `json:"bad_requests"`
	FailedOnPurpose   int            `json:"answered_500_on_purpose"`
	LoadTookFromStart string         `json:"load_took"`
}

func TestChaosSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the multi-process stack under faults for 90 s or more; make test runs it")
	}
	duration := envDuration(t, "HOOKLINE_CHAOS_DURATION", 90*time.Second)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("HOOKLINE_CHAOS_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("HOOKLINE_CHAOS_SEED=%q: %v", v, err)
		}
	}
	transport := os.Getenv("HOOKLINE_CHAOS_TRANSPORT")
	if transport == "" {
		transport = broker.NATS
	}
	if transport != broker.NATS && transport != broker.Kafka {
		t.Fatalf("HOOKLINE_CHAOS_TRANSPORT=%q: want %s or %s", transport, broker.NATS, broker.Kafka)
	}
	t.Logf("soak: %v under load on %s, %d events/s to %d subscriptions, fault seed %d", duration, transport, soakRate, soakSubs, seed)

	bin := buildBinaries(t)
	pg := crdbtest.NewPrivate(t)
	c := newCluster(t, bin, migratedDatabase(t, pg.URL()), transport)
	c.syncAlways = true
	grpcAddr := c.startStack()
	api := dialAPI(t, grpcAddr)
	rcv := startReceiver(t, failsFirstAttempt)
	subs := createSubscriptions(t, api, rcv, soakSubs)

	ledger := soakLedger{Duration: duration.String(), Seed: seed, Rate: soakRate, Subscriptions: soakSubs}
	pub := &soakPublisher{api: api, began: time.Now()}
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { pub.run(ctx) })

	ledger.Faults = runFaults(t, c, pg, pub.began, duration, seed)
	stopLoad()
	wg.Wait()
	if pub.err != nil {
		t.Fatalf("publishing: %v", pub.err)
	}
	events := int(pub.published.Load())
	ledger.Published, ledger.Pairs = events, events*soakSubs
	ledger.PublishRetries, ledger.MaxPublishLate = pub.retries.Load(), pub.maxLate.Round(time.Millisecond).String()
	t.Logf("published %d events in %v (%d calls retried, publishing at most %v behind its schedule)",
		events, since(pub.began), ledger.PublishRetries, ledger.MaxPublishLate)

	drainBegan := time.Now()
	db := connectStore(t, c.store)
	waitDrained(t, rcv, db, events)
	ledger.DrainTook = since(drainBegan).String()
	ledger.LoadTookFromStart = since(pub.began).String()

	sum := rcv.tally(events, soakSubs)
	ledger.Delivered, ledger.Missing, ledger.Duplicates = sum.accepted, len(sum.missing), sum.duplicates
	ledger.DuplicateList = rcv.duplicates(events, soakSubs)
	ledger.MultiIDPairs, ledger.ReceiverProblems, ledger.FailedOnPurpose = len(sum.multiIDPairs), sum.nProblems, sum.failedOnPurpose
	if ledger.Pairs > 0 {
		ledger.DuplicateRate = float64(sum.duplicates) / float64(ledger.Pairs)
	}
	ledger.DeliveryStatuses = db.statuses(t)
	ledger.Dead = ledger.DeliveryStatuses["dead"]
	hist := checkHistory(t, db, rcv, subs, events)
	ledger.Requests, ledger.AttemptRows, ledger.UnknownRows, ledger.Contradictions = hist.requests, hist.rows, hist.unknown, hist.nContradictions
	ledger.UnexpectedExits = c.unexpectedExits()
	writeLedger(t, ledger)

	t.Logf("ledger: published %d events = %d pairs; delivered %d, dead %d, missing %d, duplicates %d (%.3f%%); %d requests, %d attempt rows (%d outcome unknown); %d faults; drained in %s",
		ledger.Published, ledger.Pairs, ledger.Delivered, ledger.Dead, ledger.Missing, ledger.Duplicates, 100*ledger.DuplicateRate,
		ledger.Requests, ledger.AttemptRows, ledger.UnknownRows, len(ledger.Faults), ledger.DrainTook)
	for _, d := range ledger.DuplicateList {
		t.Logf("  duplicate: event %d to subscription %d answered 2xx %d times, every request with webhook-id %s", d.Event, d.Subscription, d.Accepted, d.WebhookID)
	}
	checkTally(t, sum)
	reportHistory(t, hist)
	if ledger.DuplicateRate > soakMaxDuplicates {
		t.Errorf("%d duplicate deliveries of %d pairs (%.3f%%); want at most %.1f%%", ledger.Duplicates, ledger.Pairs, 100*ledger.DuplicateRate, 100*soakMaxDuplicates)
	}
	if ledger.Dead > 0 {
		t.Errorf("%d deliveries dead-lettered; every receiver answers 2xx by its second request", ledger.Dead)
	}
	for _, e := range ledger.UnexpectedExits {
		t.Error(e)
	}
}

// envDuration reads a duration from the environment, or returns def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 10m", name, v)
	}
	return d
}

// soakTargets are what the soak kills.
var soakTargets = []string{"ingest", "scheduler", "fanout-1", "fanout-2", "delivery-1", "delivery-2", "broker", "postgres"}

// runFaults injects a fault every 10–30 s until duration has passed since
// began. Targets are drawn from a shuffled round of soakTargets, so every
// kind of fault comes before any repeats.
func runFaults(t *testing.T, c *cluster, pg *crdbtest.Private, began time.Time, duration time.Duration, seed uint64) []soakFault {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var (
		faults []soakFault
		round  []string
	)
	end := began.Add(duration)
	for {
		next := time.Now().Add(10*time.Second + time.Duration(rng.Int64N(int64(20*time.Second))))
		if next.After(end) {
			waitUntil(end)
			return faults
		}
		waitUntil(next)
		if len(round) == 0 {
			round = append([]string(nil), soakTargets...)
			rng.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		}
		target := round[0]
		round = round[1:]
		at, injected := since(began), time.Now()
		switch target {
		case "broker":
			target = c.brokerName()
			c.killBroker()
		case "postgres":
			pg.Kill()
			pg.Start()
		default:
			c.restart(target)
		}
		f := soakFault{At: at.String(), Target: target, Took: since(injected).String()}
		t.Logf("fault at %s: SIGKILL %s (%s) — back in %s", f.At, target, map[bool]string{true: "pg_ctl -m immediate", false: "restarted at once"}[target == "postgres"], f.Took)
		faults = append(faults, f)
	}
}

// waitUntil blocks until the wall clock reaches at: the soak's own pace,
// not a wait for something to happen.
func waitUntil(at time.Time) {
	if d := time.Until(at); d > 0 {
		timer := time.NewTimer(d)
		<-timer.C
	}
}

// soakPublisher publishes soakRate events a second on a fixed schedule
// (open loop: a slow or failing call does not slow the schedule; the
// events due meanwhile go in the next calls), each event with its
// idempotency key, each failed call repeated with the same keys.
type soakPublisher struct {
	api   apiClients
	began time.Time

	published  atomic.Int64 // events accepted: 0..published-1
	retries    atomic.Int64
	duplicates atomic.Int64
	maxLate    time.Duration // written by run only
	err        error         // written by run only
}

// run publishes until ctx ends; a batch begun is carried through.
func (p *soakPublisher) run(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		due := int64(time.Since(p.began).Seconds() * soakRate)
		for p.published.Load() < due && ctx.Err() == nil {
			from := int(p.published.Load())
			n := min(int(due)-from, soakBatchMax)
			if err := p.publish(from, n); err != nil {
				p.err = err
				return
			}
			scheduled := p.began.Add(time.Duration(float64(from+n-1) / soakRate * float64(time.Second)))
			p.maxLate = max(p.maxLate, time.Since(scheduled))
		}
	}
}

// publish publishes events from..from+n-1, repeating the call until it
// succeeds, for up to soakStall.
func (p *soakPublisher) publish(from, n int) error {
	reqs := make([]*hooklinev1.PublishRequest, n)
	for i := range reqs {
		seq := from + i
		reqs[i] = &hooklinev1.PublishRequest{
			Tenant: tenant, EventType: eventType, IdempotencyKey: idempotencyKey(seq),
			Payload: fmt.Appendf(nil, `{"seq":%d}`, seq),
		}
	}
	deadline := time.Now().Add(soakStall)
	for {
		res, err := withTimeout(soakCallTimeout, func(ctx context.Context) (*hooklinev1.PublishBatchResponse, error) {
			return p.api.ingest.PublishBatch(ctx, &hooklinev1.PublishBatchRequest{Events: reqs})
		})
		if err == nil {
			for i, r := range res.GetResults() {
				if want := eventID(from + i); r.GetEventId() != want {
					return fmt.Errorf("event %d got id %s, want %s (derived from its idempotency key)", from+i, r.GetEventId(), want)
				}
				if r.GetDuplicate() {
					p.duplicates.Add(1)
				}
			}
			if len(res.GetResults()) != n {
				return fmt.Errorf("events %d..%d: %d results", from, from+n-1, len(res.GetResults()))
			}
			p.published.Store(int64(from + n))
			return nil
		}
		if !retryable(err) {
			return fmt.Errorf("events %d..%d: %w", from, from+n-1, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("events %d..%d: still failing after %v: %w", from, from+n-1, soakStall, err)
		}
		p.retries.Add(1)
		waitUntil(time.Now().Add(100 * time.Millisecond))
	}
}

// waitDrained waits until every pair of the events published is answered
// 2xx and the store lists every delivery final, failing when neither
// moves for soakStall.
func waitDrained(t *testing.T, rcv *receiver, db storeReader, events int) {
	t.Helper()
	want := events * soakSubs
	lastProgress, lastAccepted, lastFinal := time.Now(), -1, -1
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	report := time.Now()
	for {
		accepted := rcv.acceptedPairs()
		final := db.finalDeliveries(t)
		if accepted >= want && final >= want {
			return
		}
		if accepted != lastAccepted || final != lastFinal {
			lastProgress, lastAccepted, lastFinal = time.Now(), accepted, final
		}
		if time.Since(lastProgress) > soakStall {
			t.Fatalf("no progress for %v: %d of %d pairs delivered, %d deliveries final in the store", soakStall, accepted, want, final)
		}
		if time.Since(report) > 15*time.Second {
			report = time.Now()
			t.Logf("draining: %d of %d pairs delivered, %d deliveries final in the store", accepted, want, final)
		}
		<-tick.C
	}
}

// finalDeliveries counts the tenant's deliveries succeeded or dead.
func (s storeReader) finalDeliveries(t *testing.T) int {
	var n int
	s.query(t, `SELECT count(*) FROM deliveries WHERE tenant = $1 AND status IN ('succeeded', 'dead')`, []any{&n}, tenant)
	return n
}

// statuses counts the tenant's deliveries by status.
func (s storeReader) statuses(t *testing.T) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rows, err := s.conn.Query(ctx, `SELECT status, count(*) FROM deliveries WHERE tenant = $1 GROUP BY status`, tenant)
	if err != nil {
		t.Fatalf("counting deliveries: %v", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			t.Fatalf("counting deliveries: %v", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("counting deliveries: %v", err)
	}
	return out
}

// writeLedger writes the ledger as JSON to HOOKLINE_CHAOS_REPORT, if set.
func writeLedger(t *testing.T, l soakLedger) {
	t.Helper()
	path := os.Getenv("HOOKLINE_CHAOS_REPORT")
	if path == "" {
		return
	}
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatalf("writing the ledger: %v", err)
	}
	t.Logf("ledger written to %s", path)
}
