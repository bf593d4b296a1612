// Package storetest is the conformance suite of the store contract: every
// store.Store implementation runs Run unchanged, and passes it. The suite
// talks to the store only through the store.Store interface. It also
// exports fixture helpers for other packages' tests.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/store"
)

// Run runs the conformance suite. newStore must return a fresh, empty,
// ready store for each call and arrange for it to be closed when its test
// ends (t.Cleanup); Close must tolerate being called again.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
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
		{"Event/InsertGet", testEventInsertGet},
		{"Event/InsertIdempotent", testEventInsertIdempotent},
		{"IdempotencyKey/FirstWriterWins", testIdempotencyKey},
		{"IdempotencyKey/Concurrent", testIdempotencyKeyConcurrent},
		{"IdempotencyKey/Batch", testIdempotencyKeysBatch},
		{"Delivery/CreateGet", testDeliveryCreateGet},
		{"Delivery/CreateIdempotent", testDeliveryCreateIdempotent},
		{"Delivery/InsertFanout", testInsertFanout},
		{"Delivery/InsertFanoutSchedules", testInsertFanoutSchedules},
		{"Delivery/ListPaging", testDeliveryListPaging},
		{"Delivery/ListFilters", testDeliveryListFilters},
		{"Attempts/ForwardOnly", testAttemptsForwardOnly},
		{"Attempts/DuplicateIgnored", testAttemptsDuplicateIgnored},
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
		{"Concurrent/RecordAndClaim", testConcurrentRecordAndClaim},
		{"Purge/Retention", testPurge},
		{"Purge/Limit", testPurgeLimit},
		{"Ready", testReady},
		{"Close/Idempotent", testCloseIdempotent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
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
	d, err := s.GetDelivery(ctx(t), "", id)
	must(t, err, "GetDelivery "+id)
	return *d
}

func getSubscription(t *testing.T, s store.Store, id string) store.Subscription {
	t.Helper()
	sub, err := s.GetSubscription(ctx(t), "", id)
	must(t, err, "GetSubscription "+id)
	return *sub
}
