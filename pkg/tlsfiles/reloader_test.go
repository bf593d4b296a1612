package tlsfiles_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
)

func TestReloaderServesReplacedCertificate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// layout writes the first pair and returns the paths to configure.
		layout func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) (certFile, keyFile string)
		// replace puts the second pair where layout's paths lead.
		replace func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte)
	}{
		{
			name: "overwritten in place and touched",
			layout: func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) (string, string) {
				return ca.WriteFiles(t, dir, "server", cert, key)
			},
			replace: func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) {
				certFile, keyFile := ca.WriteFiles(t, dir, "server", cert, key)
				touch(t, certFile, keyFile)
			},
		},
		{
			// Only the files' identity tells the change.
			name: "renamed into place, same size and time",
			layout: func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) (string, string) {
				return ca.WriteFiles(t, dir, "server", pad(t, cert, 4096), pad(t, key, 1024))
			},
			replace: func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) {
				newCert, newKey := ca.WriteFiles(t, dir, "server.new", pad(t, cert, 4096), pad(t, key, 1024))
				for from, to := range map[string]string{newCert: filepath.Join(dir, "server.crt"), newKey: filepath.Join(dir, "server.key")} {
					old, err := os.Stat(to)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.Chtimes(from, old.ModTime(), old.ModTime()); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(from, to); err != nil {
						t.Fatal(err)
					}
				}
			},
		},
		{
			name: "symlinked directory swapped (Kubernetes secret volume)",
			layout: func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) (string, string) {
				v1 := filepath.Join(dir, "v1")
				if err := os.Mkdir(v1, 0o700); err != nil {
					t.Fatal(err)
				}
				ca.WriteFiles(t, v1, "tls", cert, key)
				if err := os.Symlink("v1", filepath.Join(dir, "data")); err != nil {
					t.Fatal(err)
				}
				return filepath.Join(dir, "data", "tls.crt"), filepath.Join(dir, "data", "tls.key")
			},
			replace: func(t *testing.T, ca *tlsfilestest.CA, dir string, cert, key []byte) {
				v2 := filepath.Join(dir, "v2")
				if err := os.Mkdir(v2, 0o700); err != nil {
					t.Fatal(err)
				}
				ca.WriteFiles(t, v2, "tls", cert, key)
				if err := os.Symlink("v2", filepath.Join(dir, "data.tmp")); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(filepath.Join(dir, "data.tmp"), filepath.Join(dir, "data")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := tlsfilestest.NewCA(t)
			dir := t.TempDir()
			cert, key := ca.IssueServer(t, "server-one")
			certFile, keyFile := tt.layout(t, ca, dir, cert, key)
			r, clock, logs := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile})
			addr := serveTLS(t, r.TLSConfig())
			client := &tls.Config{RootCAs: ca.Pool()}

			if got := servedCN(t, addr, client); got != "server-one" {
				t.Fatalf("served %q, want server-one", got)
			}

			cert, key = ca.IssueServer(t, "server-two")
			tt.replace(t, ca, dir, cert, key)

			// Files are looked at no more than once per CheckInterval.
			clock.Advance(tlsfiles.CheckInterval - time.Nanosecond)
			if got := servedCN(t, addr, client); got != "server-one" {
				t.Fatalf("before CheckInterval passed: served %q, want server-one", got)
			}
			clock.Advance(time.Nanosecond)
			if got := servedCN(t, addr, client); got != "server-two" {
				t.Fatalf("after replacing the files: served %q, want server-two\nlogs:\n%s", got, logs.dump())
			}
			if got := r.Certificate().Leaf.Subject.CommonName; got != "server-two" {
				t.Errorf("Certificate() = %q, want server-two", got)
			}
			clock.Advance(tlsfiles.CheckInterval)
			if got := servedCN(t, addr, client); got != "server-two" {
				t.Fatalf("later: served %q, want server-two", got)
			}
			if n := logs.count(slog.LevelInfo); n != 1 {
				t.Errorf("%d Info records, want 1 for the reload:\n%s", n, logs.dump())
			}
			if n := logs.count(slog.LevelError); n != 0 {
				t.Errorf("%d Error records, want 0:\n%s", n, logs.dump())
			}
		})
	}
}

// pad appends newlines to b up to n bytes; PEM ignores them.
func pad(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	if len(b) > n {
		t.Fatalf("%d bytes do not fit in %d", len(b), n)
	}
	return append(b, bytes.Repeat([]byte("\n"), n-len(b))...)
}

func TestReloaderKeepsLastGoodCertificate(t *testing.T) {
	t.Parallel()
	half := func(b []byte) []byte { return b[:len(b)/2] }
	tests := []struct {
		name string
		// spoil replaces the good files with bad ones and makes the
		// change visible.
		spoil func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string)
	}{
		{"half-written cert", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			cert, _ := ca.IssueServer(t, "server-two")
			writeFile(t, certFile, half(cert))
			touch(t, certFile)
		}},
		{"half-written key", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			cert, key := ca.IssueServer(t, "server-two")
			writeFile(t, certFile, cert)
			writeFile(t, keyFile, half(key))
			touch(t, certFile, keyFile)
		}},
		{"cut-off chain", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			// The leaf is whole; the intermediate after it is not.
			cert, key := ca.IssueServer(t, "server-two")
			writeFile(t, certFile, append(cert, half(ca.CertPEM())...))
			writeFile(t, keyFile, key)
			touch(t, certFile, keyFile)
		}},
		{"new cert, old key", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			cert, _ := ca.IssueServer(t, "server-two")
			writeFile(t, certFile, cert)
			touch(t, certFile)
		}},
		{"old cert, new key", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			_, key := ca.IssueServer(t, "server-two")
			writeFile(t, keyFile, key)
			touch(t, keyFile)
		}},
		{"empty cert file", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			writeFile(t, certFile, nil)
			touch(t, certFile)
		}},
		{"key file removed", func(t *testing.T, ca *tlsfilestest.CA, certFile, keyFile string) {
			if err := os.Remove(keyFile); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ca := tlsfilestest.NewCA(t)
			cert, key := ca.IssueServer(t, "server-one")
			certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "server", cert, key)
			r, clock, logs := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile})
			addr := serveTLS(t, r.TLSConfig())
			client := &tls.Config{RootCAs: ca.Pool()}

			tt.spoil(t, ca, certFile, keyFile)
			for range 3 {
				clock.Advance(tlsfiles.CheckInterval)
				if got := servedCN(t, addr, client); got != "server-one" {
					t.Fatalf("after a bad replacement: served %q, want server-one", got)
				}
			}
			// Logged once for the change, not once per look.
			if n := logs.count(slog.LevelError); n != 1 {
				t.Errorf("%d Error records, want 1:\n%s", n, logs.dump())
			}

			// The next good change is picked up.
			cert, key = ca.IssueServer(t, "server-three")
			ca.WriteFiles(t, filepath.Dir(certFile), "server", cert, key)
			touch(t, certFile, keyFile)
			clock.Advance(tlsfiles.CheckInterval)
			if got := servedCN(t, addr, client); got != "server-three" {
				t.Fatalf("after a good replacement: served %q, want server-three\nlogs:\n%s", got, logs.dump())
			}
			if n := logs.count(slog.LevelError); n != 1 {
				t.Errorf("%d Error records, want still 1:\n%s", n, logs.dump())
			}
			if n := logs.count(slog.LevelInfo); n != 1 {
				t.Errorf("%d Info records, want 1:\n%s", n, logs.dump())
			}
		})
	}
}

func TestReloaderReload(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	cert, key := ca.IssueServer(t, "server-one")
	dir := t.TempDir()
	certFile, keyFile := ca.WriteFiles(t, dir, "server", cert, key)
	r, _, logs := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile})
	addr := serveTLS(t, r.TLSConfig())
	client := &tls.Config{RootCAs: ca.Pool()}

	// Reload needs neither a visible change nor CheckInterval to pass.
	cert, key = ca.IssueServer(t, "server-two")
	ca.WriteFiles(t, dir, "server", cert, key)
	if err := r.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := servedCN(t, addr, client); got != "server-two" {
		t.Fatalf("after Reload: served %q, want server-two", got)
	}

	// A failed Reload reports the problem and keeps the good certificate.
	writeFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\nMIIB"))
	err := r.Reload()
	if err == nil || !strings.Contains(err.Error(), "cert file: ") {
		t.Fatalf("Reload of a cut-off cert file = %v, want an error naming the cert file", err)
	}
	if got := servedCN(t, addr, client); got != "server-two" {
		t.Fatalf("after a failed Reload: served %q, want server-two", got)
	}
	if n := logs.count(slog.LevelError); n != 1 {
		t.Errorf("%d Error records, want 1:\n%s", n, logs.dump())
	}
}

func TestReloaderMutualTLS(t *testing.T) {
	t.Parallel()
	serverCA, clientCA, otherCA := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
	dir := t.TempDir()
	cert, key := serverCA.IssueServer(t, "server")
	certFile, keyFile := serverCA.WriteFiles(t, dir, "server", cert, key)
	caFile := clientCA.WriteCA(t, dir, "clients")
	r, clock, logs := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile})
	addr := serveTLS(t, r.TLSConfig())

	pair := func(cert, key []byte) []tls.Certificate {
		c, err := tls.X509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return []tls.Certificate{c}
	}
	fromClientCA := pair(clientCA.IssueClient(t, "client-a"))
	fromOtherCA := pair(otherCA.IssueClient(t, "client-b"))
	serverUsage := pair(clientCA.IssueServer(t, "not-a-client"))

	type attempt struct {
		name   string
		certs  []tls.Certificate
		accept bool
	}
	run := func(t *testing.T, attempts []attempt) {
		for _, a := range attempts {
			t.Run(a.name, func(t *testing.T) {
				t.Parallel()
				_, err := dial(addr, &tls.Config{RootCAs: serverCA.Pool(), Certificates: a.certs})
				switch {
				case a.accept && err != nil:
					t.Fatalf("refused: %v", err)
				case !a.accept && !isRefused(err):
					t.Fatalf("got error %v, want the server to refuse the handshake", err)
				}
			})
		}
	}

	t.Run("client CA", func(t *testing.T) {
		run(t, []attempt{
			{"cert from the client CA", fromClientCA, true},
			{"no client cert", nil, false},
			{"cert from another CA", fromOtherCA, false},
			{"server cert from the client CA", serverUsage, false},
		})
	})

	// The client CA file is reloaded too. (Certificate looks at the files
	// as a handshake would, so that the parallel attempts below all come
	// after the look: one racing with it would get the previous pool.)
	writeFile(t, caFile, otherCA.CertPEM())
	touch(t, caFile)
	clock.Advance(tlsfiles.CheckInterval)
	_ = r.Certificate()

	t.Run("client CA replaced", func(t *testing.T) {
		run(t, []attempt{
			{"cert from the old client CA", fromClientCA, false},
			{"cert from the new client CA", fromOtherCA, true},
			{"no client cert", nil, false},
		})
	})

	// A bad CA bundle keeps the last good one.
	writeFile(t, caFile, nil)
	touch(t, caFile)
	clock.Advance(tlsfiles.CheckInterval)
	_ = r.Certificate()

	t.Run("client CA emptied", func(t *testing.T) {
		run(t, []attempt{
			{"cert from the old client CA", fromClientCA, false},
			{"cert from the last good client CA", fromOtherCA, true},
		})
	})
	if n := logs.count(slog.LevelError); n != 1 {
		t.Errorf("%d Error records, want 1 for the empty bundle:\n%s", n, logs.dump())
	}
}

// A session resumed after the client CA changed must be refused like a
// new one: resumption must not bypass the new bundle.
func TestReloaderClientCARotationRefusesResumption(t *testing.T) {
	t.Parallel()
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(version), func(t *testing.T) {
			t.Parallel()
			serverCA, clientCA, otherCA := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
			dir := t.TempDir()
			cert, key := serverCA.IssueServer(t, "server")
			certFile, keyFile := serverCA.WriteFiles(t, dir, "server", cert, key)
			caFile := clientCA.WriteCA(t, dir, "clients")
			r, clock, _ := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile})
			addr := serveTLS(t, r.TLSConfig())

			clientCert, err := tls.X509KeyPair(clientCA.IssueClient(t, "client"))
			if err != nil {
				t.Fatal(err)
			}
			client := &tls.Config{
				RootCAs:            serverCA.Pool(),
				Certificates:       []tls.Certificate{clientCert},
				ClientSessionCache: tls.NewLRUClientSessionCache(4),
				MinVersion:         version,
				MaxVersion:         version,
			}
			if _, err := dial(addr, client); err != nil {
				t.Fatalf("first connection: %v", err)
			}
			cs, err := dial(addr, client)
			if err != nil {
				t.Fatalf("second connection: %v", err)
			}
			if !cs.DidResume {
				t.Fatal("second connection did not resume its session; the test proves nothing")
			}

			writeFile(t, caFile, otherCA.CertPEM())
			touch(t, caFile)
			clock.Advance(tlsfiles.CheckInterval)
			if cs, err := dial(addr, client); !isRefused(err) {
				t.Fatalf("after the client CA changed: resumed=%v err=%v, want the server to refuse", cs.DidResume, err)
			}
		})
	}
}

// Handshakes racing with rotations always get a whole, valid certificate.
func TestReloaderConcurrentHandshakesDuringRotation(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	dir := t.TempDir()
	cert, key := ca.IssueServer(t, "gen-0")
	certFile, keyFile := ca.WriteFiles(t, dir, "server", cert, key)
	clock := newFakeClock()
	r, err := tlsfiles.NewReloaderWithClock(tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile},
		slog.New(slog.DiscardHandler), clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveTLS(t, r.TLSConfig())
	client := &tls.Config{RootCAs: ca.Pool()}

	const generations = 5
	valid := map[string]bool{"gen-0": true}
	pairs := make([][2][]byte, generations)
	for i := range pairs {
		name := "gen-" + string(rune('1'+i))
		valid[name] = true
		pairs[i][0], pairs[i][1] = ca.IssueServer(t, name)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cs, err := dial(addr, client)
				if err != nil {
					t.Errorf("handshake during rotation: %v", err)
					return
				}
				if cn := cs.PeerCertificates[0].Subject.CommonName; !valid[cn] {
					t.Errorf("served %q", cn)
					return
				}
			}
		})
	}
	for _, p := range pairs {
		ca.WriteFiles(t, dir, "server", p[0], p[1])
		touch(t, certFile, keyFile)
		clock.Advance(tlsfiles.CheckInterval)
		_ = r.Certificate() // a look of its own, in case no handshake got the lock
		if _, err := dial(addr, client); err != nil {
			t.Errorf("handshake after rotation: %v", err)
		}
	}
	close(stop)
	wg.Wait()

	clock.Advance(tlsfiles.CheckInterval)
	if got := servedCN(t, addr, client); got != "gen-5" {
		t.Fatalf("after the last rotation: served %q, want gen-5", got)
	}
}

func TestReloaderALPN(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	cert, key := ca.IssueServer(t, "server")
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "server", cert, key)
	r, _, _ := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile})
	addr := serveTLS(t, r.TLSConfig())

	tests := []struct {
		offer []string
		want  string
	}{
		{[]string{"h2"}, "h2"},
		{[]string{"http/1.1"}, "http/1.1"},
		{[]string{"http/1.1", "h2"}, "h2"}, // the server's preference wins
		{nil, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.offer, ","), func(t *testing.T) {
			t.Parallel()
			cs, err := dial(addr, &tls.Config{RootCAs: ca.Pool(), NextProtos: tt.offer})
			if err != nil {
				t.Fatal(err)
			}
			if cs.NegotiatedProtocol != tt.want {
				t.Fatalf("negotiated %q, want %q", cs.NegotiatedProtocol, tt.want)
			}
		})
	}
}

// An http.Server given the Reloader's config serves HTTP/2 (what
// grpc-gateway and gRPC clients need) and HTTP/1.1.
func TestReloaderHTTPServer(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	cert, key := ca.IssueServer(t, "server")
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "server", cert, key)
	r, _, _ := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			_, _ = io.WriteString(w, req.Proto)
		}),
		TLSConfig:         r.TLSConfig(),
		ReadHeaderTimeout: ioTimeout,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("ServeTLS: %v", err)
		}
	})

	for _, tt := range []struct {
		name  string
		http2 bool
		want  string
	}{
		{"HTTP/2", true, "HTTP/2.0"},
		{"HTTP/1.1", false, "HTTP/1.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, ForceAttemptHTTP2: tt.http2}
			if !tt.http2 {
				tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
			}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: ioTimeout}
			resp, err := c.Get("https://" + ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != tt.want || resp.Proto != tt.want {
				t.Fatalf("server saw %s, client %s; want %s", body, resp.Proto, tt.want)
			}
		})
	}
}

func TestReloaderMinVersion(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	cert, key := ca.IssueServer(t, "server")
	certFile, keyFile := ca.WriteFiles(t, t.TempDir(), "server", cert, key)
	tests := []struct {
		name          string
		min, clientMx uint16
		accept        bool
	}{
		{"default accepts TLS 1.2", 0, tls.VersionTLS12, true},
		{"default refuses TLS 1.1", 0, tls.VersionTLS11, false},
		{"TLS 1.3 accepts TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, true},
		{"TLS 1.3 refuses TLS 1.2", tls.VersionTLS13, tls.VersionTLS12, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, _, _ := newReloader(t, tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, MinVersion: tt.min})
			addr := serveTLS(t, r.TLSConfig())
			cs, err := dial(addr, &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS10, MaxVersion: tt.clientMx})
			switch {
			case tt.accept && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.accept && cs.Version != tt.clientMx:
				t.Fatalf("negotiated %s, want %s", tls.VersionName(cs.Version), tls.VersionName(tt.clientMx))
			case !tt.accept && !isRefused(err):
				t.Fatalf("got %v, want the server to refuse", err)
			}
		})
	}
}

func TestNewReloaderErrors(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	dir := t.TempDir()
	cert, key := ca.IssueServer(t, "server")
	certFile, keyFile := ca.WriteFiles(t, dir, "server", cert, key)
	otherCert, otherKeyPEM := ca.IssueServer(t, "other")
	_, otherKey := ca.WriteFiles(t, dir, "other", otherCert, otherKeyPEM)
	missing := filepath.Join(dir, "missing.pem")

	tests := []struct {
		name   string
		config tlsfiles.ServerConfig
		want   []string
		is     error
	}{
		{"not enabled", tlsfiles.ServerConfig{}, []string{"not enabled"}, nil},
		{"only cert", tlsfiles.ServerConfig{CertFile: certFile}, []string{"key file: must be set"}, nil},
		{"missing cert", tlsfiles.ServerConfig{CertFile: missing, KeyFile: keyFile}, []string{"cert file: open " + missing}, fs.ErrNotExist},
		{"mismatched", tlsfiles.ServerConfig{CertFile: certFile, KeyFile: otherKey}, []string{"key file: private key in", "does not match"}, nil},
		{"missing client CA", tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: missing}, []string{"client CA file: open"}, fs.ErrNotExist},
		{"bad MinVersion", tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, MinVersion: tls.VersionTLS11}, []string{"MinVersion 0x0302"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := tlsfiles.NewReloader(tt.config, nil)
			if err == nil {
				t.Fatalf("NewReloader succeeded (%v), want an error", r)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}
