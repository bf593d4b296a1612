// Package tlsfilestest issues throwaway certificates for tests: an in-memory
// ECDSA P-256 certificate authority that signs server and client
// certificates and writes them as PEM files, so tests can run TLS and
// mutual TLS over loopback without any fixture files.
//
// Nothing here is fit for production use: keys are generated per test,
// certificates are valid for a day and never revoked.
package tlsfilestest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Validity is how long certificates issued here are valid from the moment
// they are made; they are also backdated by an hour to tolerate clock skew.
const Validity = 24 * time.Hour

// CA is an in-memory certificate authority. Its methods are safe for
// concurrent use, so parallel subtests may share one CA.
type CA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
}

// NewCA creates a self-signed ECDSA P-256 CA whose common name is unique
// (it carries the serial number), so two CAs in one test never share a
// subject. It fails the test if the key or certificate cannot be made.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlsfilestest: generating CA key: %v", err)
	}
	serial := newSerial(t)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   fmt.Sprintf("tlsfilestest CA %x", serial),
			Organization: []string{"Hookline tests"},
		},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("tlsfilestest: creating CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tlsfilestest: parsing CA certificate: %v", err)
	}
	return &CA{
		cert:    cert,
		key:     key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
	}
}

// CertPEM returns the CA certificate as a PEM CERTIFICATE block: the bundle
// a client verifies servers with, or a server verifies clients with. The
// caller may modify the returned slice.
func (ca *CA) CertPEM() []byte {
	return append([]byte(nil), ca.certPEM...)
}

// Certificate returns the parsed CA certificate. The caller must not
// modify it.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Pool returns a new certificate pool holding only this CA, for
// tls.Config.RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// Issue signs a new leaf certificate for a fresh P-256 key and returns both
// as PEM (the key as a PKCS #8 "PRIVATE KEY" block). The certificate has
// commonName as its subject, dnsNames and ips as its subject alternative
// names, and the extended key usage ServerAuth when server is true or
// ClientAuth when it is false, so a server certificate is refused as a
// client certificate and vice versa. It fails the test on any error.
func (ca *CA) Issue(t testing.TB, commonName string, server bool, dnsNames []string, ips []net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tlsfilestest: generating key for %q: %v", commonName, err)
	}
	usage := x509.ExtKeyUsageClientAuth
	if server {
		usage = x509.ExtKeyUsageServerAuth
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          newSerial(t),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"Hookline tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("tlsfilestest: issuing certificate for %q: %v", commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("tlsfilestest: encoding key for %q: %v", commonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// LoopbackIPs returns 127.0.0.1 and ::1, the addresses IssueServer
// certificates are valid for.
func LoopbackIPs() []net.IP {
	return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
}

// IssueServer issues a server certificate valid for "localhost",
// 127.0.0.1 and ::1: what a test server listening on loopback needs.
func (ca *CA) IssueServer(t testing.TB, commonName string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.Issue(t, commonName, true, []string{"localhost"}, LoopbackIPs())
}

// IssueClient issues a client certificate (ExtKeyUsage ClientAuth, no
// subject alternative names) for mutual TLS.
func (ca *CA) IssueClient(t testing.TB, commonName string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.Issue(t, commonName, false, nil, nil)
}

// WriteFiles writes certPEM to dir/name.crt (mode 0644) and keyPEM to
// dir/name.key (mode 0600), replacing files already there in place, and
// returns both paths. It fails the test on any error. A nil keyPEM writes
// an empty key file.
func (ca *CA) WriteFiles(t testing.TB, dir, name string, certPEM, keyPEM []byte) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatalf("tlsfilestest: %v", err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatalf("tlsfilestest: %v", err)
	}
	return certFile, keyFile
}

// WriteCA writes the CA certificate to dir/name.crt (mode 0644), replacing
// a file already there in place, and returns its path: a one-certificate
// CA bundle. It fails the test on any error.
func (ca *CA) WriteCA(t testing.TB, dir, name string) (caFile string) {
	t.Helper()
	caFile = filepath.Join(dir, name+".crt")
	if err := os.WriteFile(caFile, ca.certPEM, 0o644); err != nil {
		t.Fatalf("tlsfilestest: %v", err)
	}
	return caFile
}

func newSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("tlsfilestest: serial number: %v", err)
	}
	return n.Add(n, big.NewInt(1)) // never zero
}
