package natsembed

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Defaults of the storage watchdog.
const (
	// DefaultRecoverInterval is how often a server whose storage failed
	// checks whether it can write again.
	DefaultRecoverInterval = time.Second
	// DefaultMinFreeBytes is the free space the store's file system must
	// have again before JetStream is restarted on it.
	DefaultMinFreeBytes = 4 << 20
)

// ErrStorage means JetStream could not write to its store directory (the
// disk is full, or failing): the server accepts no message until the
// watchdog has restarted JetStream on a writable store.
var ErrStorage = errors.New("natsembed: JetStream storage failed")

// storageFault is a write failure of JetStream's store, as logged.
type storageFault struct {
	msg  string
	when time.Time
}

// storageFailure reports whether a server log line is a failed write to
// JetStream's store. A filestore that failed a write refuses every later
// one, even once the disk has room again, until JetStream restarts.
func storageFailure(line string) bool {
	return strings.Contains(line, "no space left on device") ||
		strings.Contains(line, "Critical write error") ||
		strings.Contains(line, "disk quota exceeded") ||
		strings.Contains(line, "insufficient resources")
}

// Healthy reports whether JetStream can store messages: nil, or an error
// wrapping ErrStorage that says what failed and that the server retries.
// An embedded server recovers by itself: once the store's file system has
// MinFreeBytes free again, the watchdog restarts the server, which reopens
// every stream from its files.
func (s *Server) Healthy() error {
	f := s.fault.Load()
	if f == nil {
		return nil
	}
	return fmt.Errorf("%w since %s: %s (the server restarts once %s has %d MiB free)",
		ErrStorage, f.when.UTC().Format(time.RFC3339), f.msg, s.opts.StoreDir, s.minFree()>>20)
}

func (s *Server) minFree() uint64 {
	if s.opts.MinFreeBytes > 0 {
		return s.opts.MinFreeBytes
	}
	return DefaultMinFreeBytes
}

// noteStorageFailure records a failed write, once per fault, and ends the
// context FaultContext handed out.
func (s *Server) noteStorageFailure(msg string, now time.Time) {
	if s.fault.CompareAndSwap(nil, &storageFault{msg: msg, when: now}) {
		s.faultMu.Lock()
		s.faultCancel()
		s.faultMu.Unlock()
	}
}

// FaultContext returns a context that is done once JetStream's storage
// fails (already done while it has failed): a caller waiting for the
// broker can stop waiting then, with Healthy's error. After a recovery a
// new, live context is handed out.
func (s *Server) FaultContext() context.Context {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	return s.faultCtx
}

// resetFault clears fault f after a recovery and hands out a live
// FaultContext again.
func (s *Server) resetFault(f *storageFault) {
	s.faultMu.Lock()
	defer s.faultMu.Unlock()
	if s.fault.CompareAndSwap(f, nil) {
		s.faultCtx, s.faultCancel = context.WithCancel(context.Background())
	}
}

// watch restarts JetStream after a storage fault once the store has room,
// until stop is closed.
func (s *Server) watch(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	interval := s.opts.RecoverInterval
	if interval <= 0 {
		interval = DefaultRecoverInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		f := s.fault.Load()
		if f == nil {
			continue
		}
		free, err := freeBytes(s.opts.StoreDir)
		if err != nil || free < s.minFree() {
			continue
		}
		if err := s.restartServer(); err != nil {
			s.logger.Warn("restarting the NATS server after a storage fault failed; retrying", "err", err)
			continue
		}
		s.resetFault(f)
		s.logger.Info("NATS server restarted after a storage fault: storing messages again", "fault", f.msg, "down_for", time.Since(f.when).Round(time.Millisecond))
	}
}

// restartServer stops the nats-server and starts a new one on the same
// store, port and credentials: every stream and consumer is reopened from
// its files with a fresh write path. Clients reconnect by themselves (an
// in-process client through InProcessConn, which reaches the new server).
// The whole server is restarted, not only JetStream: re-enabling
// JetStream on a running server races with requests in flight inside
// nats-server.
func (s *Server) restartServer() error {
	old := s.current()
	old.Shutdown()
	old.WaitForShutdown()
	ns, err := s.startServer(s.opts)
	if err != nil {
		return err
	}
	s.nsMu.Lock()
	s.ns = ns
	s.nsMu.Unlock()
	return nil
}

// freeBytes is the space available to unprivileged writers on the file
// system holding dir.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}
