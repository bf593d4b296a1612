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
	var (
		next   atomic.Int64
		errs   atomic.Int64
		wg     sync.WaitGroup
		first  error
		firstM sync.Once
	)
	cpu0 := selfCPU()
	start := time.Now()
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, PayloadSize)
			for {
				seq := next.Add(1) - 1
				if seq >= int64(posts) || ctx.Err() != nil {
					return
				}
				buf = AppendPayload(buf[:0], time.Now().UnixNano(), base+seq)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
				if err != nil {
					errs.Add(1)
					firstM.Do(func() { first = err })
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("webhook-id", "base_"+strconv.FormatInt(base+seq, 10))
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					firstM.Do(func() { first = err })
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	res := BaselineResult{
		Posts: posts, Workers: workers, Seconds: elapsed.Seconds(),
		PerSecond: float64(posts) / elapsed.Seconds(), Errors: errs.Load(),
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
