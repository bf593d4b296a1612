// Package signature signs and verifies webhooks with the Standard Webhooks
// symmetric scheme (https://www.standardwebhooks.com/, spec section
// "Signature scheme"): HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}",
// keyed by the base64-decoded "whsec_" secret, base64 (standard alphabet,
// padded) encoded and prefixed with "v1,". Several signatures are sent
// space-separated so secrets can be rotated without downtime.
//
// The package depends only on the standard library so that webhook receivers
// can import it on its own. Signer and Verifier are safe for concurrent use
// and reuse HMAC state, so signing allocates only the returned header value
// and verifying a valid request allocates nothing.
package signature

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Header names defined by the Standard Webhooks specification, in the
// lower-case form the specification uses. http.Header canonicalises them
// ("Webhook-Id", ...); both spellings are accepted when verifying.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix marks a serialized symmetric Standard Webhooks secret.
const SecretPrefix = "whsec_"

// MinSecretBytes is the minimum decoded secret length the specification
// allows (24 bytes, 192 bits).
const MinSecretBytes = 24

// DefaultTolerance is how far a webhook-timestamp may lie in the past or the
// future before verification fails, unless Verifier.Tolerance says otherwise.
const DefaultTolerance = 5 * time.Minute

// secretBytes is the number of random bytes NewSecret draws.
const secretBytes = 32

// maxTimestamp bounds accepted timestamps (about year 36812) so that
// arithmetic on them can never overflow.
const maxTimestamp = 1 << 40

// Verification errors. Verify returns errors for which errors.Is reports true
// for exactly one of these.
var (
	// ErrMissingHeaders means webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("signature: missing required webhook headers")
	// ErrInvalidTimestamp means webhook-timestamp is not a plain decimal
	// unix time in seconds.
	ErrInvalidTimestamp = errors.New("signature: invalid webhook-timestamp")
	// ErrTimestampTooOld means webhook-timestamp lies further in the past
	// than the tolerance allows (a possible replay).
	ErrTimestampTooOld = errors.New("signature: webhook-timestamp too old")
	// ErrTimestampTooNew means webhook-timestamp lies further in the future
	// than the tolerance allows.
	ErrTimestampTooNew = errors.New("signature: webhook-timestamp too new")
	// ErrNoMatchingSignature means no v1 signature in webhook-signature
	// matches any configured secret.
	ErrNoMatchingSignature = errors.New("signature: no matching signature")
)

// ErrInvalidSecret is wrapped by every error ParseSecret, NewSigner and
// NewVerifier return for an unusable secret.
var ErrInvalidSecret = errors.New("signature: invalid secret")

var (
	errMissingID        = fmt.Errorf("%w: %s", ErrMissingHeaders, HeaderID)
	errMissingTimestamp = fmt.Errorf("%w: %s", ErrMissingHeaders, HeaderTimestamp)
	errMissingSignature = fmt.Errorf("%w: %s", ErrMissingHeaders, HeaderSignature)
)

// Canonical MIME forms of the header names, so lookups avoid
// http.Header.Get's per-call canonicalisation.
var (
	canonID        = http.CanonicalHeaderKey(HeaderID)
	canonTimestamp = http.CanonicalHeaderKey(HeaderTimestamp)
	canonSignature = http.CanonicalHeaderKey(HeaderSignature)
)

// NewSecret returns a fresh secret: "whsec_" followed by the standard base64
// encoding of 32 bytes from crypto/rand.
func NewSecret() (string, error) {
	var b [secretBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("signature: generating secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b[:]), nil
}

// ParseSecret decodes a secret, with or without the "whsec_" prefix, into the
// HMAC key. Surrounding white space is ignored; padded and unpadded standard
// base64 are accepted. It fails, wrapping ErrInvalidSecret, when the secret is
// not base64 or decodes to fewer than MinSecretBytes bytes.
func ParseSecret(s string) ([]byte, error) {
	enc := strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if enc == "" {
		return nil, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil && !strings.Contains(enc, "=") {
		key, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: not standard base64 after the %q prefix: %v", ErrInvalidSecret, SecretPrefix, err)
	}
	if len(key) < MinSecretBytes {
		return nil, fmt.Errorf("%w: decodes to %d bytes, need at least %d", ErrInvalidSecret, len(key), MinSecretBytes)
	}
	return key, nil
}

func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: at least one secret is required", ErrInvalidSecret)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		keys[i] = k
	}
	return keys, nil
}

// macState is the reusable per-call state: one HMAC per key, a scratch
// buffer for the signed prefix and the encoded signatures.
type macState struct {
	macs    []hash.Hash
	scratch []byte
	sum     [sha256.Size]byte
	enc     [][encodedLen]byte
}

const encodedLen = 44 // base64.StdEncoding.EncodedLen(sha256.Size)

type macPool struct {
	pool sync.Pool
}

func newMacPool(keys [][]byte) *macPool {
	p := &macPool{}
	p.pool.New = func() any {
		st := &macState{
			macs:    make([]hash.Hash, len(keys)),
			scratch: make([]byte, 0, 128),
			enc:     make([][encodedLen]byte, len(keys)),
		}
		for i, k := range keys {
			st.macs[i] = hmac.New(sha256.New, k)
		}
		return st
	}
	return p
}

// compute fills st.enc[i] with the base64 signature of id.ts.body under key i.
func (st *macState) compute(id string, ts int64, body []byte) {
	st.scratch = append(st.scratch[:0], id...)
	st.scratch = append(st.scratch, '.')
	st.scratch = strconv.AppendInt(st.scratch, ts, 10)
	st.scratch = append(st.scratch, '.')
	for i, m := range st.macs {
		m.Reset()
		m.Write(st.scratch)
		m.Write(body)
		base64.StdEncoding.Encode(st.enc[i][:], m.Sum(st.sum[:0]))
	}
}

// Signer produces webhook-signature header values. It is safe for
// concurrent use. The zero value is not usable; call NewSigner.
type Signer struct {
	n     int
	state *macPool
}

// NewSigner returns a Signer that signs with every given secret, in order
// (list the newest secret first during rotation). Each secret is parsed with
// ParseSecret; at least one is required.
func NewSigner(secrets ...string) (*Signer, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Signer{n: len(keys), state: newMacPool(keys)}, nil
}

// Sign returns the complete webhook-signature header value for the message
// (id, ts truncated to unix seconds, body): one "v1,<base64>" entry per
// secret, space-separated, in the order the secrets were given. The only
// allocation is the returned string.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	st := s.state.pool.Get().(*macState)
	st.compute(id, ts.Unix(), body)
	var b strings.Builder
	b.Grow(s.n*(len("v1,")+encodedLen) + s.n - 1)
	for i := range st.enc {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.Write(st.enc[i][:])
	}
	s.state.pool.Put(st)
	return b.String()
}

// Verifier checks Standard Webhooks signatures. It is safe for concurrent use
// once configured. The zero value is not usable; call NewVerifier.
type Verifier struct {
	// Tolerance is the largest accepted distance between webhook-timestamp
	// and the verification time, in either direction. Zero or negative means
	// DefaultTolerance (five minutes). Set it before first use.
	Tolerance time.Duration

	state *macPool
}

// NewVerifier returns a Verifier that accepts a signature made with any of
// the given secrets (pass both during rotation), with Tolerance set to
// DefaultTolerance. Each secret is parsed with ParseSecret; at least one is
// required.
func NewVerifier(secrets ...string) (*Verifier, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return nil, err
	}
	return &Verifier{Tolerance: DefaultTolerance, state: newMacPool(keys)}, nil
}

// Verify is VerifyAt with the current time.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	return v.VerifyAt(h, body, time.Now())
}

// VerifyAt checks the Standard Webhooks headers in h against the raw request
// body as if the time were now. It returns nil only if all three headers are
// present, webhook-timestamp is a decimal unix time within Tolerance of now,
// and at least one "v1," entry of webhook-signature equals, under a
// constant-time comparison (hmac.Equal), the signature of the body under at
// least one secret. Entries with other version prefixes (such as "v1a,") and
// malformed entries are ignored. Failures wrap exactly one of
// ErrMissingHeaders, ErrInvalidTimestamp, ErrTimestampTooOld,
// ErrTimestampTooNew or ErrNoMatchingSignature.
func (v *Verifier) VerifyAt(h http.Header, body []byte, now time.Time) error {
	id := header(h, canonID, HeaderID)
	if id == "" {
		return errMissingID
	}
	tsRaw := header(h, canonTimestamp, HeaderTimestamp)
	if tsRaw == "" {
		return errMissingTimestamp
	}
	sigs := header(h, canonSignature, HeaderSignature)
	if sigs == "" {
		return errMissingSignature
	}
	ts, ok := parseTimestamp(tsRaw)
	if !ok {
		return ErrInvalidTimestamp
	}
	tol := v.Tolerance
	if tol <= 0 {
		tol = DefaultTolerance
	}
	age := now.Sub(time.Unix(ts, 0))
	if age > tol {
		return ErrTimestampTooOld
	}
	if age < -tol {
		return ErrTimestampTooNew
	}

	st := v.state.pool.Get().(*macState)
	defer v.state.pool.Put(st)
	st.compute(id, ts, body)
	for sigs != "" {
		var tok string
		tok, sigs = nextToken(sigs)
		version, sig, found := strings.Cut(tok, ",")
		if !found || version != "v1" || len(sig) != encodedLen {
			continue
		}
		// Copy into reusable storage so hmac.Equal can compare without
		// allocating a []byte for the string.
		st.scratch = append(st.scratch[:0], sig...)
		for i := range st.enc {
			if hmac.Equal(st.scratch, st.enc[i][:]) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}

// header returns the first value of the header under its canonical key, or
// under the literal lower-case key for maps built by hand.
func header(h http.Header, canon, lower string) string {
	if vs := h[canon]; len(vs) > 0 {
		return vs[0]
	}
	if vs := h[lower]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// parseTimestamp accepts only ASCII decimal digits (no sign, no spaces) and
// values up to maxTimestamp.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 13 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxTimestamp {
		return 0, false
	}
	return n, true
}

// nextToken splits off the first space-separated token of s, skipping runs
// of spaces and tabs.
func nextToken(s string) (tok, rest string) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	s = s[i:]
	j := 0
	for j < len(s) && s[j] != ' ' && s[j] != '\t' {
		j++
	}
	return s[:j], s[j:]
}
