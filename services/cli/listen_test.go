package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/signature"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestReceiver(t *testing.T, cfg ReceiverConfig) (*Receiver, *httptest.Server) {
	t.Helper()
	rcv, err := NewReceiver(cfg)
	if err != nil {
		t.Fatalf("NewReceiver: %v", err)
	}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	return rcv, srv
}

// post sends body to url with the given headers and returns the status.
func post(t *testing.T, url string, hdr http.Header, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func idHeader(id string) http.Header {
	h := http.Header{}
	h.Set(signature.HeaderID, id)
	return h
}

// signed returns Standard Webhooks headers for body signed with secret.
func signed(t *testing.T, secret, id string, ts time.Time, body string) http.Header {
	t.Helper()
	s, err := signature.NewSigner(secret)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	h := idHeader(id)
	h.Set(signature.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(signature.HeaderSignature, s.Sign(id, ts, []byte(body)))
	return h
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := signature.NewSecret()
	if err != nil {
		t.Fatalf("NewSecret: %v", err)
	}
	return s
}

func TestReceiverFailFirstPerWebhookID(t *testing.T) {
	t.Parallel()
	rcv, srv := newTestReceiver(t, ReceiverConfig{FailFirst: 2, Status: http.StatusNoContent})

	steps := []struct {
		id   string
		want int
	}{
		{"msg_a", 500},
		{"msg_b", 500},
		{"msg_a", 500},
		{"msg_a", 204},
		{"msg_b", 500},
		{"msg_b", 204},
		{"msg_a", 204},
	}
	for i, s := range steps {
		if got := post(t, srv.URL, idHeader(s.id), `{}`); got != s.want {
			t.Fatalf("step %d (%s): status %d, want %d", i, s.id, got, s.want)
		}
	}
	if got := rcv.Attempts("msg_a"); got != 4 {
		t.Errorf("Attempts(msg_a) = %d, want 4", got)
	}
	if got := rcv.Attempts("msg_b"); got != 3 {
		t.Errorf("Attempts(msg_b) = %d, want 3", got)
	}
	if got := rcv.Count(); got != len(steps) {
		t.Errorf("Count() = %d, want %d", got, len(steps))
	}
	reqs := rcv.Requests()
	if len(reqs) != len(steps) {
		t.Fatalf("Requests() has %d entries, want %d", len(reqs), len(steps))
	}
	if r := reqs[3]; r.WebhookID != "msg_a" || r.Attempt != 3 || r.Status != 204 || r.Signature != SignatureUnchecked {
		t.Errorf("request 3 = %+v, want msg_a attempt 3 status 204 unchecked", r)
	}
}

func TestReceiverFixedStatus(t *testing.T) {
	t.Parallel()
	_, srv := newTestReceiver(t, ReceiverConfig{Status: http.StatusGone})
	for i := range 3 {
		if got := post(t, srv.URL, idHeader("msg_x"), `{}`); got != http.StatusGone {
			t.Fatalf("request %d: status %d, want 410", i, got)
		}
	}
}

func TestReceiverRespondFunc(t *testing.T) {
	t.Parallel()
	// Status and FailFirst are ignored once Respond is set.
	_, srv := newTestReceiver(t, ReceiverConfig{Status: http.StatusGone, FailFirst: 5, Respond: func(id string, attempt int) int {
		if id == "msg_ok" || attempt > 1 {
			return http.StatusAccepted
		}
		return http.StatusServiceUnavailable
	}})
	steps := []struct {
		id   string
		want int
	}{{"msg_a", 503}, {"msg_a", 202}, {"msg_ok", 202}, {"msg_b", 503}}
	for i, st := range steps {
		if got := post(t, srv.URL, idHeader(st.id), `{}`); got != st.want {
			t.Fatalf("step %d (%s): status %d, want %d", i, st.id, got, st.want)
		}
	}
}

func TestReceiverRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []ReceiverConfig{
		{Status: 42},
		{FailFirst: -1},
		{Secrets: []string{"whsec_c2hvcnQ="}},
	} {
		if _, err := NewReceiver(cfg); err == nil {
			t.Errorf("NewReceiver(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestReceiverSignature(t *testing.T) {
	t.Parallel()
	secret, other := newSecret(t), newSecret(t)
	out := &syncBuffer{}
	rcv, srv := newTestReceiver(t, ReceiverConfig{Secrets: []string{secret}, FailFirst: 1, Out: out})
	body := `{"id":1}`
	now := time.Now()

	tests := []struct {
		name    string
		id      string
		hdr     http.Header
		body    string
		want    int
		verdict string
	}{
		{"valid signature, first attempt fails", "msg_1", signed(t, secret, "msg_1", now, body), body, 500, SignatureValid},
		{"valid signature, second attempt succeeds", "msg_1", signed(t, secret, "msg_1", now, body), body, 200, SignatureValid},
		{"other secret", "msg_2", signed(t, other, "msg_2", now, body), body, 401, SignatureInvalid},
		{"tampered body", "msg_3", signed(t, secret, "msg_3", now, body), `{"id":2}`, 401, SignatureInvalid},
		{"stale timestamp", "msg_4", signed(t, secret, "msg_4", now.Add(-time.Hour), body), body, 401, SignatureInvalid},
		{"unsigned", "msg_5", idHeader("msg_5"), body, 401, SignatureInvalid},
	}
	for i, tc := range tests {
		if got := post(t, srv.URL, tc.hdr, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, got, tc.want)
		}
		r := rcv.Requests()[i]
		if r.Signature != tc.verdict || r.WebhookID != tc.id {
			t.Errorf("%s: recorded %s/%q, want %s/%q", tc.name, r.Signature, r.WebhookID, tc.verdict, tc.id)
		}
		if (r.SignatureError != "") != (tc.verdict == SignatureInvalid) {
			t.Errorf("%s: SignatureError %q with verdict %s", tc.name, r.SignatureError, r.Signature)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(tests) {
		t.Fatalf("printed %d lines, want %d:\n%s", len(lines), len(tests), out)
	}
	if !strings.Contains(lines[2], "msg_2  attempt=1  signature=invalid (no matching signature)  status=401") {
		t.Errorf("line for the wrong secret = %q", lines[2])
	}
}

func TestReceiverTextAndJSONLines(t *testing.T) {
	t.Parallel()
	body := `{"order":` + "\n" + `"0123456789"}`

	text := &syncBuffer{}
	_, srv := newTestReceiver(t, ReceiverConfig{Out: text, MaxBody: 10})
	post(t, srv.URL+"/hooks", idHeader("msg_t"), body)
	line := text.String()
	if want := "  msg_t  attempt=1  signature=unchecked  status=200  POST /hooks  {\"order\": …\n"; !strings.HasSuffix(line, want) {
		t.Errorf("text line %q does not end with %q", line, want)
	}

	js := &syncBuffer{}
	_, srv = newTestReceiver(t, ReceiverConfig{Out: js, MaxBody: 5, JSON: true, Status: 202})
	post(t, srv.URL, idHeader("msg_j"), body)
	var got map[string]any
	if err := json.Unmarshal([]byte(js.String()), &got); err != nil {
		t.Fatalf("JSON line %q: %v", js.String(), err)
	}
	want := map[string]any{
		"webhook_id": "msg_j", "attempt": 1.0, "signature": "unchecked", "status": 202.0,
		"method": "POST", "path": "/", "body": `{"ord…`, "body_bytes": float64(len(body)), "body_truncated": true,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("JSON %s = %#v, want %#v", k, got[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, got["time"].(string)); err != nil {
		t.Errorf("JSON time: %v", err)
	}
}

func TestReceiverPath(t *testing.T) {
	t.Parallel()
	_, srv := newTestReceiver(t, ReceiverConfig{Path: "/hooks"})
	if got := post(t, srv.URL+"/other", nil, `{}`); got != http.StatusNotFound {
		t.Errorf("other path: status %d, want 404", got)
	}
	if got := post(t, srv.URL+"/hooks", nil, `{}`); got != http.StatusOK {
		t.Errorf("served path: status %d, want 200", got)
	}
}

func TestReceiverWaitFor(t *testing.T) {
	t.Parallel()
	rcv, srv := newTestReceiver(t, ReceiverConfig{FailFirst: 1})
	done := make(chan error, 1)
	go func() {
		done <- rcv.WaitFor(t.Context(), func(rs []ReceivedRequest) bool {
			return len(rs) > 0 && rs[len(rs)-1].Status == http.StatusOK
		})
	}()
	post(t, srv.URL, idHeader("msg_w"), `{}`)
	post(t, srv.URL, idHeader("msg_w"), `{}`)
	if err := <-done; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := rcv.WaitFor(ctx, func([]ReceivedRequest) bool { return false }); err == nil {
		t.Error("WaitFor with a cancelled context returned nil")
	}
}

// TestListenCommand runs `hookline listen` on an ephemeral port, sends it a
// request and checks it stops cleanly when its context is cancelled.
func TestListenCommand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	stdout := &syncBuffer{}
	root := NewRoot()
	root.SetArgs([]string{"listen", "--addr", "127.0.0.1:0", "--fail-first", "1", "--path", "/wh"})
	root.SetOut(stdout)
	root.SetErr(pw)
	errc := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		errc <- err
	}()

	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatalf("no banner: %v", <-errc)
	}
	banner := sc.Text()
	var rest []string
	for sc.Scan() {
		rest = append(rest, sc.Text())
		if strings.HasPrefix(sc.Text(), "Press Ctrl-C") {
			break
		}
	}
	go io.Copy(io.Discard, pr)
	// "Listening on http://127.0.0.1:NNNN/wh (signature verification off ...)"
	url, _, ok := strings.Cut(strings.TrimPrefix(banner, "Listening on "), " ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.HasSuffix(url, "/wh") {
		t.Fatalf("banner %q has no URL", banner)
	}
	if want := "hookline subscriptions create --tenant "; !strings.Contains(strings.Join(rest, "\n"), want) || !strings.Contains(strings.Join(rest, "\n"), "--url "+url) {
		t.Errorf("banner does not show the subscriptions create command: %q", rest)
	}
	if got := post(t, url, idHeader("msg_l"), `{"a":1}`); got != 500 {
		t.Errorf("first attempt: %d, want 500", got)
	}
	if got := post(t, url, idHeader("msg_l"), `{"a":1}`); got != 200 {
		t.Errorf("second attempt: %d, want 200", got)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("listen returned %v, want nil after cancellation", err)
	}
	if out := stdout.String(); !strings.Contains(out, "msg_l  attempt=2  signature=unchecked  status=200  POST /wh  {\"a\":1}") {
		t.Errorf("stdout:\n%s", out)
	}
}
