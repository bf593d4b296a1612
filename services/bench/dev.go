package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hookline/hookline/services/internal/childproc"
)

// Timings of the child process.
const (
	readyTimeout = 60 * time.Second
	stopGrace    = 20 * time.Second
	pollEvery    = 50 * time.Millisecond
)

// PprofFlag is the `hookline dev` flag that serves net/http/pprof; the
// harness reads goroutine counts from it when the binary has it.
const PprofFlag = "--pprof-addr"

// devProcess is a `hookline dev` child with a fresh data directory on
// free loopback ports.
type devProcess struct {
	cmd       *exec.Cmd
	dir       string
	logPath   string
	grpcAddr  string
	httpAddr  string
	pprofAddr string // empty when the binary has no PprofFlag
	exited    chan struct{}
	err       error // Wait's result, once exited is closed
}

// DevSupportsPprof reports whether the hookline binary's `dev` command has
// PprofFlag.
func DevSupportsPprof(ctx context.Context, bin string) (bool, error) {
	out, err := exec.CommandContext(ctx, bin, "dev", "--help").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("%s dev --help: %w\n%s", bin, err, out)
	}
	return strings.Contains(string(out), PprofFlag+" "), nil
}

// startDev starts `bin dev` with its data in dir/data, its log in
// dir/hookline.log, the gRPC and HTTP APIs on free loopback ports, the
// given extra arguments last (so they win), and waits until /readyz
// answers 200.
func startDev(ctx context.Context, bin, dir string, pprof bool, logLevel string, extra []string) (*devProcess, error) {
	p := &devProcess{dir: dir, logPath: filepath.Join(dir, "hookline.log"), exited: make(chan struct{})}
	var err error
	if p.grpcAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	if p.httpAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	args := []string{"dev",
		"--data-dir", filepath.Join(dir, "data"),
		"--ingest-grpc-addr", p.grpcAddr,
		"--ingest-http-addr", p.httpAddr,
		"--log-level", logLevel,
	}
	if pprof {
		if p.pprofAddr, err = freeAddr(); err != nil {
			return nil, err
		}
		args = append(args, PprofFlag, p.pprofAddr)
	}
	args = append(args, extra...)
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hookline log: %w", err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.Env = childproc.Env()
	childproc.Detach(p.cmd)
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = f.Close()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		_ = p.stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls /readyz until it answers 200.
func (p *devProcess) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	url := "http://" + p.httpAddr + "/readyz"
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	last := "no answer yet"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("readiness request: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("hookline dev: %s not 200 after %v (last: %s); log:\n%s", url, readyTimeout, last, childproc.Tail(p.logPath, 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("hookline dev: waiting for readiness: %w", ctx.Err())
		case <-p.exited:
			return fmt.Errorf("hookline dev exited before it was ready (%v); log:\n%s", p.err, childproc.Tail(p.logPath, 20))
		case <-tick.C:
		}
	}
}

// running reports whether the child has not exited.
func (p *devProcess) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// usage reads the child's CPU time and memory from /proc.
func (p *devProcess) usage() (ProcUsage, error) {
	return readProcUsage(p.cmd.Process.Pid)
}

// goroutines returns the child's goroutine count and the count per entry
// function (the function each goroutine was started with) from its pprof
// endpoint, or -1 without error when the child serves no profiles.
func (p *devProcess) goroutines(ctx context.Context) (int, map[string]int, error) {
	if p.pprofAddr == "" {
		return -1, nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.pprofAddr+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil {
		return 0, nil, fmt.Errorf("goroutine profile request: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("goroutine profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, nil, fmt.Errorf("goroutine profile: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("goroutine profile: %w", err)
	}
	return parseGoroutineProfile(string(body))
}

// noFrames names the goroutines whose profile block lists no frames (its
// stack addresses resolve to nothing pprof prints).
const noFrames = "(no frames)"

// parseGoroutineProfile reads a goroutine profile in its debug=1 text
// form: the total, and the goroutines per entry function (the last frame
// of each stack).
func parseGoroutineProfile(text string) (int, map[string]int, error) {
	first, rest, _ := strings.Cut(text, "\n")
	total, err := parseGoroutineTotal(first)
	if err != nil {
		return 0, nil, err
	}
	byEntry := map[string]int{}
	for _, block := range strings.Split(rest, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		countField, _, ok := strings.Cut(lines[0], " @ ")
		n, err := strconv.Atoi(countField)
		if !ok || err != nil {
			continue
		}
		entry := noFrames
		for _, l := range lines[1:] {
			// "#\t0x4a1b2c\tnet/http.(*persistConn).readLoop+0x5f\t/path/file.go:2207"
			f := strings.Split(l, "\t")
			if len(f) >= 3 && f[0] == "#" {
				entry, _, _ = strings.Cut(f[2], "+0x")
			}
		}
		byEntry[entry] += n
	}
	return total, byEntry, nil
}

// parseGoroutineTotal reads N from "goroutine profile: total N".
func parseGoroutineTotal(line string) (int, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("unexpected goroutine profile header %q", line)
	}
	n, err := strconv.Atoi(rest)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile header %q: %w", line, err)
	}
	return n, nil
}

// stop sends SIGTERM, waits up to stopGrace, then SIGKILL. It reports an
// exit that was not caused by the stop, or a stop that needed SIGKILL.
func (p *devProcess) stop() error {
	if !p.running() {
		if p.err != nil {
			return fmt.Errorf("hookline dev had exited: %w", p.err)
		}
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		var ee *exec.ExitError
		if p.err != nil && !(errors.As(p.err, &ee) && !ee.Exited()) {
			return fmt.Errorf("hookline dev stopped with: %w", p.err)
		}
		return nil
	case <-time.After(stopGrace):
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
	return fmt.Errorf("hookline dev did not stop within %v of SIGTERM; killed", stopGrace)
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	return addr, nil
}

// GoroutineGrowth describes the largest changes, at most top of them, of
// the goroutine counts per entry function from before to after, largest
// growth first: "net/http.(*persistConn).readLoop +52, ...". It is empty
// when either is nil or nothing changed.
func GoroutineGrowth(before, after map[string]int, top int) string {
	if before == nil || after == nil {
		return ""
	}
	type change struct {
		entry string
		d     int
	}
	var cs []change
	for e, n := range after {
		if d := n - before[e]; d != 0 {
			cs = append(cs, change{e, d})
		}
	}
	for e, n := range before {
		if _, ok := after[e]; !ok {
			cs = append(cs, change{e, -n})
		}
	}
	slices.SortFunc(cs, func(a, b change) int {
		if a.d != b.d {
			return b.d - a.d
		}
		return strings.Compare(a.entry, b.entry)
	})
	var parts []string
	for _, c := range cs[:min(top, len(cs))] {
		parts = append(parts, fmt.Sprintf("%s %+d", c.entry, c.d))
	}
	return strings.Join(parts, ", ")
}
