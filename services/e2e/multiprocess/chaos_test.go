// Package multiprocess runs Hookline the way a deployment does — a broker
// and the four service binaries as separate operating-system processes
// (one ingest, one scheduler, two fanout and two delivery replicas) on one
// shared store — and breaks it while it works. The broker is nats-server
// with JetStream, or kfake-server (a Kafka-protocol test broker, not
// Kafka) for the same tests on the Kafka transport.
//
// TestMultiProcessChaos, once per transport, publishes 2,000 events to 10
// subscriptions while it SIGKILLs a delivery replica, restarts the broker
// and SIGKILLs a
// fanout replica (each killed replica is replaced, as a supervisor would),
// and proves that:
//
//   - every (event, subscription) pair — 20,000 of them — reaches its
//     endpoint and is answered 2xx: nothing accepted is lost to a crash,
//     to the broker going away, or to a retry;
//   - every request of a pair carries the same webhook-id, the delivery id
//     derived from the event and the subscription, so a receiver can
//     discard the duplicates that at-least-once delivery allows;
//   - every request is signed with its subscription's secret;
//   - a batch whose publish failed while the broker was down, published
//     again with the same idempotency keys, gets the same event ids, and
//     its events are delivered once per subscription like any other (no
//     second webhook-id);
//   - the services reconnect to the restarted broker on their own, and
//     none of them exits unless killed;
//   - the store agrees: every delivery ends `succeeded`;
//   - the attempt history holds every request the receiver saw (an
//     attempt cut short by a crash recorded with its outcome unknown),
//     and no attempt with an outcome the receiver did not see.
//
// One pair in ten is answered 500 on its first request, so the retry path
// through the scheduler runs under the same faults. nats-server is
// restarted the way an operator should, in lame duck mode (SIGUSR2): it
// writes JetStream's state before letting its clients go, so the clients
// trust it and record no attempt as unknown for the switch; kfake-server
// is stopped with SIGTERM, which writes its state. (TestChaosSoak
// SIGKILLs the broker, with every write synced.)
//
// The binaries are built without the race detector, even under
// `go test -race`, to keep the run short. The store is PostgreSQL through
// the CockroachDB store, the only store the service binaries take.
package multiprocess

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/store/crdb/crdbtest"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/broker"
)

const (
	tenant    = "chaos"
	eventType = "order.created"
	numSubs   = 10
	numEvents = 2000
	batchSize = 50
	// aheadEvents bounds the events published but not yet delivered to
	// every subscription, so publishing spans the run and every fault
	// lands while all stages are busy.
	aheadEvents = 300

	publishTimeout  = 60 * time.Second // per batch, retries included
	paceTimeout     = 90 * time.Second // waiting for deliveries to catch up
	deliveryTimeout = 3 * time.Minute  // after the last publish
	storeTimeout    = 60 * time.Second // for the store to show every delivery succeeded
)

// retrySchedule of every subscription: short, and long enough in total
// (over five minutes) that no delivery dead-letters while a replica's
// messages wait out an ack wait, or while a loaded machine makes the
// receiver slow to answer.
var retrySchedule = []time.Duration{time.Second, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, 60 * time.Second, 60 * time.Second, 60 * time.Second, 60 * time.Second}

// failsFirstAttempt picks the pairs whose first request is answered 500:
// one in ten, spread over every subscription.
func failsFirstAttempt(p pair) bool { return (p.event+p.sub)%10 == 7 }

func TestMultiProcessChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds five binaries and runs seven processes (about 20 s); make test runs it")
	}
	bin := buildBinaries(t)
	// One transport after the other: each run is seven processes under
	// load.
	for _, transport := range []string{broker.NATS, broker.Kafka} {
		t.Run(transport, func(t *testing.T) { runChaos(t, bin, transport) })
	}
}

// runChaos is TestMultiProcessChaos on one transport.
func runChaos(t *testing.T, bin, transport string) {
	began := time.Now()

	// The store is a PostgreSQL server of the test's own, so the test can
	// kill it (the machine's shared server serves other tests meanwhile).
	pg := crdbtest.NewPrivate(t)
	c := newCluster(t, bin, migratedDatabase(t, pg.URL()), transport)
	grpcAddr := c.startStack()
	t.Logf("cluster ready in %v (store %s)", since(began), storeKind(c.store))
	checkMetrics(t, c.services["delivery-1"], "hookline-delivery")

	// The subscriptions are created while every service runs, and the
	// first event follows at once: fanout syncs its subscription cache
	// with the store's subscription revision before each event, so both
	// replicas match all ten from the first event on (a lag there shows
	// as missing pairs among the first events).
	api := dialAPI(t, grpcAddr)
	rcv := startReceiver(t, failsFirstAttempt)
	subs := createSubscriptions(t, api, rcv, numSubs)

	loadBegan := time.Now()
	pub := &publisher{t: t, api: api, rcv: rcv}
	pub.run([]fault{
		{at: numEvents / 4, name: "SIGKILL delivery-1, start a replacement", inject: func(*publisher) { c.restart("delivery-1") }},
		{at: numEvents * 2 / 5, name: "restart " + c.brokerName(), inject: func(p *publisher) {
			c.stopBroker()
			p.publishWhileBrokerDown()
			c.startBroker()
		}},
		{at: numEvents * 11 / 20, name: "SIGKILL fanout-2, start a replacement", inject: func(*publisher) { c.restart("fanout-2") }},
		{at: numEvents * 7 / 10, name: "kill PostgreSQL (-m immediate), start it again", inject: func(*publisher) {
			pg.Kill()
			// Every service says it is not ready while its store is gone,
			// and says why; then the server comes back.
			for _, name := range []string{"ingest", "fanout-1", "delivery-1", "scheduler"} {
				c.services[name].waitNotReady(t, "database server")
			}
			pg.Start()
			c.waitReady(c.services["ingest"], c.services["fanout-1"], c.services["delivery-1"], c.services["scheduler"])
		}},
	})
	t.Logf("published %d events in %v: %d publish calls retried, %d events answered duplicate=true",
		numEvents, since(loadBegan), pub.retries, pub.duplicates)

	waitAllAccepted(t, rcv, api, subs)
	loadTook := since(loadBegan)

	sum := rcv.tally(numEvents, numSubs)
	checkTally(t, sum)
	for _, e := range c.unexpectedExits() {
		t.Error(e)
	}
	checkStoreSucceeded(t, api, rcv, subs)
	reportHistory(t, checkHistory(t, connectStore(t, c.store), rcv, subs, numEvents))
	t.Logf("%d requests for %d distinct pairs (of %d): %d answered 500 on purpose, %d duplicate deliveries (2xx beyond the first of a pair), all with their pair's webhook-id",
		sum.requests, sum.accepted, numEvents*numSubs, sum.failedOnPurpose, sum.duplicates)
	t.Logf("load took %v from the first publish to the last pair delivered; %v in all", loadTook, since(began))
}

func since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }

func storeKind(store string) string {
	kind, _, _ := strings.Cut(store, ":")
	return kind
}

// apiClients are the clients of ingest's gRPC API.
type apiClients struct {
	ingest hooklinev1.IngestServiceClient
	admin  hooklinev1.AdminServiceClient
}

// dialAPI connects to ingest's gRPC API until the test ends.
func dialAPI(t *testing.T, addr string) apiClients {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+operatorKey), method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatalf("dialing ingest: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return apiClients{ingest: hooklinev1.NewIngestServiceClient(conn), admin: hooklinev1.NewAdminServiceClient(conn)}
}

// withTimeout calls f with a context that expires after d.
func withTimeout[T any](d time.Duration, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return f(ctx)
}

// createSubscriptions creates n subscriptions to eventType, the i-th
// pointing at the receiver's /hooks/<i>, tells the receiver their ids and
// secrets, and returns their ids.
func createSubscriptions(t *testing.T, a apiClients, rcv *receiver, n int) []string {
	t.Helper()
	schedule := make([]*durationpb.Duration, len(retrySchedule))
	for i, d := range retrySchedule {
		schedule[i] = durationpb.New(d)
	}
	var subs []*hooklinev1.Subscription
	for i := range n {
		req := &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
			Tenant: tenant, Url: rcv.hookURL(i), EventTypes: []string{"order.*"},
			RetrySchedule: schedule, Timeout: durationpb.New(2 * time.Second),
		}}
		sub, err := withTimeout(30*time.Second, func(ctx context.Context) (*hooklinev1.Subscription, error) {
			return a.admin.CreateSubscription(ctx, req)
		})
		if err != nil {
			t.Fatalf("creating subscription %d: %v", i, err)
		}
		subs = append(subs, sub)
	}
	rcv.setSubscriptions(t, subs)
	subIDs := make([]string, len(subs))
	for i, s := range subs {
		subIDs[i] = s.GetId()
	}
	return subIDs
}

// idempotencyKey is the key of event seq; eventID the id ingest derives
// from it.
func idempotencyKey(seq int) string { return fmt.Sprintf("chaos-event-%d", seq) }
func eventID(seq int) string        { return ids.EventFromIdempotencyKey(tenant, idempotencyKey(seq)) }

// checkMetrics reads a service's /metrics: the Prometheus text format
// with the Go runtime's collector and the service's resource.
func checkMetrics(t *testing.T, p *process, binary string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + p.opsAddr + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v", p.name, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s /metrics: %s %v", p.name, resp.Status, err)
	}
	for _, want := range []string{"go_goroutines ", `service_name="` + binary + `"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%s /metrics lacks %q", p.name, want)
		}
	}
}
