package signature

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test vector published by the Standard Webhooks project: the spec's
// reference libraries all check it in their "sign function works" test, e.g.
// github.com/standard-webhooks/standard-webhooks libraries/go/webhook_test.go
// (TestWebhookSign) and libraries/javascript/src/webhook.test.ts.
const (
	vecSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecSecretRaw = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS        = 1614265330
	vecPayload   = `{"test": 2432232314}`
	vecSig       = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	// A well-formed but wrong v1 signature used by the reference tests.
	refBadSig = "Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
)

var vecTime = time.Unix(vecTS, 0)

func vecHeader() http.Header {
	h := http.Header{}
	h.Set(HeaderID, vecID)
	h.Set(HeaderTimestamp, strconv.Itoa(vecTS))
	h.Set(HeaderSignature, vecSig)
	return h
}

func mustSecret(t testing.TB, fill byte) string {
	t.Helper()
	b := make([]byte, 32)
	for i := range b {
		b[i] = fill
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

func TestSignVector(t *testing.T) {
	t.Parallel()
	for _, secret := range []string{vecSecret, vecSecretRaw, " " + vecSecret + "\n"} {
		s, err := NewSigner(secret)
		if err != nil {
			t.Fatalf("NewSigner(%q): %v", secret, err)
		}
		if got := s.Sign(vecID, vecTime, []byte(vecPayload)); got != vecSig {
			t.Errorf("Sign with %q = %q, want %q", secret, got, vecSig)
		}
		// Sub-second parts of the time are truncated, as in the reference.
		if got := s.Sign(vecID, vecTime.Add(999*time.Millisecond), []byte(vecPayload)); got != vecSig {
			t.Errorf("Sign with fractional second = %q, want %q", got, vecSig)
		}
	}
}

// TestVerify ports the reference libraries' verification cases
// (libraries/go/webhook_test.go TestWebhook and
// libraries/javascript/src/webhook.test.ts) onto the published vector, with a
// fixed clock so the boundaries are exact.
func TestVerify(t *testing.T) {
	t.Parallel()
	tol := DefaultTolerance
	tests := []struct {
		name    string
		secrets []string
		modify  func(h http.Header)
		body    string
		now     time.Time
		want    error
	}{
		{name: "valid signature", want: nil},
		{name: "valid without whsec_ prefix", secrets: []string{vecSecretRaw}},
		{name: "missing id", modify: func(h http.Header) { h.Del(HeaderID) }, want: ErrMissingHeaders},
		{name: "missing timestamp", modify: func(h http.Header) { h.Del(HeaderTimestamp) }, want: ErrMissingHeaders},
		{name: "missing signature", modify: func(h http.Header) { h.Del(HeaderSignature) }, want: ErrMissingHeaders},
		{name: "empty signature", modify: func(h http.Header) { h.Set(HeaderSignature, "") }, want: ErrMissingHeaders},
		{name: "invalid timestamp", modify: func(h http.Header) { h.Set(HeaderTimestamp, "hello") }, want: ErrInvalidTimestamp},
		{name: "signed timestamp", modify: func(h http.Header) { h.Set(HeaderTimestamp, "+1614265330") }, want: ErrInvalidTimestamp},
		{name: "negative timestamp", modify: func(h http.Header) { h.Set(HeaderTimestamp, "-1") }, want: ErrInvalidTimestamp},
		{name: "fractional timestamp", modify: func(h http.Header) { h.Set(HeaderTimestamp, "1614265330.5") }, want: ErrInvalidTimestamp},
		{name: "huge timestamp", modify: func(h http.Header) { h.Set(HeaderTimestamp, "99999999999999999999") }, want: ErrInvalidTimestamp},
		{name: "invalid signature", modify: func(h http.Header) { h.Set(HeaderSignature, "v1,"+refBadSig) }, want: ErrNoMatchingSignature},
		{name: "garbage signature", modify: func(h http.Header) { h.Set(HeaderSignature, "v1,dawfeoifkpqwoekfpqoekf") }, want: ErrNoMatchingSignature},
		{name: "partial signature", modify: func(h http.Header) { h.Set(HeaderSignature, vecSig[:8]) }, want: ErrNoMatchingSignature},
		{name: "signature missing last char", modify: func(h http.Header) { h.Set(HeaderSignature, vecSig[:len(vecSig)-1]) }, want: ErrNoMatchingSignature},
		{name: "empty v1 signature", modify: func(h http.Header) { h.Set(HeaderSignature, "v1,") }, want: ErrNoMatchingSignature},
		{name: "no version prefix", modify: func(h http.Header) { h.Set(HeaderSignature, strings.TrimPrefix(vecSig, "v1,")) }, want: ErrNoMatchingSignature},
		{name: "right signature under other version", modify: func(h http.Header) {
			h.Set(HeaderSignature, "v1a,"+strings.TrimPrefix(vecSig, "v1,")+" v2,"+strings.TrimPrefix(vecSig, "v1,"))
		}, want: ErrNoMatchingSignature},
		{name: "multi signature", modify: func(h http.Header) {
			h.Set(HeaderSignature, strings.Join([]string{"v1," + refBadSig, "v2," + refBadSig, vecSig, "v1," + refBadSig}, " "))
		}},
		{name: "multi signature with v1a and extra spaces", modify: func(h http.Header) {
			h.Set(HeaderSignature, "  v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==   "+vecSig+" ")
		}},
		{name: "lower-case header map", modify: func(h http.Header) {
			for k := range h {
				delete(h, k)
			}
			h[HeaderID] = []string{vecID}
			h[HeaderTimestamp] = []string{strconv.Itoa(vecTS)}
			h[HeaderSignature] = []string{vecSig}
		}},
		{name: "tampered body", body: `{"test": 2432232315}`, want: ErrNoMatchingSignature},
		{name: "tampered id", modify: func(h http.Header) { h.Set(HeaderID, vecID+"x") }, want: ErrNoMatchingSignature},
		{name: "wrong secret", secrets: []string{mustSecret(t, 7)}, want: ErrNoMatchingSignature},
		{name: "any secret matches", secrets: []string{mustSecret(t, 7), vecSecret}},
		{name: "too old by one second", now: vecTime.Add(tol + time.Second), want: ErrTimestampTooOld},
		{name: "too old by one nanosecond", now: vecTime.Add(tol + 1), want: ErrTimestampTooOld},
		{name: "exactly tolerance old", now: vecTime.Add(tol)},
		{name: "too new by one second", now: vecTime.Add(-tol - time.Second), want: ErrTimestampTooNew},
		{name: "exactly tolerance new", now: vecTime.Add(-tol)},
		{name: "timestamp check before signature", now: vecTime.Add(time.Hour), modify: func(h http.Header) { h.Set(HeaderSignature, "v1,"+refBadSig) }, want: ErrTimestampTooOld},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			secrets := tc.secrets
			if secrets == nil {
				secrets = []string{vecSecret}
			}
			v, err := NewVerifier(secrets...)
			if err != nil {
				t.Fatal(err)
			}
			h := vecHeader()
			if tc.modify != nil {
				tc.modify(h)
			}
			body := vecPayload
			if tc.body != "" {
				body = tc.body
			}
			now := tc.now
			if now.IsZero() {
				now = vecTime
			}
			err = v.VerifyAt(h, []byte(body), now)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("VerifyAt = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("VerifyAt = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrMissingHeaders, ErrInvalidTimestamp, ErrTimestampTooOld, ErrTimestampTooNew, ErrNoMatchingSignature} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("VerifyAt = %v also matches %v", err, other)
				}
			}
		})
	}
}

func TestVerifyNow(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(vecPayload)
	for _, tc := range []struct {
		name string
		ts   time.Time
		want error
	}{
		{"now", time.Now(), nil},
		{"six minutes ago", time.Now().Add(-6 * time.Minute), ErrTimestampTooOld},
		{"six minutes ahead", time.Now().Add(6 * time.Minute), ErrTimestampTooNew},
	} {
		h := http.Header{}
		h.Set(HeaderID, vecID)
		h.Set(HeaderTimestamp, strconv.FormatInt(tc.ts.Unix(), 10))
		h.Set(HeaderSignature, s.Sign(vecID, tc.ts, body))
		if err := v.Verify(h, body); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestTolerance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tol  time.Duration
		age  time.Duration
		want error
	}{
		{tol: 10 * time.Minute, age: 6 * time.Minute},
		{tol: 10 * time.Minute, age: -9 * time.Minute},
		{tol: 10 * time.Minute, age: 11 * time.Minute, want: ErrTimestampTooOld},
		{tol: time.Second, age: 2 * time.Second, want: ErrTimestampTooOld},
		{tol: time.Second, age: -2 * time.Second, want: ErrTimestampTooNew},
		{tol: 0, age: 4 * time.Minute},                                    // zero means default
		{tol: 0, age: 6 * time.Minute, want: ErrTimestampTooOld},          // zero means default
		{tol: -time.Hour, age: 6 * time.Minute, want: ErrTimestampTooOld}, // negative means default
	}
	for _, tc := range tests {
		v, err := NewVerifier(vecSecret)
		if err != nil {
			t.Fatal(err)
		}
		v.Tolerance = tc.tol
		if err := v.VerifyAt(vecHeader(), []byte(vecPayload), vecTime.Add(tc.age)); !errors.Is(err, tc.want) {
			t.Errorf("tolerance %v age %v: got %v, want %v", tc.tol, tc.age, err, tc.want)
		}
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldS, newS, other := mustSecret(t, 1), mustSecret(t, 2), mustSecret(t, 3)
	s, err := NewSigner(newS, oldS)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"type":"x"}`)
	hv := s.Sign("msg_1", vecTime, body)
	parts := strings.Split(hv, " ")
	if len(parts) != 2 {
		t.Fatalf("Sign with two secrets = %q, want two entries", hv)
	}
	for i, sec := range []string{newS, oldS} {
		one, err := NewSigner(sec)
		if err != nil {
			t.Fatal(err)
		}
		if want := one.Sign("msg_1", vecTime, body); parts[i] != want {
			t.Errorf("entry %d = %q, want %q", i, parts[i], want)
		}
	}
	h := http.Header{}
	h.Set(HeaderID, "msg_1")
	h.Set(HeaderTimestamp, strconv.Itoa(vecTS))
	h.Set(HeaderSignature, hv)
	for _, tc := range []struct {
		secrets []string
		want    error
	}{
		{[]string{oldS}, nil},
		{[]string{newS}, nil},
		{[]string{other, oldS}, nil},
		{[]string{other}, ErrNoMatchingSignature},
	} {
		v, err := NewVerifier(tc.secrets...)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyAt(h, body, vecTime); !errors.Is(err, tc.want) {
			t.Errorf("verifier %v: %v, want %v", tc.secrets, err, tc.want)
		}
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	short := base64.StdEncoding.EncodeToString(make([]byte, 23))
	min := base64.StdEncoding.EncodeToString(make([]byte, 24))
	unpadded := base64.RawStdEncoding.EncodeToString(make([]byte, 32))
	tests := []struct {
		in      string
		wantLen int // 0 means an error is expected
	}{
		{vecSecret, 24},
		{vecSecretRaw, 24},
		{"  " + vecSecret + "\n", 24},
		{SecretPrefix + min, 24},
		{SecretPrefix + unpadded, 32},
		{SecretPrefix + base64.StdEncoding.EncodeToString(make([]byte, 64)), 64},
		{"", 0},
		{SecretPrefix, 0},
		{SecretPrefix + short, 0},
		{short, 0},
		{SecretPrefix + "not base64!!", 0},
		{SecretPrefix + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", 0}, // bad padding
		{"whsk_" + vecSecretRaw, 0},                             // asymmetric prefix is not ours
	}
	for _, tc := range tests {
		key, err := ParseSecret(tc.in)
		switch {
		case tc.wantLen == 0 && err == nil:
			t.Errorf("ParseSecret(%q) = %d bytes, want error", tc.in, len(key))
		case tc.wantLen == 0 && !errors.Is(err, ErrInvalidSecret):
			t.Errorf("ParseSecret(%q) error %v does not wrap ErrInvalidSecret", tc.in, err)
		case tc.wantLen != 0 && err != nil:
			t.Errorf("ParseSecret(%q): %v", tc.in, err)
		case tc.wantLen != 0 && len(key) != tc.wantLen:
			t.Errorf("ParseSecret(%q) = %d bytes, want %d", tc.in, len(key), tc.wantLen)
		}
	}
	_, err := ParseSecret(SecretPrefix + short)
	if err == nil || !strings.Contains(err.Error(), "23 bytes") || !strings.Contains(err.Error(), "24") {
		t.Errorf("short secret error %v should state the decoded and required lengths", err)
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(a, SecretPrefix) {
		t.Errorf("NewSecret() = %q, want %q prefix", a, SecretPrefix)
	}
	if a == b {
		t.Errorf("two NewSecret calls returned the same secret %q", a)
	}
	key, err := ParseSecret(a)
	if err != nil {
		t.Fatal(err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret key is %d bytes, want 32", len(key))
	}
	if _, err := NewSigner(a, b); err != nil {
		t.Errorf("NewSigner(new secrets): %v", err)
	}
}

func TestConstructorErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secrets []string
	}{
		{"none", nil},
		{"one bad", []string{vecSecret, "whsec_short"}},
		{"empty", []string{""}},
	}
	for _, tc := range tests {
		if _, err := NewSigner(tc.secrets...); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("NewSigner %s: %v, want ErrInvalidSecret", tc.name, err)
		}
		if _, err := NewVerifier(tc.secrets...); !errors.Is(err, ErrInvalidSecret) {
			t.Errorf("NewVerifier %s: %v, want ErrInvalidSecret", tc.name, err)
		}
	}
}

// TestConcurrent shares one Signer and Verifier across goroutines; run with
// -race it checks the pooled HMAC state is never shared between calls.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	s, err := NewSigner(vecSecret, mustSecret(t, 9))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(vecSecret)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := "msg_" + strconv.Itoa(g) + "_" + strconv.Itoa(i)
				body := []byte(strings.Repeat("x", i))
				h := http.Header{}
				h.Set(HeaderID, id)
				h.Set(HeaderTimestamp, strconv.Itoa(vecTS))
				h.Set(HeaderSignature, s.Sign(id, vecTime, body))
				if err := v.VerifyAt(h, body, vecTime); err != nil {
					errs <- err
					return
				}
				h.Set(HeaderID, id+"-other")
				if err := v.VerifyAt(h, body, vecTime); !errors.Is(err, ErrNoMatchingSignature) {
					errs <- errors.New("forged id accepted")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// FuzzVerify checks that VerifyAt never panics on arbitrary headers, that it
// only ever returns one of the documented errors, and that a Sign→VerifyAt
// round trip always succeeds while a changed body never does.
func FuzzVerify(f *testing.F) {
	f.Add(vecID, int64(vecTS), []byte(vecPayload), vecSig, strconv.Itoa(vecTS))
	f.Add("", int64(0), []byte{}, "v1,", "hello")
	f.Add("msg_x", int64(1<<40), []byte("\x00\xff"), "v1a,abc v1,"+refBadSig+"  v1", "-5")
	f.Add("a.b", int64(1), []byte("."), "v1,,,, ,,", "000001")
	s, err := NewSigner(vecSecret)
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(vecSecret, mustSecret(f, 5))
	if err != nil {
		f.Fatal(err)
	}
	known := []error{ErrMissingHeaders, ErrInvalidTimestamp, ErrTimestampTooOld, ErrTimestampTooNew, ErrNoMatchingSignature}
	f.Fuzz(func(t *testing.T, id string, ts int64, body []byte, sigHeader, tsHeader string) {
		// Arbitrary headers: must not panic, must return a known error.
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, tsHeader)
		h.Set(HeaderSignature, sigHeader)
		if err := v.VerifyAt(h, body, time.Unix(ts&(1<<40-1), 0)); err != nil {
			ok := false
			for _, k := range known {
				ok = ok || errors.Is(err, k)
			}
			if !ok {
				t.Fatalf("VerifyAt returned undocumented error %v", err)
			}
		}

		// Round trip.
		if id == "" {
			return
		}
		ts &= 1<<40 - 1
		when := time.Unix(ts, 0)
		sig := s.Sign(id, when, body)
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, sig)
		if err := v.VerifyAt(h, body, when); err != nil {
			t.Fatalf("round trip id=%q ts=%d: %v", id, ts, err)
		}
		tampered := append([]byte{'!'}, body...)
		if err := v.VerifyAt(h, tampered, when); !errors.Is(err, ErrNoMatchingSignature) {
			t.Fatalf("tampered body: %v, want ErrNoMatchingSignature", err)
		}
	})
}

func BenchmarkSign(b *testing.B) {
	for _, tc := range []struct {
		name    string
		secrets []string
		size    int
	}{
		{"1secret/1KiB", []string{vecSecret}, 1 << 10},
		{"2secrets/1KiB", []string{vecSecret, mustSecret(b, 3)}, 1 << 10},
		{"1secret/64KiB", []string{vecSecret}, 64 << 10},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := NewSigner(tc.secrets...)
			if err != nil {
				b.Fatal(err)
			}
			body := make([]byte, tc.size)
			b.SetBytes(int64(tc.size))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = s.Sign(vecID, vecTime, body)
				}
			})
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	v, err := NewVerifier(vecSecret)
	if err != nil {
		b.Fatal(err)
	}
	h := vecHeader()
	body := []byte(vecPayload)
	b.ReportAllocs()
	for b.Loop() {
		if err := v.VerifyAt(h, body, vecTime); err != nil {
			b.Fatal(err)
		}
	}
}
