// Package tlsfiles builds TLS configurations from PEM files: for Hookline's
// API listeners (the ingest service's gRPC and HTTP servers), with optional
// mutual TLS and certificate rotation without a restart, and for clients
// such as the hookline CLI.
//
// Certificate files hold one or more PEM "CERTIFICATE" blocks, leaf first
// and then any intermediates; other block types are skipped. Key files hold
// an unencrypted "PRIVATE KEY" (PKCS #8), "RSA PRIVATE KEY" (PKCS #1) or
// "EC PRIVATE KEY" (SEC 1) block; the first one found is used. A cert file
// may also be the key file. A file whose last PEM block is cut off (a
// half-written file) is refused rather than read up to the cut.
//
// Every TLS configuration made here requires TLS 1.2 or later.
package tlsfiles

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// nextProtos are the ALPN protocols a Reloader's listener offers, in order
// of preference: "h2" for gRPC and HTTP/2, then "http/1.1".
var nextProtos = []string{"h2", "http/1.1"}

// ServerConfig says where a listener's certificate, key and optional client
// CA bundle are. The zero value is a plaintext listener.
type ServerConfig struct {
	// CertFile and KeyFile are the PEM certificate (chain) and private key
	// the listener presents. Give both or neither; neither means plaintext.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mutual TLS: every client must
	// present a certificate that verifies against this PEM bundle, for
	// client authentication. It needs CertFile and KeyFile.
	ClientCAFile string
	// MinVersion is the lowest TLS version accepted: 0 (meaning
	// tls.VersionTLS12), tls.VersionTLS12 or tls.VersionTLS13.
	MinVersion uint16
}

// Enabled reports whether TLS is configured, that is whether CertFile or
// KeyFile is set. A config that sets only one of them is Enabled but fails
// Validate.
func (c ServerConfig) Enabled() bool {
	return c.CertFile != "" || c.KeyFile != ""
}

// Validate checks c and the files it names, and returns every problem found
// joined with errors.Join (nil if there are none). Each problem names the
// flag that sets the offending setting, flagPrefix+"cert-file",
// flagPrefix+"key-file" or flagPrefix+"client-ca-file", as in
// "--ingest-tls-cert-file: open /etc/x.pem: no such file or directory";
// file errors wrap the underlying error, so errors.Is(err, fs.ErrNotExist)
// works. Validate checks that cert and key are given together, that the
// client CA file comes with them, that each file can be read and parsed,
// that the key matches the certificate, that the CA bundle holds at least
// one certificate, and that MinVersion is supported (a problem with
// MinVersion, which no flag sets, is named "MinVersion"). A config with no
// files set is valid (plaintext).
func (c ServerConfig) Validate(flagPrefix string) error {
	_, _, err := c.load(flagLabels(flagPrefix, "client-ca-file"))
	return err
}

// minVersion returns the effective MinVersion.
func (c ServerConfig) minVersion() uint16 {
	if c.MinVersion == 0 {
		return tls.VersionTLS12
	}
	return c.MinVersion
}

// checkSettings reports the problems that need no file access.
func (c ServerConfig) checkSettings(l labels) []error {
	var errs []error
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", l.key, l.cert))
	case c.CertFile == "" && c.KeyFile != "":
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", l.cert, l.key))
	}
	if c.ClientCAFile != "" && c.CertFile == "" && c.KeyFile == "" {
		errs = append(errs, fmt.Errorf("%s: needs %s and %s: mutual TLS requires TLS", l.ca, l.cert, l.key))
	}
	switch c.MinVersion {
	case 0, tls.VersionTLS12, tls.VersionTLS13:
	default:
		errs = append(errs, fmt.Errorf("MinVersion %#04x: unsupported: use tls.VersionTLS12 or tls.VersionTLS13", c.MinVersion))
	}
	return errs
}

// load checks c and reads its files; cert and pool are set only when the
// corresponding files are configured and good.
func (c ServerConfig) load(l labels) (cert *tls.Certificate, pool *x509.CertPool, err error) {
	errs := c.checkSettings(l)
	if c.CertFile != "" && c.KeyFile != "" {
		var err error
		if cert, err = loadPair(c.CertFile, c.KeyFile, l); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ClientCAFile != "" {
		var err error
		if pool, err = loadPool(c.ClientCAFile, l.ca); err != nil {
			errs = append(errs, err)
		}
	}
	return cert, pool, errors.Join(errs...)
}

// ClientConfig is the client side of TLS: the hookline CLI's --tls,
// --ca-file, --cert-file and --key-file flags, or any other client of a
// Hookline listener. The zero value verifies servers against the system
// roots and presents no client certificate.
type ClientConfig struct {
	// CAFile is a PEM bundle of the CAs servers are verified against,
	// replacing the system roots. Empty means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key presented
	// for mutual TLS. Give both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name the server certificate is verified
	// for (and sent as SNI); empty means the host part of the address
	// dialled.
	ServerName string
	// InsecureSkipVerify turns off server certificate verification. It is
	// for debugging only: it makes the connection open to interception.
	InsecureSkipVerify bool
}

// TLSConfig reads c's files and returns a new client configuration: TLS 1.2
// or later, RootCAs from CAFile (system roots if empty), the client
// certificate if CertFile and KeyFile are set, ServerName and
// InsecureSkipVerify as given. The files are read once, now. Every problem
// is returned, joined, each naming its setting ("CA file", "cert file",
// "key file"); use Validate for errors that name flags.
func (c ClientConfig) TLSConfig() (*tls.Config, error) {
	cfg, err := c.build(plainLabels("CA file"))
	if err != nil {
		return nil, fmt.Errorf("tlsfiles: client TLS: %w", err)
	}
	return cfg, nil
}

// Validate checks c and its files like TLSConfig, but each problem names
// the flag that sets the offending setting: flagPrefix+"ca-file",
// flagPrefix+"cert-file" or flagPrefix+"key-file" (the hookline CLI's
// flags with an empty prefix), as in "--ca-file: /x.pem: no PEM
// certificate found".
func (c ClientConfig) Validate(flagPrefix string) error {
	_, err := c.build(flagLabels(flagPrefix, "ca-file"))
	return err
}

func (c ClientConfig) build(l labels) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, // the caller's explicit choice
	}
	var errs []error
	if c.CAFile != "" {
		pool, err := loadPool(c.CAFile, l.ca)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", l.key, l.cert))
	case c.CertFile == "" && c.KeyFile != "":
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", l.cert, l.key))
	case c.CertFile != "":
		cert, err := loadPair(c.CertFile, c.KeyFile, l)
		if err != nil {
			errs = append(errs, err)
		} else {
			cfg.Certificates = []tls.Certificate{*cert}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// labels are the names errors give the cert, key and CA files.
type labels struct{ cert, key, ca string }

func flagLabels(prefix, caFlag string) labels {
	return labels{cert: "--" + prefix + "cert-file", key: "--" + prefix + "key-file", ca: "--" + prefix + caFlag}
}

func plainLabels(ca string) labels {
	return labels{cert: "cert file", key: "key file", ca: ca}
}

// loadPair reads a certificate chain and its private key. Problems with
// the certificate are labelled l.cert; problems with the key, and a key
// that does not match the certificate, l.key.
func loadPair(certFile, keyFile string, l labels) (*tls.Certificate, error) {
	certs, certErr := readCerts(certFile)
	if certErr != nil {
		certErr = fmt.Errorf("%s: %w", l.cert, certErr)
	}
	key, keyErr := readKey(keyFile)
	if keyErr != nil {
		keyErr = fmt.Errorf("%s: %w", l.key, keyErr)
	}
	if certErr != nil || keyErr != nil {
		return nil, errors.Join(certErr, keyErr)
	}
	leaf := certs[0]
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	signer, isSigner := key.(crypto.Signer)
	if !ok || !isSigner || !pub.Equal(signer.Public()) {
		return nil, fmt.Errorf("%s: private key in %s does not match the certificate in %s (%s)", l.key, keyFile, certFile, l.cert)
	}
	cert := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range certs {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// loadPool reads a CA bundle; it must hold at least one certificate, and
// every certificate in it must parse.
func loadPool(file, label string) (*x509.CertPool, error) {
	certs, err := readCerts(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", label, err)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readCerts parses every CERTIFICATE block of file, in order.
func readCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if err := checkTrailer(file, rest); err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificate found", file)
	}
	return certs, nil
}

// readKey parses the first private key block of file.
func readKey(file string) (crypto.PrivateKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		var key crypto.PrivateKey
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			if _, encrypted := b.Headers["DEK-Info"]; encrypted {
				return nil, fmt.Errorf("%s: encrypted private keys are not supported", file)
			}
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			if _, encrypted := b.Headers["DEK-Info"]; encrypted {
				return nil, fmt.Errorf("%s: encrypted private keys are not supported", file)
			}
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%s: encrypted private keys are not supported", file)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s block: %w", file, b.Type, err)
		}
		return key, nil
	}
	if err := checkTrailer(file, rest); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: no PEM private key found", file)
}

// checkTrailer refuses input left over after the last complete PEM block
// if it starts another block: the file was cut off or mangled.
func checkTrailer(file string, rest []byte) error {
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return fmt.Errorf("%s: truncated or malformed PEM block", file)
	}
	return nil
}
