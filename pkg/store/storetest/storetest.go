// Package storetest is the conformance suite of the store contract: every
// store.Store implementation runs Run unchanged, and passes it. The suite
// talks to the store only through the store.Store interface. It also
// exports fixture helpers for other packages' tests.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/store"
)

// Opener opens a store on one database with keyring kr, and arranges for
// it to be closed when t ends (t.Cleanup); Close must tolerate being called
// again. Its first call opens a fresh, empty database; each later call
// opens a new store on the same database (as a restarted process would),
// or fails with ErrCannotReopen if the backend cannot (an in-memory
// database). Errors of opening (store.ErrMissingSecretKey...) are
// returned, not reported to t.
type Opener func(t *testing.T, kr *keyring.Keyring) (store.Store, error)

// ErrCannotReopen is what an Opener returns when its backend cannot open
// its database a second time; the tests that reopen are skipped.
var ErrCannotReopen = errors.New("storetest: the backend cannot reopen its database")

// Run runs the conformance suite. newDatabase is called once per test and
// returns an Opener on a fresh, empty database. Most tests open one store
// with Keyring("k1"); the secrets' key rotation reopens the database with
// other keyrings.
func Run(t *testing.T, newDatabase func(t *testing.T) Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Subscription/CreateGet", testSubscriptionCreateGet},
		{"Subscription/CreateIdempotent", testSubscriptionCreateIdempotent},
		{"Subscription/OptionalFields", testSubscriptionOptionalFields},
		{"Subscription/TenantScoping", testSubscriptionTenantScoping},
		{"Subscription/Update", testSubscriptionUpdate},
		{"Subscription/Delete", testSubscriptionDelete},
		{"Subscription/SetState", testSubscriptionSetState},
		{"Subscription/SetFailing", testSubscriptionSetFailing},
		{"Subscription/List", testSubscriptionList},
		{"Subscription/Revision", testSubscriptionRevision},
		{"Subscription/SendTraceContext", testSubscriptionSendTraceContext},
		{"Event/InsertGet", testEventInsertGet},
		{"Event/InsertIdempotent", testEventInsertIdempotent},
		{"IdempotencyKey/FirstWriterWins", testIdempotencyKey},
		{"IdempotencyKey/Concurrent", testIdempotencyKeyConcurrent},
		{"IdempotencyKey/Batch", testIdempotencyKeysBatch},
		{"IdempotencyKey/Fingerprint", testIdempotencyFingerprint},
		{"IdempotencyKey/FingerprintFirstWriterWins", testIdempotencyFingerprintFirstWriterWins},
		{"IdempotencyKey/FingerprintBatch", testIdempotencyFingerprintBatch},
		{"IdempotencyKey/FingerprintEmpty", testIdempotencyFingerprintEmpty},
		{"Delivery/CreateGet", testDeliveryCreateGet},
		{"Delivery/CreateIdempotent", testDeliveryCreateIdempotent},
		{"Delivery/InsertFanout", testInsertFanout},
		{"Delivery/InsertFanoutSchedules", testInsertFanoutSchedules},
		{"Delivery/ListPaging", testDeliveryListPaging},
		{"Delivery/ListFilters", testDeliveryListFilters},
		{"Attempts/ForwardOnly", testAttemptsForwardOnly},
		{"Attempts/RepeatRecorded", testAttemptsRepeatRecorded},
		{"Attempts/RepeatAfterRelease", testAttemptsRepeatAfterRelease},
		{"Attempts/Batch", testAttemptsBatch},
		{"Attempts/FinalStatusClearsNextAttempt", testAttemptsFinalClearsNext},
		{"Attempts/ListPagingFilters", testAttemptsList},
		{"Attempts/RetryingSchedulesNext", testAttemptsRetryingSchedulesNext},
		{"Attempts/RecordAgainChangesNothing", testAttemptsRecordAgainChangesNothing},
		{"Attempts/StaleResultKeepsSchedule", testAttemptsStaleResultKeepsSchedule},
		{"Attempts/RetryingWithoutDueWritesNothing", testAttemptsRetryingWithoutDueWritesNothing},
		{"Attempts/RetryingReplacesClaimedRetry", testAttemptsRetryingReplacesClaimedRetry},
		{"Attempts/FinalRemovesSchedule", testAttemptsFinalRemovesSchedule},
		{"Attempts/MixedBatch", testAttemptsMixedBatch},
		{"Attempts/DeliveryError", testAttemptsDeliveryError},
		{"Attempts/TraceParent", testAttemptsTraceParent},
		{"Retries/Schedule", testRetriesSchedule},
		{"Retries/ScheduleStale", testRetriesScheduleStale},
		{"Retries/ScheduleFirst", testRetriesScheduleFirst},
		{"Retries/ClaimDueOnly", testRetriesClaimDueOnly},
		{"Retries/LeaseExpiry", testRetriesLeaseExpiry},
		{"Retries/ClaimLimit", testRetriesClaimLimit},
		{"Retries/ConcurrentClaimers", testRetriesConcurrentClaimers},
		{"Retries/Complete", testRetriesComplete},
		{"Retries/MarkDead", testMarkDead},
		{"Retries/ParkAndRedrive", testParkAndRedrive},
		{"Retries/RedriveLimit", testRedriveLimit},
		{"Retries/TraceParentFromAttempt", testRetriesTraceParentFromAttempt},
		{"Retries/ScheduleTraceParent", testRetriesScheduleTraceParent},
		{"Stats", testStats},
		{"Concurrent/RecordAndClaim", testConcurrentRecordAndClaim},
		{"Purge/Retention", testPurge},
		{"Purge/Limit", testPurgeLimit},
		{"Ready", testReady},
		{"Close/Idempotent", testCloseIdempotent},
		{"Subscription/Limit", testSubscriptionLimit},
		{"Subscription/LimitConcurrent", testSubscriptionLimitConcurrent},
		{"Scope/ZeroRefused", testScopeZeroRefused},
		{"Scope/TenantIsolation", testScopeTenantIsolation},
		{"APIKey/CreateGet", testAPIKeyCreateGet},
		{"APIKey/List", testAPIKeyList},
		{"APIKey/Revoke", testAPIKeyRevoke},
		{"APIKey/Touch", testAPIKeyTouch},
		{"Secrets/RoundTrip", testSecretsRoundTrip},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, mustOpen(t, newDatabase(t), Keyring("k1")))
		})
	}
	reopening := []struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{
		{"Secrets/KeyRotation", testSecretsKeyRotation},
		{"Secrets/Reopen", testSecretsReopen},
		{"Secrets/ReencryptConcurrent", testSecretsReencryptConcurrent},
	}
	for _, tc := range reopening {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newDatabase(t))
		})
	}
}

// mustOpen opens a store with open and kr, failing t on error.
func mustOpen(t *testing.T, open Opener, kr *keyring.Keyring) store.Store {
	t.Helper()
	s, err := open(t, kr)
	if err != nil {
		t.Fatalf("open the store with keyring %v: %v", kr.IDs(), err)
	}
	return s
}

// reopen opens a store on open's database again, skipping t if the
// backend cannot.
func reopen(t *testing.T, open Opener, kr *keyring.Keyring) (store.Store, error) {
	t.Helper()
	s, err := open(t, kr)
	if errors.Is(err, ErrCannotReopen) {
		t.Skip("the backend cannot reopen its database")
	}
	return s, err
}

// Keyring returns a keyring of the given key ids, the first the current
// one, whose keys are derived from their ids: Keyring("k2", "k1") opens
// what Keyring("k1") sealed. For tests only.
func Keyring(ids ...string) *keyring.Keyring {
	keys := make(map[string][]byte, len(ids))
	for _, id := range ids {
		sum := sha256.Sum256([]byte("hookline storetest key " + id))
		keys[id] = sum[:]
	}
	kr, err := keyring.New(ids, keys)
	if err != nil {
		panic(fmt.Sprintf("storetest: keyring %v: %v", ids, err))
	}
	return kr
}

// ctx returns the test's context, cancelled when the test ends.
func ctx(t *testing.T) context.Context {
	t.Helper()
	return t.Context()
}

func must(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// diff compares want and got deeply: times with Equal (and got's times
// must be UTC unless zero), byte slices by content, nil and empty slices
// and maps alike. It returns "" when they match.
func diff(want, got any) string {
	var out []string
	compare(reflect.ValueOf(want), reflect.ValueOf(got), "", &out)
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprint(out)
}

var timeType = reflect.TypeOf(time.Time{})

func compare(w, g reflect.Value, path string, out *[]string) {
	if len(*out) > 10 {
		return
	}
	if w.IsValid() != g.IsValid() {
		*out = append(*out, fmt.Sprintf("%s: validity differs", path))
		return
	}
	if !w.IsValid() {
		return
	}
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		if !wt.Equal(gt) {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, wt, gt))
		} else if !gt.IsZero() && gt.Location() != time.UTC {
			*out = append(*out, fmt.Sprintf("%s: got %v, want UTC location", path, gt))
		}
		return
	}
	switch w.Kind() {
	case reflect.Pointer, reflect.Interface:
		if w.IsNil() || g.IsNil() {
			if w.IsNil() != g.IsNil() {
				*out = append(*out, fmt.Sprintf("%s: nil-ness differs", path))
			}
			return
		}
		compare(w.Elem(), g.Elem(), path, out)
	case reflect.Struct:
		for i := range w.NumField() {
			compare(w.Field(i), g.Field(i), path+"."+w.Type().Field(i).Name, out)
		}
	case reflect.Slice:
		if w.Type().Elem().Kind() == reflect.Uint8 {
			if !bytes.Equal(w.Bytes(), g.Bytes()) {
				*out = append(*out, fmt.Sprintf("%s: want %q, got %q", path, w.Bytes(), g.Bytes()))
			}
			return
		}
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: want len %d, got len %d", path, w.Len(), g.Len()))
			return
		}
		for i := range w.Len() {
			compare(w.Index(i), g.Index(i), fmt.Sprintf("%s[%d]", path, i), out)
		}
	case reflect.Map:
		if w.Len() != g.Len() {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, w.Interface(), g.Interface()))
			return
		}
		for _, k := range w.MapKeys() {
			gv := g.MapIndex(k)
			if !gv.IsValid() {
				*out = append(*out, fmt.Sprintf("%s[%v]: missing", path, k))
				continue
			}
			compare(w.MapIndex(k), gv, fmt.Sprintf("%s[%v]", path, k), out)
		}
	default:
		if !reflect.DeepEqual(w.Interface(), g.Interface()) {
			*out = append(*out, fmt.Sprintf("%s: want %v, got %v", path, w.Interface(), g.Interface()))
		}
	}
}

func wantEqual(t testing.TB, want, got any, what string) {
	t.Helper()
	if d := diff(want, got); d != "" {
		t.Fatalf("%s mismatch: %s", what, d)
	}
}

func getDelivery(t *testing.T, s store.Store, id string) store.Delivery {
	t.Helper()
	d, err := s.GetDelivery(ctx(t), store.AllTenants(), id)
	must(t, err, "GetDelivery "+id)
	return *d
}

func getSubscription(t *testing.T, s store.Store, id string) store.Subscription {
	t.Helper()
	sub, err := s.GetSubscription(ctx(t), store.AllTenants(), id)
	must(t, err, "GetSubscription "+id)
	return *sub
}
