package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hookline/hookline/pkg/signature"
)

// Signature verdicts of a received request.
const (
	// SignatureUnchecked means the receiver has no secrets configured.
	SignatureUnchecked = "unchecked"
	// SignatureValid means a signature matched one of the secrets.
	SignatureValid = "valid"
	// SignatureInvalid means verification failed; the request was answered
	// 401.
	SignatureInvalid = "invalid"
)

// Defaults of ReceiverConfig.
const (
	DefaultReceiverMaxBody  = 200
	defaultMaxRequestBytes  = 10 << 20
	defaultKeepRequests     = 10000
	receiverShutdownTimeout = 5 * time.Second
)

// ReceiverConfig configures a Receiver.
type ReceiverConfig struct {
	// Secrets are the whsec_ signing secrets to verify requests with. When
	// empty, signatures are not checked.
	Secrets []string
	// Status answers every accepted request; 0 means 200.
	Status int
	// FailFirst answers 500 to the first FailFirst requests of each
	// webhook-id before answering Status.
	FailFirst int
	// Respond, when set, picks the status of every accepted request from
	// its webhook-id and attempt number (1 for the first request with that
	// id); Status and FailFirst are then unused. It is called with the
	// receiver's lock held, so calls never overlap.
	Respond func(webhookID string, attempt int) int
	// Path, when set, is the only path served; other paths get 404.
	Path string
	// MaxBody truncates the printed body to this many characters; 0 prints
	// it whole.
	MaxBody int
	// JSON prints one JSON object per request instead of a text line.
	JSON bool
	// Out receives one line per request; nil prints nothing.
	Out io.Writer
	// MaxRequestBytes caps the request body read; 0 means 10 MiB.
	MaxRequestBytes int64
	// Keep is how many of the most recent requests Requests returns; 0
	// means 10000.
	Keep int
	// Now returns the current time; nil means time.Now. Signature
	// timestamps are checked against it.
	Now func() time.Time
}

// ReceivedRequest is one request a Receiver answered.
type ReceivedRequest struct {
	// Time the request was received.
	Time time.Time `json:"time"`
	// Method and Path of the request.
	Method string `json:"method"`
	Path   string `json:"path"`
	// WebhookID is the webhook-id header ("" when absent).
	WebhookID string `json:"webhook_id"`
	// Attempt counts the requests seen with this webhook-id, this one
	// included.
	Attempt int `json:"attempt"`
	// Signature is SignatureUnchecked, SignatureValid or SignatureInvalid.
	Signature string `json:"signature"`
	// SignatureError says why verification failed.
	SignatureError string `json:"signature_error,omitempty"`
	// Status is the HTTP status answered.
	Status int `json:"status"`
	// Header holds the request headers.
	Header http.Header `json:"-"`
	// Body is the whole request body.
	Body []byte `json:"-"`
}

// Receiver is an http.Handler that records, prints and answers webhook
// requests, for `hookline listen` and for tests that need a real webhook
// endpoint. It is safe for concurrent use.
type Receiver struct {
	cfg      ReceiverConfig
	verifier *signature.Verifier

	mu       sync.Mutex
	total    int
	attempts map[string]int
	requests []ReceivedRequest
	changed  chan struct{} // closed and replaced on every request
}

// NewReceiver validates cfg and returns a Receiver.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Status == 0 {
		cfg.Status = http.StatusOK
	}
	if cfg.Status < 100 || cfg.Status > 999 {
		return nil, fmt.Errorf("status %d: not an HTTP status code", cfg.Status)
	}
	if cfg.FailFirst < 0 {
		return nil, fmt.Errorf("fail-first %d: must not be negative", cfg.FailFirst)
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = defaultMaxRequestBytes
	}
	if cfg.Keep <= 0 {
		cfg.Keep = defaultKeepRequests
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Receiver{cfg: cfg, attempts: make(map[string]int), changed: make(chan struct{})}
	if len(cfg.Secrets) > 0 {
		v, err := signature.NewVerifier(cfg.Secrets...)
		if err != nil {
			return nil, fmt.Errorf("signing secrets: %w", err)
		}
		r.verifier = v
	}
	return r, nil
}

// ServeHTTP implements http.Handler: it verifies the signature (when secrets
// are configured; failures are answered 401), answers 500 to the first
// FailFirst attempts of each webhook-id, then Status, and prints one line.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := r.cfg.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.cfg.MaxRequestBytes))
	tooLarge := false
	if err != nil {
		var mbe *http.MaxBytesError
		if !errors.As(err, &mbe) {
			http.Error(w, "reading body: "+err.Error(), http.StatusBadRequest)
			return
		}
		tooLarge = true
	}
	rec, reply := r.screen(req, body, tooLarge, now)
	reply = r.record(&rec, reply)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(rec.Status)
	io.WriteString(w, reply+"\n")
}

// screen makes the record of a request received at now and answers what
// needs no lock: 404 off the configured path, 413 for a body over the cap,
// 401 for a signature that does not verify. Otherwise the returned record's
// Status is 0, for record to decide, and its verdict is SignatureValid or
// SignatureUnchecked.
func (r *Receiver) screen(req *http.Request, body []byte, tooLarge bool, now time.Time) (ReceivedRequest, string) {
	rec := ReceivedRequest{
		Time:      now,
		Method:    req.Method,
		Path:      req.URL.Path,
		WebhookID: req.Header.Get(signature.HeaderID),
		Signature: SignatureUnchecked,
		Header:    req.Header.Clone(),
		Body:      body,
	}
	var reply string
	switch {
	case r.cfg.Path != "" && req.URL.Path != r.cfg.Path:
		rec.Status, reply = http.StatusNotFound, fmt.Sprintf("hookline listen: only %s is served", r.cfg.Path)
	case tooLarge:
		rec.Status, reply = http.StatusRequestEntityTooLarge, "hookline listen: body too large"
	}
	if rec.Status == 0 && r.verifier != nil {
		if err := r.verifier.VerifyAt(req.Header, body, now); err != nil {
			rec.Signature = SignatureInvalid
			rec.SignatureError = strings.TrimPrefix(err.Error(), "signature: ")
			rec.Status, reply = http.StatusUnauthorized, "invalid signature: "+rec.SignatureError
		} else {
			rec.Signature = SignatureValid
		}
	}
	return rec, reply
}

// record counts the request under the lock, sets its attempt number and,
// when screen left it 0, its status (from Respond, FailFirst or Status),
// keeps it among the last Keep requests, prints it and wakes WaitFor. It
// returns the reply body: reply, or the one of the status it chose.
func (r *Receiver) record(rec *ReceivedRequest, reply string) string {
	r.mu.Lock()
	r.total++
	r.attempts[rec.WebhookID]++
	rec.Attempt = r.attempts[rec.WebhookID]
	if rec.Status == 0 && r.cfg.Respond != nil {
		rec.Status = r.cfg.Respond(rec.WebhookID, rec.Attempt)
		reply = http.StatusText(rec.Status)
	}
	if rec.Status == 0 {
		if rec.Attempt <= r.cfg.FailFirst {
			rec.Status = http.StatusInternalServerError
			reply = fmt.Sprintf("hookline listen: failing attempt %d of %d (--fail-first)", rec.Attempt, r.cfg.FailFirst)
		} else {
			rec.Status, reply = r.cfg.Status, http.StatusText(r.cfg.Status)
		}
	}
	r.requests = append(r.requests, *rec)
	if len(r.requests) > r.cfg.Keep {
		r.requests = append(r.requests[:0:0], r.requests[len(r.requests)-r.cfg.Keep:]...)
	}
	r.print(*rec)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return reply
}

// print writes rec to cfg.Out; the caller holds r.mu so lines never
// interleave and appear in attempt order.
func (r *Receiver) print(rec ReceivedRequest) {
	if r.cfg.Out == nil {
		return
	}
	body := oneLine(string(rec.Body), r.cfg.MaxBody)
	if r.cfg.JSON {
		line := struct {
			ReceivedRequest
			Body          string `json:"body"`
			BodyBytes     int    `json:"body_bytes"`
			BodyTruncated bool   `json:"body_truncated,omitempty"`
		}{rec, body, len(rec.Body), body != oneLine(string(rec.Body), 0)}
		b, err := json.Marshal(line)
		if err != nil {
			slog.Error("encoding request as JSON", "err", err)
			return
		}
		r.cfg.Out.Write(append(b, '\n'))
		return
	}
	verdict := rec.Signature
	if rec.SignatureError != "" {
		verdict += " (" + rec.SignatureError + ")"
	}
	fmt.Fprintf(r.cfg.Out, "%s  %s  attempt=%d  signature=%s  status=%d  %s %s  %s\n",
		rec.Time.Format("2006-01-02T15:04:05.000Z07:00"), orDash(rec.WebhookID), rec.Attempt,
		verdict, rec.Status, rec.Method, rec.Path, body)
}

// Count returns the number of requests received.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Attempts returns the number of requests received with this webhook-id.
func (r *Receiver) Attempts(webhookID string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[webhookID]
}

// Requests returns a copy of the most recent requests (up to Keep), oldest
// first.
func (r *Receiver) Requests() []ReceivedRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ReceivedRequest(nil), r.requests...)
}

// WaitFor blocks until cond, called with the recorded requests after every
// request, returns true, or until ctx is done (returning a wrapped ctx
// error).
func (r *Receiver) WaitFor(ctx context.Context, cond func([]ReceivedRequest) bool) error {
	for {
		r.mu.Lock()
		ok := cond(r.requests)
		ch := r.changed
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for webhook requests: %w", ctx.Err())
		}
	}
}

// Serve answers requests on ln until ctx is done, then shuts down
// gracefully. It returns nil after a shutdown caused by ctx.
func (r *Receiver) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving webhooks: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), receiverShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down receiver: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving webhooks: %w", err)
	}
	return nil
}

func newListenCommand() *cobra.Command {
	var (
		addr string
		cfg  ReceiverConfig
	)
	cmd := &cobra.Command{
		Use:   "listen",
		Short: "Run a local webhook receiver that prints every request",
		Long: `Run a local HTTP endpoint that receives webhooks, prints one line per request
(time, webhook-id, attempts seen for that id, signature verdict, status
answered, body) and answers them. With --secret every request's Standard
Webhooks signature is verified; failures are answered 401. --fail-first N
answers 500 to the first N attempts of each webhook-id, so retries can be
watched succeeding. Stop it with Ctrl-C.`,
		Example: `  hookline listen --secret whsec_... --fail-first 2
  hookline listen --addr 127.0.0.1:9001 --path /hooks --status 204 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Out = cmd.OutOrStdout()
			rcv, err := NewReceiver(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			ln, err := new(net.ListenConfig).Listen(ctx, "tcp", addr)
			if err != nil {
				return fmt.Errorf("listening on %s: %w", addr, err)
			}
			printListenBanner(cmd.ErrOrStderr(), ln.Addr().String(), cfg)
			return rcv.Serve(ctx, ln)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&addr, "addr", "127.0.0.1:9000", "address to listen on")
	fl.StringArrayVar(&cfg.Secrets, "secret", nil, "whsec_ signing secret to verify requests with (repeatable, for rotation)")
	fl.IntVar(&cfg.Status, "status", http.StatusOK, "HTTP status answered to every request")
	fl.IntVar(&cfg.FailFirst, "fail-first", 0, "answer 500 to the first N requests of each webhook-id")
	fl.StringVar(&cfg.Path, "path", "", "only serve this path, such as /webhooks (others get 404); default any path")
	fl.IntVar(&cfg.MaxBody, "max-body", DefaultReceiverMaxBody, "characters of the body to print; 0 prints it whole")
	fl.BoolVar(&cfg.JSON, "json", false, "print one JSON object per request")
	return cmd
}

// printListenBanner tells where the receiver listens and how to point a
// subscription at it.
func printListenBanner(w io.Writer, addr string, cfg ReceiverConfig) {
	path := cfg.Path
	if path == "" {
		path = "/"
	}
	url := "http://" + addr + path
	tenant := os.Getenv(EnvTenant)
	if tenant == "" {
		tenant = "default"
	}
	sig := "signatures not verified"
	if n := len(cfg.Secrets); n > 0 {
		sig = fmt.Sprintf("verifying signatures with %d secret(s)", n)
	}
	fmt.Fprintf(w, "Listening on %s (%s)\n", url, sig)
	fmt.Fprintf(w, "Point a subscription at it with:\n  hookline subscriptions create --tenant %s --url %s --event-type '*'\n", tenant, url)
	if len(cfg.Secrets) == 0 {
		fmt.Fprintln(w, "and restart with --secret <its signing secret> to verify signatures.")
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}
