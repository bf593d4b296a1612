package tlsfilestest_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	t.Parallel()
	ca, other := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
	server := parse(t, ca.IssueServer)
	client := parse(t, ca.IssueClient)
	tests := []struct {
		name   string
		cert   *x509.Certificate
		roots  *x509.CertPool
		host   string
		usage  x509.ExtKeyUsage
		verify bool
	}{
		{"server for localhost", server, ca.Pool(), "localhost", x509.ExtKeyUsageServerAuth, true},
		{"server for 127.0.0.1", server, ca.Pool(), "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"server for ::1", server, ca.Pool(), "::1", x509.ExtKeyUsageServerAuth, true},
		{"server for another host", server, ca.Pool(), "example.com", x509.ExtKeyUsageServerAuth, false},
		{"server used as client", server, ca.Pool(), "", x509.ExtKeyUsageClientAuth, false},
		{"server against another CA", server, other.Pool(), "localhost", x509.ExtKeyUsageServerAuth, false},
		{"client", client, ca.Pool(), "", x509.ExtKeyUsageClientAuth, true},
		{"client used as server", client, ca.Pool(), "", x509.ExtKeyUsageServerAuth, false},
		{"client against another CA", client, other.Pool(), "", x509.ExtKeyUsageClientAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.cert.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.usage}})
			if (err == nil) != tt.verify {
				t.Fatalf("Verify: %v, want success %v", err, tt.verify)
			}
		})
	}
}

func parse(t *testing.T, issue func(testing.TB, string) ([]byte, []byte)) *x509.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(issue(t, "leaf"))
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

func TestWriteFiles(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	dir := t.TempDir()
	cert, key := ca.IssueServer(t, "server")
	certFile, keyFile := ca.WriteFiles(t, dir, "server", cert, key)
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, mode %v; want 0600", err, fi.Mode())
	}
	caFile := ca.WriteCA(t, dir, "ca")
	if got, err := os.ReadFile(caFile); err != nil || !bytes.Equal(got, ca.CertPEM()) {
		t.Errorf("CA file: %v; does not hold CertPEM", err)
	}
	p := ca.CertPEM()
	p[0] = 'X'
	if bytes.Equal(p, ca.CertPEM()) {
		t.Error("CertPEM returned the CA's own slice")
	}
}
