// Package e2e runs the whole pipeline — the four services on the real
// embedded NATS server and a SQLite file — against HTTP receivers on
// loopback, and checks the guarantees users rely on. The tests of the
// pipeline's guarantees run on both transports (forEachTransport): on
// NATS JetStream and on Kafka (kfake, in process), the same test code.
package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/signature"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/cli"
)

const tenant = "acme"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func subscribe(t *testing.T, p *pipeline, r *receiver, patterns []string, schedule ...time.Duration) *hooklinev1.Subscription {
	t.Helper()
	sub := &hooklinev1.Subscription{Tenant: tenant, Url: r.URL(), EventTypes: patterns}
	for _, d := range schedule {
		sub.RetrySchedule = append(sub.RetrySchedule, durationpb.New(d))
	}
	got, err := p.admin.CreateSubscription(ctxT(t), &hooklinev1.CreateSubscriptionRequest{Subscription: sub})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	if len(got.GetSecrets()) != 1 {
		t.Fatalf("new subscription has %d secrets, want 1", len(got.GetSecrets()))
	}
	r.setSecret(got.GetSecrets()[0].GetValue())
	return got
}

func publish(t *testing.T, p *pipeline, typ string, seq int, key string) *hooklinev1.PublishResponse {
	t.Helper()
	payload := fmt.Sprintf(`{"type":%q,"seq":%d}`, typ, seq)
	res, err := p.ingest.Publish(ctxT(t), &hooklinev1.PublishRequest{Tenant: tenant, EventType: typ, Payload: []byte(payload), IdempotencyKey: key})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return res
}

func listAll[T any](t *testing.T, page func(token string) ([]T, string, error)) []T {
	t.Helper()
	var all []T
	token := ""
	for {
		items, next, err := page(token)
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		token = next
	}
}

func attempts(t *testing.T, p *pipeline, f *hooklinev1.ListAttemptsRequest) []*hooklinev1.Attempt {
	return listAll(t, func(token string) ([]*hooklinev1.Attempt, string, error) {
		f.PageToken = token
		f.PageSize = 200
		res, err := p.admin.ListAttempts(ctxT(t), f)
		return res.GetAttempts(), res.GetNextPageToken(), err
	})
}

func deliveriesOf(t *testing.T, p *pipeline, f *hooklinev1.ListDeliveriesRequest) []*hooklinev1.Delivery {
	return listAll(t, func(token string) ([]*hooklinev1.Delivery, string, error) {
		f.PageToken = token
		f.PageSize = 200
		res, err := p.admin.ListDeliveries(ctxT(t), f)
		return res.GetDeliveries(), res.GetNextPageToken(), err
	})
}

// TestFanOutByPattern: three subscriptions with different patterns, 100
// events of mixed types; each receiver gets exactly its matching events,
// every signature verifies, every attempt is listed by the admin API.
func TestFanOutByPattern(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		orders, invoices, all := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
		subs := []*hooklinev1.Subscription{
			subscribe(t, p, orders, []string{"order.*"}),
			subscribe(t, p, invoices, []string{"invoice.paid", "invoice.voided"}),
			subscribe(t, p, all, []string{"*"}),
		}
		types := []string{"order.created", "order.item.added", "invoice.paid", "invoice.created", "customer.updated"}
		want := map[*receiver]map[string]bool{orders: {}, invoices: {}, all: {}}
		for i := range 100 {
			typ := types[i%len(types)]
			res := publish(t, p, typ, i, "")
			want[all][res.GetEventId()] = true
			switch typ {
			case "order.created", "order.item.added":
				want[orders][res.GetEventId()] = true
			case "invoice.paid":
				want[invoices][res.GetEventId()] = true
			}
		}
		total := len(want[orders]) + len(want[invoices]) + len(want[all])
		for r, ids := range want {
			poll.Until(t, "every matching event delivered", func() bool { return len(uniqueEvents(t, p, r)) >= len(ids) })
		}
		for i, r := range []*receiver{orders, invoices, all} {
			got := uniqueEvents(t, p, r)
			if len(got) != len(want[r]) {
				t.Errorf("receiver %d got %d events, want %d", i, len(got), len(want[r]))
			}
			for id := range got {
				if !want[r][id] {
					t.Errorf("receiver %d got event %s it did not subscribe to", i, id)
				}
			}
			for _, bad := range r.badSignatures() {
				t.Errorf("receiver %d: signature does not verify: %s", i, bad)
			}
			// An attempt is recorded after its response arrives: wait for
			// the records of the requests received, then compare.
			requests := r.Count()
			var listed []*hooklinev1.Attempt
			poll.UntilReason(t, "every request listed as an attempt", func() (bool, string) {
				listed = attempts(t, p, &hooklinev1.ListAttemptsRequest{Tenant: tenant, SubscriptionId: subs[i].GetId()})
				return len(listed) >= requests, fmt.Sprintf("receiver %d: %d requests, %d attempts listed", i, requests, len(listed))
			})
			if len(listed) != r.Count() {
				t.Errorf("receiver %d got %d requests but the admin API lists %d attempts", i, r.Count(), len(listed))
			}
		}
		poll.Until(t, "every attempt listed", func() bool {
			return len(attempts(t, p, &hooklinev1.ListAttemptsRequest{Tenant: tenant})) >= total
		})
	})
}

// uniqueEvents is the set of event ids a receiver accepted (answered 2xx),
// mapping each request's webhook-id (the delivery id) to its event with
// one listing.
func uniqueEvents(t *testing.T, p *pipeline, r *receiver) map[string]bool {
	// Requests first: every delivery they name is stored before it is sent,
	// so the listing that follows holds it.
	reqs := r.Requests()
	eventOf := map[string]string{}
	for _, d := range deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{Tenant: tenant}) {
		eventOf[d.GetId()] = d.GetEventId()
	}
	out := map[string]bool{}
	for _, req := range reqs {
		if req.Status < 200 || req.Status > 299 {
			continue
		}
		ev, ok := eventOf[req.WebhookID]
		if !ok {
			t.Fatalf("receiver got webhook-id %q, which is no delivery", req.WebhookID)
		}
		out[ev] = true
	}
	return out
}

// TestRetryThenSuccess: the receiver fails twice, then answers 200.
func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		r := newReceiver(t, func(_ string, n int) int {
			if n <= 2 {
				return http.StatusInternalServerError
			}
			return http.StatusOK
		})
		sub := subscribe(t, p, r, []string{"*"}, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond)
		publish(t, p, "order.created", 1, "")
		var d *hooklinev1.Delivery
		poll.Until(t, "delivery succeeded", func() bool {
			ds := deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{SubscriptionId: sub.GetId()})
			if len(ds) == 1 && ds[0].GetStatus() == hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED {
				d = ds[0]
				return true
			}
			return false
		})
		got := r.Requests()
		if len(got) != 3 {
			t.Fatalf("receiver got %d requests, want 3", len(got))
		}
		for _, g := range got {
			if g.WebhookID != d.GetId() {
				t.Errorf("webhook-id %q differs from the delivery id %q", g.WebhookID, d.GetId())
			}
		}
		as := attempts(t, p, &hooklinev1.ListAttemptsRequest{DeliveryId: d.GetId()})
		if len(as) != 3 || d.GetAttempts() != 3 {
			t.Fatalf("%d attempts listed, delivery says %d; want 3", len(as), d.GetAttempts())
		}
		sort.Slice(as, func(i, j int) bool { return as[i].GetNumber() < as[j].GetNumber() })
		for i, a := range as {
			wantCode := int32(500)
			if i == 2 {
				wantCode = 200
			}
			if a.GetNumber() != int32(i+1) || a.GetStatusCode() != wantCode {
				t.Errorf("attempt %d: number %d status %d, want status %d", i, a.GetNumber(), a.GetStatusCode(), wantCode)
			}
		}
	})
}

// TestDeadAfterSchedule: the receiver always fails; with a schedule of two
// retries the delivery ends dead after three attempts.
func TestDeadAfterSchedule(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		r := newReceiver(t, func(string, int) int { return http.StatusInternalServerError })
		sub := subscribe(t, p, r, []string{"*"}, 30*time.Millisecond, 30*time.Millisecond)
		publish(t, p, "order.created", 1, "")
		var d *hooklinev1.Delivery
		poll.Until(t, "delivery dead", func() bool {
			ds := deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{SubscriptionId: sub.GetId()})
			if len(ds) == 1 && ds[0].GetStatus() == hooklinev1.DeliveryStatus_DELIVERY_STATUS_DEAD {
				d = ds[0]
				return true
			}
			return false
		})
		if as := attempts(t, p, &hooklinev1.ListAttemptsRequest{DeliveryId: d.GetId()}); len(as) != 3 {
			t.Fatalf("%d attempts, want 3", len(as))
		}
		if n := r.Count(); n != 3 {
			t.Fatalf("receiver got %d requests, want 3", n)
		}
	})
}

// TestGoneDisablesAndParks: a 410 disables the subscription; events
// published while it is disabled are parked, and enabling delivers them.
func TestGoneDisablesAndParks(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		var gone atomic.Bool
		gone.Store(true)
		r := newReceiver(t, func(string, int) int {
			if gone.Load() {
				return http.StatusGone
			}
			return http.StatusOK
		})
		sub := subscribe(t, p, r, []string{"*"}, 20*time.Millisecond)
		publish(t, p, "order.created", 0, "")
		poll.Until(t, "subscription disabled by 410", func() bool {
			s, err := p.admin.GetSubscription(ctxT(t), &hooklinev1.GetSubscriptionRequest{Id: sub.GetId()})
			return err == nil && s.GetState() == hooklinev1.SubscriptionState_SUBSCRIPTION_STATE_DISABLED
		})
		gone.Store(false)
		for i := 1; i <= 5; i++ {
			publish(t, p, "order.created", i, "")
		}
		poll.Until(t, "six deliveries parked", func() bool {
			ds := deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{SubscriptionId: sub.GetId(), Status: hooklinev1.DeliveryStatus_DELIVERY_STATUS_PARKED})
			return len(ds) == 6
		})
		before := r.Count()
		if before != 1 {
			t.Fatalf("receiver got %d requests while disabled, want only the first", before)
		}
		if _, err := p.admin.EnableSubscription(ctxT(t), &hooklinev1.EnableSubscriptionRequest{Id: sub.GetId()}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, "all six delivered after enable", func() bool {
			ds := deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{SubscriptionId: sub.GetId(), Status: hooklinev1.DeliveryStatus_DELIVERY_STATUS_SUCCEEDED})
			return len(ds) == 6
		})
	})
}

// TestIdempotencyKey: the same key twice gives one event id, duplicate=true
// and one delivery.
func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		r := newReceiver(t, nil)
		sub := subscribe(t, p, r, []string{"*"})
		first := publish(t, p, "order.created", 1, "key-1")
		second := publish(t, p, "order.created", 1, "key-1")
		if first.GetDuplicate() || !second.GetDuplicate() || first.GetEventId() != second.GetEventId() {
			t.Fatalf("first %v, second %v: want one id, duplicate only on the second", first, second)
		}
		// A sentinel event published after both proves the pipeline drained.
		sentinel := publish(t, p, "order.created", 2, "")
		poll.Until(t, "sentinel delivered", func() bool { return uniqueEvents(t, p, r)[sentinel.GetEventId()] })
		ds := deliveriesOf(t, p, &hooklinev1.ListDeliveriesRequest{SubscriptionId: sub.GetId(), EventId: first.GetEventId()})
		if len(ds) != 1 {
			t.Fatalf("%d deliveries of the event, want 1", len(ds))
		}
		distinct := map[string]bool{}
		for _, req := range r.Requests() {
			distinct[req.WebhookID] = true
		}
		if len(distinct) != 2 {
			t.Fatalf("receiver got %d distinct webhook-ids, want 2 (the event once, the sentinel)", len(distinct))
		}
	})
}

// TestSecretRotation: after a rotation every delivery is signed with both
// the new secret and the old one until the old one's grace period ends;
// a rotation with no grace period drops the old one at once.
func TestSecretRotation(t *testing.T) {
	t.Parallel()
	forEachTransport(t, func(t *testing.T, tr transportCase) {
		p := startPipeline(t, t.TempDir(), tr.use)
		r := newReceiver(t, nil)
		sub := subscribe(t, p, r, []string{"*"})
		first := sub.GetSecrets()[0].GetValue()

		rotate := func(ttl time.Duration) string {
			t.Helper()
			got, err := p.admin.RotateSubscriptionSecret(ctxT(t), &hooklinev1.RotateSubscriptionSecretRequest{Id: sub.GetId(), PreviousSecretTtl: durationpb.New(ttl)})
			if err != nil {
				t.Fatalf("RotateSubscriptionSecret: %v", err)
			}
			return got.GetSecrets()[0].GetValue() // newest first
		}
		verifies := func(req cli.ReceivedRequest, secret string) bool {
			v, err := signature.NewVerifier(secret)
			if err != nil {
				t.Fatal(err)
			}
			return v.VerifyAt(req.Header, req.Body, req.Time) == nil
		}
		deliverOne := func(seq int) cli.ReceivedRequest {
			t.Helper()
			n := r.Count()
			publish(t, p, "order.created", seq, "")
			poll.Until(t, "delivery", func() bool { return r.Count() > n })
			return r.Requests()[n]
		}

		second := rotate(time.Hour)
		if second == first {
			t.Fatal("rotation returned the old secret as the newest")
		}
		req := deliverOne(1)
		if !verifies(req, first) || !verifies(req, second) {
			t.Fatalf("during the grace period the delivery must verify with both secrets (old %v, new %v)", verifies(req, first), verifies(req, second))
		}

		third := rotate(0)
		req = deliverOne(2)
		if !verifies(req, third) {
			t.Fatal("the delivery does not verify with the newest secret")
		}
		if verifies(req, first) || verifies(req, second) {
			t.Fatal("a rotation without grace period left an older secret signing")
		}
	})
}
