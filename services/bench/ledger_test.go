package bench

import (
	"strings"
	"testing"
)

func TestLedger(t *testing.T) {
	t.Parallel()
	type pair struct {
		b Behaviour
		o Outcome
	}
	tests := []struct {
		name         string
		pairs        []pair
		events       int64
		accepted     int64
		rejected     int64
		wantMissing  int64
		wantSlow     int64
		wantProblems []string // substrings, in order
	}{
		{
			name:     "all delivered",
			pairs:    []pair{{Healthy, Delivered}, {Healthy, Delivered}},
			events:   2,
			accepted: 2,
		},
		{
			name:     "dead-lettered pairs of a failing endpoint balance",
			pairs:    []pair{{Healthy, Delivered}, {Failing, DeadLettered}},
			events:   1,
			accepted: 1,
		},
		{
			name:         "a healthy pair still queued is missing",
			pairs:        []pair{{Healthy, Delivered}, {Healthy, Queued}},
			events:       2,
			accepted:     2,
			wantMissing:  1,
			wantProblems: []string{"1 published pairs missing", "1 still pending/retrying", "0 unknown"},
		},
		{
			name:         "a lost pair is missing",
			pairs:        []pair{{Healthy, Lost}},
			events:       1,
			accepted:     1,
			wantMissing:  1,
			wantProblems: []string{"1 published pairs missing", "1 unknown"},
		},
		{
			name:     "slow endpoint's queued pairs are expected",
			pairs:    []pair{{Slow, Queued}, {Slow, Delivered}, {Healthy, Delivered}},
			events:   2,
			accepted: 2,
			wantSlow: 1,
		},
		{
			name:         "a slow endpoint's lost pair is missing",
			pairs:        []pair{{Slow, Lost}},
			events:       1,
			accepted:     1,
			wantMissing:  1,
			wantProblems: []string{"1 published pairs missing"},
		},
		{
			name:         "a failing endpoint's pair still retrying is missing",
			pairs:        []pair{{Failing, Queued}},
			events:       1,
			accepted:     1,
			wantMissing:  1,
			wantProblems: []string{"1 published pairs missing"},
		},
		{
			name:         "events must be accepted or rejected",
			pairs:        nil,
			events:       3,
			accepted:     1,
			rejected:     1,
			wantProblems: []string{"does not balance"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l := Ledger{Events: tt.events, Accepted: tt.accepted, Rejected: tt.rejected}
			for _, p := range tt.pairs {
				l.Add(p.b, p.o)
			}
			if l.Missing != tt.wantMissing || l.SlowQueued != tt.wantSlow {
				t.Errorf("missing %d, slow queued %d; want %d, %d", l.Missing, l.SlowQueued, tt.wantMissing, tt.wantSlow)
			}
			if l.Pairs.Published != int64(len(tt.pairs)) {
				t.Errorf("published %d pairs, want %d", l.Pairs.Published, len(tt.pairs))
			}
			var byClass int64
			for _, c := range l.ByClass {
				byClass += c.Published
			}
			if byClass != l.Pairs.Published {
				t.Errorf("classes hold %d pairs, total %d", byClass, l.Pairs.Published)
			}
			probs := strings.Join(l.Problems(), "\n")
			if len(tt.wantProblems) == 0 && probs != "" {
				t.Errorf("unexpected problems:\n%s", probs)
			}
			rest := probs
			for _, want := range tt.wantProblems {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Fatalf("problems lack %q (in order):\n%s", want, probs)
				}
				rest = rest[i+len(want):]
			}
		})
	}
}

func TestLedgerFlagsIDChangesAndBadRequests(t *testing.T) {
	t.Parallel()
	l := Ledger{Events: 1, Accepted: 1, IDMismatches: 2, BadRequests: 1}
	l.Add(Healthy, Delivered)
	probs := strings.Join(l.Problems(), "\n")
	for _, want := range []string{"2 requests changed a delivery's webhook-id", "1 requests with an unreadable"} {
		if !strings.Contains(probs, want) {
			t.Errorf("problems lack %q:\n%s", want, probs)
		}
	}
}
