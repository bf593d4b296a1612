package bench

import "fmt"

// Behaviour is how the receiver answers one subscription's requests.
type Behaviour int

// Behaviours of a subscription's endpoint.
const (
	// Healthy answers 200 at once.
	Healthy Behaviour = iota
	// Slow answers 200 after the receiver's slow delay (2 s).
	Slow
	// Failing answers 500 to every request.
	Failing
)

// String names the behaviour as reports do.
func (b Behaviour) String() string {
	switch b {
	case Healthy:
		return "healthy"
	case Slow:
		return "slow"
	case Failing:
		return "failing"
	}
	return fmt.Sprintf("behaviour(%d)", int(b))
}

// Outcome is where one accepted (event, subscription) pair ended up.
type Outcome int

// Outcomes of a pair, from the receiver's records and the admin API.
const (
	// Delivered: the receiver answered a request for the pair with 2xx.
	Delivered Outcome = iota
	// DeadLettered: not delivered, and the admin API lists it as dead.
	DeadLettered
	// Queued: not delivered, and the admin API lists it as pending,
	// retrying or parked.
	Queued
	// Lost: neither received nor known to the admin API as dead or queued.
	Lost
)

// PairCounts tallies the outcomes of a set of (event, subscription) pairs.
type PairCounts struct {
	Published    int64 `json:"published"`
	Delivered    int64 `json:"delivered"`
	DeadLettered int64 `json:"dead_lettered"`
	Queued       int64 `json:"queued"`
	Lost         int64 `json:"lost"`
}

func (c *PairCounts) add(o Outcome) {
	c.Published++
	switch o {
	case Delivered:
		c.Delivered++
	case DeadLettered:
		c.DeadLettered++
	case Queued:
		c.Queued++
	default:
		c.Lost++
	}
}

// Ledger accounts for every event a scenario scheduled and every
// (event, subscription) pair ingest accepted. It must balance:
//
//	published pairs = delivered + dead-lettered + missing (+ slow-endpoint pairs still queued)
//
// where missing counts the pairs of healthy and failing endpoints that are
// neither delivered nor dead-lettered when the drain timeout ends. Pairs of
// a slow endpoint that Hookline still holds are expected (the endpoint
// accepts only so many requests per second) and reported apart; a slow
// endpoint's pair unknown to Hookline is missing like any other.
type Ledger struct {
	// Events scheduled; Accepted by ingest; Rejected: publish calls that
	// failed, so the events were not accepted and are not expected.
	Events   int64 `json:"events"`
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`

	// Pairs of all subscriptions, and by endpoint behaviour.
	Pairs   PairCounts             `json:"pairs"`
	ByClass map[string]*PairCounts `json:"by_class"`

	// Missing is the figure that fails a run: pairs neither delivered nor
	// dead-lettered, slow-endpoint pairs still queued excepted.
	Missing int64 `json:"missing"`
	// SlowQueued are slow-endpoint pairs Hookline still holds.
	SlowQueued int64 `json:"slow_queued"`

	// Duplicates are 2xx-answered requests beyond the first of a pair.
	Duplicates int64 `json:"duplicates"`
	// DeadButDelivered are pairs delivered although the admin API lists
	// them as dead.
	DeadButDelivered int64 `json:"dead_but_delivered"`
	// Unexpected are pairs received that were not expected: an event not
	// accepted, or a subscription its type does not match.
	Unexpected int64 `json:"unexpected"`
	// IDMismatches are requests of a pair whose webhook-id differed from
	// the pair's first request.
	IDMismatches int64 `json:"webhook_id_mismatches"`
	// BadRequests are requests whose payload or path the receiver could
	// not read, or whose payload time did not match the schedule.
	BadRequests int64 `json:"bad_requests"`
}

// Add records the outcome of one accepted pair to an endpoint of
// behaviour b.
func (l *Ledger) Add(b Behaviour, o Outcome) {
	if l.ByClass == nil {
		l.ByClass = map[string]*PairCounts{}
	}
	c := l.ByClass[b.String()]
	if c == nil {
		c = &PairCounts{}
		l.ByClass[b.String()] = c
	}
	c.add(o)
	l.Pairs.add(o)
	switch {
	case o == Delivered || o == DeadLettered:
	case o == Queued && b == Slow:
		l.SlowQueued++
	default:
		l.Missing++
	}
}

// Balanced reports whether published pairs equal delivered +
// dead-lettered + missing + slow-endpoint pairs still queued.
func (l *Ledger) Balanced() bool {
	p := l.Pairs
	return p.Published == p.Delivered+p.DeadLettered+l.Missing+l.SlowQueued &&
		l.Events == l.Accepted+l.Rejected
}

// Problems lists what makes the ledger fail a run: missing pairs, an
// imbalance, webhook-id changes, unreadable requests.
func (l *Ledger) Problems() []string {
	var out []string
	if !l.Balanced() {
		out = append(out, fmt.Sprintf("ledger does not balance: %d events = %d accepted + %d rejected; %d pairs = %d delivered + %d dead + %d missing + %d slow queued",
			l.Events, l.Accepted, l.Rejected, l.Pairs.Published, l.Pairs.Delivered, l.Pairs.DeadLettered, l.Missing, l.SlowQueued))
	}
	if l.Missing > 0 {
		queued := l.Pairs.Queued - l.SlowQueued
		out = append(out, fmt.Sprintf("%d published pairs missing after the drain timeout (%d still pending/retrying in Hookline, %d unknown to it)",
			l.Missing, queued, l.Pairs.Lost))
	}
	if l.IDMismatches > 0 {
		out = append(out, fmt.Sprintf("%d requests changed a delivery's webhook-id", l.IDMismatches))
	}
	if l.BadRequests > 0 {
		out = append(out, fmt.Sprintf("%d requests with an unreadable path or payload", l.BadRequests))
	}
	return out
}
