package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/hookline/hookline/pkg/internal/lockedbuf"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/kafka"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// stepTimeout bounds each wait of these tests: a build, a start, a
// request, a stop.
const stepTimeout = 60 * time.Second

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     []string
		wantAddr string
		wantErr  string // substring; empty: no error
	}{
		{nil, "127.0.0.1:9092", ""},
		{[]string{"--addr", "127.0.0.1:0"}, "127.0.0.1:0", ""},
		{[]string{"--addr=127.1.2.3:19092"}, "127.1.2.3:19092", ""},
		{[]string{"--addr", "[::1]:9092"}, "[::1]:9092", ""},
		{[]string{"--addr", "localhost:9092"}, "127.0.0.1:9092", ""},
		{[]string{"--addr", "0.0.0.0:9092"}, "", "loopback only"},
		{[]string{"--addr", ":9092"}, "", "loopback only"},
		{[]string{"--addr", "[::]:9092"}, "", "loopback only"},
		{[]string{"--addr", "192.168.1.10:9092"}, "", "loopback only"},
		{[]string{"--addr", "kafka.example:9092"}, "", "loopback only"},
		{[]string{"--addr", "127.0.0.1"}, "", "missing port"},
		{[]string{"--addr", "127.0.0.1:70000"}, "", "not a number from 0 to 65535"},
		{[]string{"--sync"}, "", "--sync needs --data-dir"},
		{[]string{"--data-dir", "/tmp/x", "--sync", "--partitions", "3"}, "127.0.0.1:9092", ""},
		{[]string{"--partitions", "-1"}, "", "negative"},
		{[]string{"--group-min-session-timeout", "-1s"}, "", "negative"},
		{[]string{"--log-level", "loud"}, "", "unknown level"},
		{[]string{"extra"}, "", "unexpected arguments"},
	}
	for _, tc := range tests {
		name := strings.Join(tc.args, " ")
		if name == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			if c.addr != tc.wantAddr {
				t.Errorf("addr %q, want %q", c.addr, tc.wantAddr)
			}
		})
	}
}

// buildServer builds this command into a directory of t's and returns the
// binary's path.
func buildServer(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command to build kfake-server with (go test needs one): %v", err)
	}
	bin := filepath.Join(t.TempDir(), "kfake-server")
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// server is a running kfake-server.
type server struct {
	cmd    *exec.Cmd
	addr   string
	stderr *lockedbuf.Buffer
	exited chan struct{} // closed once Wait returned
	err    error         // Wait's, once exited is closed
}

// startServer starts bin with args and returns once it printed its
// address; it is killed when t ends if still running.
func startServer(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{cmd: exec.Command(bin, args...), stderr: &lockedbuf.Buffer{}, exited: make(chan struct{})}
	s.cmd.Stderr = s.stderr
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("stdout pipe: %v", err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start kfake-server: %v", err)
	}
	first := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			first <- sc.Text()
		}
		close(first)
		_, _ = io.Copy(io.Discard, stdout)
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
	select {
	case line, ok := <-first:
		addr, found := strings.CutPrefix(line, "kfake listening on ")
		if !ok || !found {
			<-s.exited
			t.Fatalf("kfake-server %v printed %q, then exited: %v\nstderr:\n%s", args, line, s.err, s.stderr)
		}
		s.addr = addr
	case <-time.After(stepTimeout):
		t.Fatalf("kfake-server %v did not say it listens within %v\nstderr:\n%s", args, stepTimeout, s.stderr)
	}
	return s
}

// stop sends sig and waits for the process to exit; it fails t unless
// the exit is clean (SIGTERM) or by the signal (SIGKILL).
func (s *server) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
	select {
	case <-s.exited:
	case <-time.After(stepTimeout):
		t.Fatalf("kfake-server did not exit within %v of %v", stepTimeout, sig)
	}
	var ee *exec.ExitError
	switch {
	case sig == syscall.SIGTERM && s.err != nil:
		t.Fatalf("kfake-server exited with %v after SIGTERM, want a clean exit\nstderr:\n%s", s.err, s.stderr)
	case sig == syscall.SIGKILL && !(errors.As(s.err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL):
		t.Fatalf("kfake-server exited with %v after SIGKILL", s.err)
	}
}

// open connects a Transport to s; it is closed when t ends.
func (s *server) open(t *testing.T) *kafka.Transport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	tr, err := kafka.New(ctx, kafka.Config{Brokers: []string{s.addr}, Partitions: 2}, nil)
	if err != nil {
		t.Fatalf("kafka.New on %s: %v", s.addr, err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return tr
}

// consumeUntil consumes stream for group, acknowledging everything, until
// want was handled, then stops the consumer (which commits) and returns
// the IDs handled.
func consumeUntil(t *testing.T, tr *kafka.Transport, group, want string) map[string]bool {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]bool{}
	got := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- tr.Consume(ctx, transport.Deliveries, transport.ConsumerConfig{Group: group}, func(hctx context.Context, m transport.Received) {
			_ = m.Ack(hctx)
			mu.Lock()
			seen[m.Message().ID] = true
			mu.Unlock()
			if m.Message().ID == want {
				once.Do(func() { close(got) })
			}
		})
	}()
	select {
	case <-got:
	case <-time.After(stepTimeout):
		t.Errorf("group %s did not get %s within %v", group, want, stepTimeout)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Consume: %v", err)
		}
	case <-time.After(stepTimeout):
		t.Errorf("Consume did not return within %v of cancel", stepTimeout)
	}
	mu.Lock()
	defer mu.Unlock()
	return seen
}

func publish(t *testing.T, tr *kafka.Transport, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	if _, err := tr.Publish(ctx, transport.Deliveries, transport.Message{ID: id, Key: "k", Data: []byte(id)}); err != nil {
		t.Fatalf("Publish %s: %v", id, err)
	}
}

// TestServer builds kfake-server and runs it with a data directory: a
// Transport publishes and consumes a message through it; the server is
// stopped (cleanly, or killed) and started again on the same address and
// directory, where the message is still stored and the group's commit
// still holds (the group gets only the newer message).
func TestServer(t *testing.T) {
	t.Parallel()
	bin := buildServer(t)
	tests := []struct {
		name  string
		sig   syscall.Signal
		extra []string
	}{
		{"SIGTERM", syscall.SIGTERM, nil},
		{"SIGKILL", syscall.SIGKILL, nil},
		{"SIGKILL with --sync", syscall.SIGKILL, []string{"--sync"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			s := startServer(t, bin, append([]string{"--addr", "127.0.0.1:0", "--data-dir", dir}, tc.extra...)...)
			tr := s.open(t)
			publish(t, tr, "first")
			consumeUntil(t, tr, "g", "first")
			if err := tr.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s.stop(t, tc.sig)

			s2 := startServer(t, bin, append([]string{"--addr", s.addr, "--data-dir", dir}, tc.extra...)...)
			if s2.addr != s.addr {
				t.Fatalf("restarted on %s, want %s", s2.addr, s.addr)
			}
			tr2 := s2.open(t)
			publish(t, tr2, "second")
			if seen := consumeUntil(t, tr2, "g", "second"); seen["first"] {
				t.Error("group g got first again: its commit was lost")
			}
			if seen := consumeUntil(t, tr2, "h", "second"); !seen["first"] {
				t.Error("a new group did not get first: the record was lost")
			}
			s2.stop(t, syscall.SIGTERM)
		})
	}
}
