package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"github.com/hookline/hookline/pkg/retry"
	"github.com/hookline/hookline/pkg/signature"
	"github.com/hookline/hookline/pkg/ssrf"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/services/internal/wire"
)

// UserAgent is sent with every delivery request.
const UserAgent = "Hookline/1"

// Canonical forms of the headers Hookline sets itself.
var (
	hdrID        = textproto.CanonicalMIMEHeaderKey(signature.HeaderID)
	hdrTimestamp = textproto.CanonicalMIMEHeaderKey(signature.HeaderTimestamp)
	hdrSignature = textproto.CanonicalMIMEHeaderKey(signature.HeaderSignature)
)

// newHTTPTransport builds the one pooled transport all attempts share.
// Every connection is dialled through guard, after DNS resolution by
// resolver.
func newHTTPTransport(cfg Config, guard *ssrf.Guard, resolver *net.Resolver) *http.Transport {
	dialer := &net.Dialer{
		Timeout:   cfg.MaxTimeout,
		KeepAlive: 30 * time.Second,
		Control:   guard.Control,
		Resolver:  resolver,
	}
	return &http.Transport{
		Proxy:                  nil,                                     // a proxy would sidestep the SSRF guard
		DialContext:            guard.DialLocalhost(dialer.DialContext), // localhost names never reach DNS (RFC 6761)
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           cfg.MaxIdleConns,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        cfg.IdleConnTimeout,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

// outcome is the result of one HTTP attempt.
type outcome struct {
	status     store.DeliveryStatus
	start      time.Time
	dur        time.Duration
	code       int
	body       []byte
	errText    string
	retryAfter time.Duration
	// abandoned means the attempt was cut short by shutdown: it is
	// recorded with its outcome unknown, unless it was unsent (the request
	// never began), and then it is handed back.
	abandoned, unsent bool
}

// attemptTimeout is the per-attempt timeout for sub.
func (s *Service) attemptTimeout(sub *store.Subscription) time.Duration {
	t := sub.Timeout
	if t <= 0 {
		t = s.cfg.Timeout
	}
	return min(t, s.cfg.MaxTimeout)
}

// send POSTs body to the subscription and classifies the response.
func (s *Service) send(sub *store.Subscription, ep *endpoint, env *wire.Delivery, body []byte, timeout time.Duration) outcome {
	start := s.now()
	out := outcome{start: start, status: store.DeliveryRetrying}
	fail := func(text string) outcome {
		out.dur = s.now().Sub(start)
		out.errText = text
		return out
	}
	signer, err := ep.signerFor(sub, start)
	if err != nil {
		return fail(err.Error())
	}
	ctx, cancel := context.WithTimeout(s.workCtx, timeout)
	defer cancel()
	req, err := newRequest(ctx, sub, signer, env.DeliveryID, body, start)
	if err != nil {
		return fail(fmt.Sprintf("invalid request: %v", err))
	}
	if s.workCtx.Err() != nil {
		out.abandoned, out.unsent = true, true
		return out
	}
	resp, err := s.client.Do(req)
	if err != nil {
		if s.workCtx.Err() != nil {
			out.abandoned = true
			out.dur = s.now().Sub(start)
			return out
		}
		return fail(describe(err, ctx, timeout))
	}
	out.code = resp.StatusCode
	out.body, err = s.readBody(resp.Body)
	resp.Body.Close()
	out.dur = s.now().Sub(start)
	classify(&out, resp.Header)
	if err != nil && out.status != store.DeliverySucceeded {
		out.errText += "; reading response body: " + describe(err, ctx, timeout)
	}
	return out
}

// newRequest builds the signed webhook request of one attempt begun at
// start: the subscription's custom headers (minus those Hookline sets
// itself), the content type, the user agent and the Standard Webhooks
// headers, signed by signer.
func newRequest(ctx context.Context, sub *store.Subscription, signer *signature.Signer, deliveryID string, body []byte, start time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	h := make(http.Header, len(sub.Headers)+6)
	for k, v := range sub.Headers {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		if !wire.ReservedCanonicalHeader(ck) {
			h[ck] = []string{v}
		}
	}
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{UserAgent}
	h[hdrID] = []string{deliveryID}
	h[hdrTimestamp] = []string{strconv.FormatInt(start.Unix(), 10)}
	h[hdrSignature] = []string{signer.Sign(deliveryID, start, body)}
	req.Header = h
	return req, nil
}

// classify sets the outcome of an attempt answered with out.code: 2xx
// succeeded, 410 parked, anything else retrying, with the receiver's
// Retry-After (from header) kept for a 429 or 503.
func classify(out *outcome, header http.Header) {
	switch c := out.code; {
	case c >= 200 && c < 300:
		out.status = store.DeliverySucceeded
	case c == http.StatusGone:
		out.status = store.DeliveryParked
		out.errText = "endpoint returned 410 Gone"
	default:
		out.errText = "endpoint returned " + strconv.Itoa(c)
		if c >= 300 && c < 400 {
			out.errText += " (redirects are not followed)"
		}
		if c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
			if d, ok := retry.ParseRetryAfter(header.Get("Retry-After"), out.start); ok {
				out.retryAfter = d
			}
		}
	}
}

// readBody keeps up to MaxResponseBody bytes of the body and discards up
// to MaxDrain more, so the connection can go back to the pool.
func (s *Service) readBody(r io.Reader) ([]byte, error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		err = nil
	case err == nil:
		_, err = io.CopyN(io.Discard, r, s.cfg.MaxDrain)
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if n == 0 {
		return nil, err
	}
	return bytes.Clone(buf[:n]), err
}

// describe turns a request error into the text stored with the attempt.
func describe(err error, ctx context.Context, timeout time.Duration) string {
	switch {
	case errors.Is(err, ssrf.ErrForbidden):
		return "refused by the SSRF guard: " + err.Error()
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return "timeout after " + timeout.String()
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + err.Error()
	}
	return err.Error()
}
