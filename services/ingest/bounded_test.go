package ingest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// hugeBatchPrefix opens a valid publishBatch body whose first payload,
// base64, never ends within the body: a decoder reads on and on.
const hugeBatchPrefix = `{"events":[{"tenant":"acme","eventType":"a.b","payload":"`

// endlessBody yields left bytes, hugeBatchPrefix then base64 filler,
// without holding them.
type endlessBody struct {
	left int64
	sent int64
}

func (b *endlessBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.left)
	for i := range p[:n] {
		if off := b.sent + int64(i); off < int64(len(hugeBatchPrefix)) {
			p[i] = hugeBatchPrefix[off]
		} else {
			p[i] = 'A'
		}
	}
	b.left -= n
	b.sent += n
	return int(n), nil
}

// peakRSS reads the process's resident set high-water mark, in bytes,
// from Linux's /proc/self/status; false where there is none.
// resetPeakRSS starts it again from the current RSS, and reports whether
// it could. Without either, the test checks allocation only.
func peakRSS() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// TestHugeHTTPBodyIsBounded posts 200 MB bodies to the JSON API, without a
// key and with one, declared and streamed: each is refused (401, or 413
// naming the limit), the process allocates less than twice the body cap
// for it and, where Linux reports it and the race detector (whose shadow
// memory swamps the figure) is off, its peak RSS rises by less than twice
// the cap. Not parallel: both figures are the process's.
func TestHugeHTTPBodyIsBounded(t *testing.T) {
	ts := startTestService(t, func(c *Config) { c.MaxPayloadBytes, c.MaxBatchEvents = 1<<20, 8 })
	limit := ts.svc.cfg.maxHTTPBodyBytes()
	const size = 200 << 20
	client := &http.Client{Timeout: 60 * time.Second}
	tests := []struct {
		name     string
		key      string
		declared bool // send a Content-Length
		want     int
	}{
		{"no key, streamed", "", false, http.StatusUnauthorized},
		{"no key, declared", "", true, http.StatusUnauthorized},
		{"operator key, streamed", ts.operator, false, http.StatusRequestEntityTooLarge},
		{"operator key, declared", ts.operator, true, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocBefore := ms.TotalAlloc
			before, rssOK := peakRSS()
			rssOK = rssOK && resetPeakRSS()
			body := &endlessBody{left: size}
			req, err := http.NewRequest("POST", "http://"+ts.svc.HTTPAddr()+"/v1/events:publishBatch", body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.declared {
				req.ContentLength = size
			} else {
				req.ContentLength = -1 // chunked
			}
			if tt.key != "" {
				req.Header.Set("Authorization", "Bearer "+tt.key)
			}
			resp, err := client.Do(req)
			if err != nil && !errors.Is(err, io.ErrClosedPipe) && !strings.Contains(err.Error(), "connection reset") && !strings.Contains(err.Error(), "broken pipe") {
				t.Fatalf("POST: %v", err)
			}
			if resp != nil {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
				resp.Body.Close()
				if resp.StatusCode != tt.want {
					t.Fatalf("status %d (%s), want %d", resp.StatusCode, msg, tt.want)
				}
				if tt.want == http.StatusRequestEntityTooLarge && !strings.Contains(string(msg), strconv.FormatInt(limit, 10)) {
					t.Errorf("413 body %q does not name the limit of %d bytes", msg, limit)
				}
			}
			after, ok := peakRSS()
			rise := after - before
			rssOK = rssOK && ok && !raceEnabled
			runtime.ReadMemStats(&ms)
			allocated := int64(ms.TotalAlloc - allocBefore)
			t.Logf("allocated %d KiB, peak RSS rise %d KiB (cap %d KiB)", allocated>>10, rise>>10, limit>>10)
			if allocated > 2*limit {
				t.Errorf("allocated %d MiB for a %d MiB body, more than twice the %d MiB cap", allocated>>20, size>>20, limit>>20)
			}
			if rssOK && rise > 2*limit {
				t.Errorf("peak RSS rose by %d MiB for a %d MiB body, more than twice the %d MiB cap", rise>>20, size>>20, limit>>20)
			}
		})
	}
}

// countingProxy forwards one loopback listener to target and counts the
// bytes clients send.
type countingProxy struct {
	lis  net.Listener
	sent atomic.Int64
	wg   sync.WaitGroup
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{lis: lis}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.wg.Add(2)
			go func() {
				defer p.wg.Done()
				n, _ := io.Copy(s, c)
				p.sent.Add(n)
				s.Close()
			}()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
		}
	}()
	t.Cleanup(func() { lis.Close(); p.wg.Wait() })
	return p
}

// TestHugeGRPCMessageIsBounded sends a 20 MB publish over gRPC: without a
// key it is refused before the server reads it (the bytes that reach the
// server stay within HTTP/2's flow-control windows), and with one it is
// refused for its size, ResourceExhausted.
func TestHugeGRPCMessageIsBounded(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, func(c *Config) { c.MaxPayloadBytes, c.MaxBatchEvents = 1<<20, 8 })
	proxy := newCountingProxy(t, ts.svc.GRPCAddr())
	conn, err := grpc.NewClient(proxy.lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	in := hooklinev1.NewIngestServiceClient(conn)
	req := &hooklinev1.PublishRequest{Tenant: "acme", EventType: "a.b", Payload: make([]byte, 20<<20)}

	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err = in.Publish(ctx, req)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("20 MB without a key: %v, want Unauthenticated", err)
	}
	conn.Close() // the proxy counts a connection's bytes when it closes
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for deadline := time.After(callTimeout); proxy.sent.Load() == 0; {
		select {
		case <-poll.C:
		case <-deadline:
			t.Fatal("the proxy counted nothing")
		}
	}
	if sent := proxy.sent.Load(); sent > 8<<20 {
		t.Errorf("%d MiB of a 20 MiB unauthenticated message reached the server", sent>>20)
	}

	conn2 := dial(t, ts.svc)
	actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+ts.operator)
	_, err = hooklinev1.NewIngestServiceClient(conn2).Publish(actx, req, grpc.MaxCallSendMsgSize(64<<20))
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("20 MB with a key: %v, want ResourceExhausted", err)
	}
}
