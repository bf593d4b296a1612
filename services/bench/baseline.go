package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// BaselineResult is one baseline run: posts POSTs of a PayloadSize body
// sent straight to the receiver by workers concurrent workers over pooled
// keep-alive connections, no Hookline in between.
type BaselineResult struct {
	Posts      int     `json:"posts"`
	Workers    int     `json:"workers"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	Errors     int64   `json:"errors"`
	CPUSeconds float64 `json:"harness_cpu_seconds"`
}

// RunBaseline sends posts POSTs to rcv's baseline endpoint from workers
// goroutines sharing one pooled HTTP client and reports the rate. Each
// request carries a webhook-id and the same kind of 1 KB payload Hookline
// delivers, so the receiver does the same work for it.
func RunBaseline(ctx context.Context, rcv *Receiver, posts, workers int) (BaselineResult, error) {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        workers * 2,
		MaxIdleConnsPerHost: workers * 2,
		IdleConnTimeout:     time.Minute,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	url := rcv.BaselineURL()
	before := rcv.baselineLog().delivered.Load()
	base := rcv.baselineSeq.Add(int64(posts)) - int64(posts) // sequence numbers of this run
	cpu0 := selfCPU()
	start := time.Now()
	failed, first := postBaseline(ctx, client, url, base, posts, workers)
	elapsed := time.Since(start)
	res := BaselineResult{
		Posts: posts, Workers: workers, Seconds: elapsed.Seconds(),
		PerSecond: float64(posts) / elapsed.Seconds(), Errors: failed,
		CPUSeconds: selfCPU() - cpu0,
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("baseline: %w", err)
	}
	if res.Errors > 0 {
		return res, fmt.Errorf("baseline: %d of %d POSTs failed (first: %v)", res.Errors, posts, first)
	}
	if got := rcv.baselineLog().delivered.Load() - before; got != int64(posts) {
		return res, fmt.Errorf("baseline: the receiver recorded %d of %d POSTs", got, posts)
	}
	return res, nil
}

// postBaseline sends posts POSTs of sequence numbers base onwards to url
// from workers goroutines sharing client, and returns once every worker
// has stopped: after the last POST, or as soon as ctx is done. It returns
// how many POSTs failed (not sent, or not answered 200) and the first
// error met.
func postBaseline(ctx context.Context, client *http.Client, url string, base int64, posts, workers int) (int64, error) {
	var (
		next   atomic.Int64
		errs   atomic.Int64
		wg     sync.WaitGroup
		first  error
		firstM sync.Once
	)
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, PayloadSize)
			for {
				seq := next.Add(1) - 1
				if seq >= int64(posts) || ctx.Err() != nil {
					return
				}
				buf = AppendPayload(buf[:0], time.Now().UnixNano(), base+seq)
				ok, err := postOne(ctx, client, url, buf, base+seq)
				if !ok {
					errs.Add(1)
				}
				if err != nil {
					firstM.Do(func() { first = err })
				}
			}
		})
	}
	wg.Wait()
	return errs.Load(), first
}

// postOne POSTs payload to url with the webhook-id of sequence number seq
// and reads the answer whole. ok is whether it was answered 200; err says
// why a request could not be made or sent.
func postOne(ctx context.Context, client *http.Client, url string, payload []byte, seq int64) (ok bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("webhook-id", "base_"+strconv.FormatInt(seq, 10))
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}
