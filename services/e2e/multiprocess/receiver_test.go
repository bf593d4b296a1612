package multiprocess

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/ids"
	"github.com/hookline/hookline/pkg/signature"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// pair is one (event, subscription) combination: the event's sequence
// number and the subscription's index.
type pair struct{ event, sub int }

func (p pair) String() string { return fmt.Sprintf("(event %d, subscription %d)", p.event, p.sub) }

// pairLog is everything received for one pair.
type pairLog struct {
	webhookIDs map[string]int // webhook-id -> requests carrying it
	requests   int
	accepted   int      // requests answered 2xx
	answers    []answer // every request's answer, in order
}

// answer is the status a request was answered with, and when.
type answer struct {
	at     time.Time
	status int
}

func (a answer) String() string {
	return fmt.Sprintf("%d at %s", a.status, a.at.Format("15:04:05.000"))
}

// subscriptionInfo is what the receiver needs to check requests for one
// subscription.
type subscriptionInfo struct {
	id       string
	verifier *signature.Verifier
}

// receiver is the webhook endpoint of every subscription, on loopback.
// Subscription i is served at /hooks/<i>; the body is the event payload,
// {"seq": n}. Every request is checked (signature, webhook-id against the
// delivery id derived from the event and the subscription) and recorded.
type receiver struct {
	url       string
	failFirst func(pair) bool // answer 500 to the first request of these pairs

	mu       sync.Mutex
	subs     []subscriptionInfo
	pairs    map[pair]*pairLog
	total    int
	done     int      // pairs answered 2xx at least once
	failed   int      // requests answered 500 on purpose
	problems []string // requests that broke a rule, capped
	nProblem int
}

const maxProblems = 20

// startReceiver serves a receiver on a free loopback port until the test
// ends.
func startReceiver(t *testing.T, failFirst func(pair) bool) *receiver {
	t.Helper()
	r := &receiver{failFirst: failFirst, pairs: map[pair]*pairLog{}}
	r.url = serveOnLoopback(t, r)
	return r
}

// hookURL is the URL of subscription i.
func (r *receiver) hookURL(i int) string { return fmt.Sprintf("%s/hooks/%d", r.url, i) }

// setSubscriptions tells the receiver the subscriptions, the i-th served
// at hookURL(i), with their signing secrets; call it before any event is
// published.
func (r *receiver) setSubscriptions(t *testing.T, created []*hooklinev1.Subscription) {
	t.Helper()
	subs := make([]subscriptionInfo, len(created))
	for i, s := range created {
		if len(s.GetSecrets()) == 0 {
			t.Fatalf("subscription %d has no signing secret", i)
		}
		v, err := signature.NewVerifier(s.GetSecrets()[0].GetValue())
		if err != nil {
			t.Fatalf("subscription %d: signing secret: %v", i, err)
		}
		subs[i] = subscriptionInfo{id: s.GetId(), verifier: v}
	}
	r.mu.Lock()
	r.subs = subs
	r.mu.Unlock()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	p, problem := r.check(req, body)
	if problem != nil {
		r.problem(fmt.Sprintf("%s %s webhook-id %q: %v", req.Method, req.URL.Path, req.Header.Get(signature.HeaderID), problem))
		// 200 all the same: the test reports the problem, retries would
		// only blur it.
		w.WriteHeader(http.StatusOK)
		return
	}
	pl := r.pairs[p]
	if pl == nil {
		pl = &pairLog{webhookIDs: map[string]int{}}
		r.pairs[p] = pl
	}
	pl.requests++
	pl.webhookIDs[req.Header.Get(signature.HeaderID)]++
	if pl.requests == 1 && r.failFirst != nil && r.failFirst(p) {
		r.failed++
		pl.answers = append(pl.answers, answer{time.Now(), http.StatusInternalServerError})
		http.Error(w, "failing the first attempt on purpose", http.StatusInternalServerError)
		return
	}
	pl.answers = append(pl.answers, answer{time.Now(), http.StatusOK})
	pl.accepted++
	if pl.accepted == 1 {
		r.done++
	}
	w.WriteHeader(http.StatusOK)
}

// check identifies the pair of a request and verifies its signature and
// webhook-id; the caller holds r.mu.
func (r *receiver) check(req *http.Request, body []byte) (pair, error) {
	var p pair
	idx, ok := strings.CutPrefix(req.URL.Path, "/hooks/")
	if !ok {
		return p, errors.New("unexpected path")
	}
	var err error
	if p.sub, err = strconv.Atoi(idx); err != nil || p.sub < 0 || p.sub >= len(r.subs) {
		return p, errors.New("no such subscription")
	}
	var payload struct {
		Seq *int `json:"seq"`
	}
	if err := json.Unmarshal(body, &payload); err != nil || payload.Seq == nil {
		return p, fmt.Errorf("body %q is not an event payload", body)
	}
	p.event = *payload.Seq
	sub := r.subs[p.sub]
	if err := sub.verifier.Verify(req.Header, body); err != nil {
		return p, fmt.Errorf("%v: signature does not verify: %w", p, err)
	}
	want := ids.Delivery(eventID(p.event), sub.id)
	if got := req.Header.Get(signature.HeaderID); got != want {
		return p, fmt.Errorf("%v: webhook-id is not the delivery id %s", p, want)
	}
	return p, nil
}

func (r *receiver) problem(s string) {
	r.nProblem++
	if len(r.problems) < maxProblems {
		r.problems = append(r.problems, s)
	}
}

// acceptedPairs counts the pairs answered 2xx at least once.
func (r *receiver) acceptedPairs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// answersTo returns the answers given to pair p's requests, in order.
func (r *receiver) answersTo(p pair) []answer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l := r.pairs[p]; l != nil {
		return append([]answer(nil), l.answers...)
	}
	return nil
}

// tally is a summary of everything received.
type tally struct {
	requests        int    // requests received
	failedOnPurpose int    // requests answered 500 on purpose
	accepted        int    // distinct pairs answered 2xx
	duplicates      int    // 2xx answers beyond the first of their pair
	multiIDPairs    []pair // pairs whose requests carried more than one webhook-id
	missing         []pair // expected pairs never answered 2xx
	unexpected      []pair // pairs received that were never published
	problems        []string
	nProblems       int
}

// tally summarises what was received against every pair of events x subs.
func (r *receiver) tally(events, subs int) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := tally{requests: r.total, failedOnPurpose: r.failed, problems: append([]string(nil), r.problems...), nProblems: r.nProblem}
	for e := range events {
		for s := range subs {
			p := pair{e, s}
			l := r.pairs[p]
			if l == nil || l.accepted == 0 {
				out.missing = append(out.missing, p)
				continue
			}
			out.accepted++
			out.duplicates += l.accepted - 1
			if len(l.webhookIDs) > 1 {
				out.multiIDPairs = append(out.multiIDPairs, p)
			}
		}
	}
	for p := range r.pairs {
		if p.event < 0 || p.event >= events {
			out.unexpected = append(out.unexpected, p)
		}
	}
	return out
}

// duplicate is a pair answered 2xx more than once, with the webhook-id its
// requests carried.
type duplicate struct {
	Event        int    `json:"event"`
	Subscription int    `json:"subscription"`
	WebhookID    string `json:"webhook_id"`
	Accepted     int    `json:"accepted"` // requests answered 2xx
}

// duplicates lists the pairs of events × subs answered 2xx more than once.
func (r *receiver) duplicates(events, subs int) []duplicate {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []duplicate
	for e := range events {
		for s := range subs {
			l := r.pairs[pair{e, s}]
			if l == nil || l.accepted < 2 {
				continue
			}
			d := duplicate{Event: e, Subscription: s, Accepted: l.accepted}
			for id := range l.webhookIDs {
				d.WebhookID = id // one id per pair unless tally reports otherwise
			}
			out = append(out, d)
		}
	}
	return out
}
