package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// CheckInterval is the least time between two looks at a Reloader's files.
const CheckInterval = time.Second

// Reloader serves a listener's current certificate and client CA pool from
// the files of a ServerConfig, re-reading them when they change.
//
// Changes are noticed on the handshake path: at most once per
// CheckInterval, a handshake compares each file's modification time, size
// and identity (so a file renamed into place counts as changed) with what
// was last read, and re-reads the certificate pair or the CA bundle if any
// of its files differ. The handshake that notices a change, and every
// handshake that starts after the re-read, use the new files (handshakes
// arriving during the re-read go on with the previous ones rather than
// wait for the disk). Nothing runs in the background, so a Reloader needs
// no closing.
//
// A reload that fails (a half-written file, a key that does not match the
// certificate yet, a missing file) keeps serving the last good certificate
// and CA pool, and is logged once per change of the files, at level Error;
// the next change of the files is tried again. A successful reload is
// logged at level Info. The certificate pair and the CA bundle reload
// independently.
//
// A Reloader is safe for concurrent use.
type Reloader struct {
	cfg    ServerConfig
	logger *slog.Logger
	now    func() time.Time

	lastCheck atomic.Pointer[time.Time] // when the files were last looked at
	cur       atomic.Pointer[snapshot]  // what handshakes get

	mu        sync.Mutex // held while looking at the files
	pairStamp [2]stamp   // cert and key file as last read, good or bad
	caStamp   stamp      // client CA file as last read, good or bad
}

// snapshot is one consistent set of the files' contents.
type snapshot struct {
	cert *tls.Certificate
	pool *x509.CertPool // nil unless mutual TLS
	conf *tls.Config    // handed out by GetConfigForClient; never modified
}

// NewReloader reads c's files and returns a Reloader serving them. It fails
// if TLS is not enabled or c is not valid (see ServerConfig.Validate; the
// errors here name the files' settings rather than flags). logger receives
// reload results; nil means slog.Default().
func NewReloader(c ServerConfig, logger *slog.Logger) (*Reloader, error) {
	return newReloader(c, logger, time.Now)
}

func newReloader(c ServerConfig, logger *slog.Logger, now func() time.Time) (*Reloader, error) {
	if !c.Enabled() {
		return nil, errors.New("tlsfiles: TLS is not enabled: no cert file or key file")
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := plainLabels("client CA file")
	if errs := c.checkSettings(l); len(errs) > 0 {
		return nil, fmt.Errorf("tlsfiles: server TLS: %w", errors.Join(errs...))
	}
	r := &Reloader{cfg: c, logger: logger, now: now}
	// Stat before reading: a file changed after its stat is re-read at the
	// next check.
	r.pairStamp = [2]stamp{statFile(c.CertFile), statFile(c.KeyFile)}
	if c.ClientCAFile != "" {
		r.caStamp = statFile(c.ClientCAFile)
	}
	cert, pool, err := c.load(l)
	if err != nil {
		return nil, fmt.Errorf("tlsfiles: server TLS: %w", err)
	}
	r.cur.Store(r.newSnapshot(cert, pool))
	t := now()
	r.lastCheck.Store(&t)
	return r, nil
}

// TLSConfig returns a new server configuration for tls.NewListener,
// grpc's credentials.NewTLS or http.Server.TLSConfig. Each handshake gets
// the Reloader's current certificate and, with a ClientCAFile, requires a
// client certificate verified against the current CA pool (also on session
// resumption). It offers NextProtos ("h2", "http/1.1") so gRPC and HTTP/2
// work, and requires MinVersion.
//
// Handshakes are configured by the returned config's GetConfigForClient;
// callers may wrap it (as grpc does), but other fields they set on the
// returned config do not reach handshakes.
func (r *Reloader) TLSConfig() *tls.Config {
	s := r.cur.Load()
	cfg := &tls.Config{
		MinVersion: r.cfg.minVersion(),
		NextProtos: slices.Clone(nextProtos),
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.current().cert, nil
		},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current().conf, nil
		},
	}
	if s.pool != nil {
		// Fail closed should GetConfigForClient be dropped by a wrapper.
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = s.pool
	}
	return cfg
}

// Certificate returns the certificate currently served, after looking for
// changed files if CheckInterval has passed since the last look. The
// caller must not modify it.
func (r *Reloader) Certificate() *tls.Certificate {
	return r.current().cert
}

// Reload re-reads every file now, whether or not it changed and however
// recently the files were looked at, for example on SIGHUP. On failure it
// keeps serving the last good files, logs the failure as an automatic
// reload would, and returns it.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.now()
	r.lastCheck.Store(&t)
	return r.reloadLocked(true)
}

// current returns the snapshot to serve, looking at the files first if
// CheckInterval has passed since the last look.
func (r *Reloader) current() *snapshot {
	if r.due() && r.mu.TryLock() {
		// A handshake that finds another one looking at the files goes on
		// with the current snapshot rather than wait for the disk.
		if r.due() {
			t := r.now()
			r.lastCheck.Store(&t)
			_ = r.reloadLocked(false) // logged
		}
		r.mu.Unlock()
	}
	return r.cur.Load()
}

// due reports whether CheckInterval has passed since the last look. A
// clock that went backwards also makes a look due.
func (r *Reloader) due() bool {
	last := r.lastCheck.Load()
	d := r.now().Sub(*last)
	return d < 0 || d >= CheckInterval
}

// reloadLocked re-reads the certificate pair and the CA bundle if their
// files changed since last read (or always, if force), publishes a new
// snapshot if either read well, and logs each outcome. r.mu must be held.
func (r *Reloader) reloadLocked(force bool) error {
	old := r.cur.Load()
	cert, pool := old.cert, old.pool
	var errs []error
	l := plainLabels("client CA file")

	pairStamp := [2]stamp{statFile(r.cfg.CertFile), statFile(r.cfg.KeyFile)}
	if force || !pairStamp[0].same(r.pairStamp[0]) || !pairStamp[1].same(r.pairStamp[1]) {
		r.pairStamp = pairStamp
		c, err := loadPair(r.cfg.CertFile, r.cfg.KeyFile, l)
		if err != nil {
			err = fmt.Errorf("tlsfiles: reloading certificate: %w", err)
			errs = append(errs, err)
			r.logger.Error("TLS certificate reload failed; still serving the previous certificate",
				slog.String("cert_file", r.cfg.CertFile), slog.String("key_file", r.cfg.KeyFile),
				slog.String("serving", describe(old.cert)), slog.Any("error", err))
		} else {
			cert = c
			r.logger.Info("TLS certificate reloaded",
				slog.String("cert_file", r.cfg.CertFile), slog.String("key_file", r.cfg.KeyFile),
				slog.String("serving", describe(c)), slog.Time("not_after", c.Leaf.NotAfter))
		}
	}
	if r.cfg.ClientCAFile != "" {
		caStamp := statFile(r.cfg.ClientCAFile)
		if force || !caStamp.same(r.caStamp) {
			r.caStamp = caStamp
			p, err := loadPool(r.cfg.ClientCAFile, l.ca)
			if err != nil {
				err = fmt.Errorf("tlsfiles: reloading client CA bundle: %w", err)
				errs = append(errs, err)
				r.logger.Error("TLS client CA reload failed; still verifying clients against the previous bundle",
					slog.String("client_ca_file", r.cfg.ClientCAFile), slog.Any("error", err))
			} else {
				pool = p
				r.logger.Info("TLS client CA bundle reloaded", slog.String("client_ca_file", r.cfg.ClientCAFile))
			}
		}
	}
	if cert != old.cert || pool != old.pool {
		r.cur.Store(r.newSnapshot(cert, pool))
	}
	return errors.Join(errs...)
}

func (r *Reloader) newSnapshot(cert *tls.Certificate, pool *x509.CertPool) *snapshot {
	conf := &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   r.cfg.minVersion(),
		NextProtos:   slices.Clone(nextProtos),
	}
	if pool != nil {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		conf.ClientCAs = pool
	}
	return &snapshot{cert: cert, pool: pool, conf: conf}
}

// describe names a certificate for logs.
func describe(c *tls.Certificate) string {
	if c == nil || c.Leaf == nil {
		return ""
	}
	return fmt.Sprintf("subject %q, serial %x", c.Leaf.Subject.String(), c.Leaf.SerialNumber)
}

// stamp is what is known of a file without reading it.
type stamp struct {
	info os.FileInfo // nil if stat failed
	err  string      // the stat error
}

func statFile(name string) stamp {
	fi, err := os.Stat(name)
	if err != nil {
		return stamp{err: err.Error()}
	}
	return stamp{info: fi}
}

// same reports whether a and b describe the same file contents as far as
// modification time, size and identity tell.
func (a stamp) same(b stamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil && a.err == b.err
	}
	return os.SameFile(a.info, b.info) &&
		a.info.ModTime().Equal(b.info.ModTime()) &&
		a.info.Size() == b.info.Size()
}
