package tlsfiles_test

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
)

// testFiles are PEM files, good and bad, shared read-only by parallel
// subtests.
type testFiles struct {
	dir                   string
	cert, key             string // a matching server pair
	otherKey              string // a key that does not match cert
	ca, otherCA           string // one-certificate CA bundles
	clientCert, clientKey string // a client pair from the ca CA
	combined              string // cert and key in one file
	sec1Key               string // key as an "EC PRIVATE KEY" block
	encryptedKey          string
	empty                 string
	garbage               string // not PEM at all
	cutCert               string // a certificate cut off half-way
	missing               string // does not exist
}

func newTestFiles(t *testing.T) (*tlsfilestest.CA, *testFiles) {
	t.Helper()
	ca, other := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
	dir := t.TempDir()
	f := &testFiles{dir: dir, missing: filepath.Join(dir, "missing.pem")}
	path := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		writeFile(t, p, data)
		return p
	}
	cert, key := ca.IssueServer(t, "server")
	f.cert, f.key = ca.WriteFiles(t, dir, "server", cert, key)
	_, otherKey := ca.IssueServer(t, "other")
	f.otherKey = path("other.key", otherKey)
	f.ca = ca.WriteCA(t, dir, "ca")
	f.otherCA = other.WriteCA(t, dir, "other-ca")
	clientCert, clientKey := ca.IssueClient(t, "client")
	f.clientCert, f.clientKey = ca.WriteFiles(t, dir, "client", clientCert, clientKey)
	f.combined = path("combined.pem", append(append([]byte{}, cert...), key...))

	block, _ := pem.Decode(key)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	f.sec1Key = path("sec1.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	f.encryptedKey = path("encrypted.key", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0}}))
	f.empty = path("empty.pem", nil)
	f.garbage = path("garbage.pem", []byte("this is not PEM\n"))
	f.cutCert = path("cut.crt", cert[:len(cert)/2])
	return ca, f
}

// namedFlags returns what each line of err names before its first ": ",
// sorted: the flag (or setting) each joined problem is about.
func namedFlags(err error) []string {
	if err == nil {
		return nil
	}
	var names []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		name, _, _ := strings.Cut(line, ": ")
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// sameFlags reports whether got (sorted) and want hold the same names.
func sameFlags(got, want []string) bool {
	want = slices.Clone(want)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func TestServerConfigValidate(t *testing.T) {
	t.Parallel()
	_, f := newTestFiles(t)
	const (
		certFlag = "--ingest-tls-cert-file"
		keyFlag  = "--ingest-tls-key-file"
		caFlag   = "--ingest-tls-client-ca-file"
	)
	tests := []struct {
		name    string
		config  tlsfiles.ServerConfig
		enabled bool
		flags   []string // in any order; nil means valid
		is      error
		says    string // in the error
	}{
		{name: "plaintext", config: tlsfiles.ServerConfig{}},
		{name: "cert and key", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key}, enabled: true},
		{name: "mutual TLS", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca}, enabled: true},
		{name: "cert and key in one file", config: tlsfiles.ServerConfig{CertFile: f.combined, KeyFile: f.combined}, enabled: true},
		{name: "SEC 1 EC key", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.sec1Key}, enabled: true},
		{name: "TLS 1.3 only", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key, MinVersion: tls.VersionTLS13}, enabled: true},
		{
			name: "only cert", config: tlsfiles.ServerConfig{CertFile: f.cert}, enabled: true,
			flags: []string{keyFlag}, says: "must be set when " + certFlag + " is set",
		},
		{
			name: "only key", config: tlsfiles.ServerConfig{KeyFile: f.key}, enabled: true,
			flags: []string{certFlag}, says: "must be set when " + keyFlag + " is set",
		},
		{
			name: "client CA without cert and key", config: tlsfiles.ServerConfig{ClientCAFile: f.ca},
			flags: []string{caFlag}, says: "needs " + certFlag,
		},
		{
			name: "missing files", config: tlsfiles.ServerConfig{CertFile: f.missing, KeyFile: f.missing, ClientCAFile: f.missing}, enabled: true,
			flags: []string{caFlag, certFlag, keyFlag}, is: fs.ErrNotExist, says: f.missing,
		},
		{
			name: "mismatched key", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.otherKey}, enabled: true,
			flags: []string{keyFlag}, says: "does not match the certificate in " + f.cert,
		},
		{
			name: "empty CA bundle", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.empty}, enabled: true,
			flags: []string{caFlag}, says: "no PEM certificate found",
		},
		{
			name: "CA bundle holding only a key", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.key}, enabled: true,
			flags: []string{caFlag}, says: "no PEM certificate found",
		},
		{
			name: "cert file not PEM", config: tlsfiles.ServerConfig{CertFile: f.garbage, KeyFile: f.key}, enabled: true,
			flags: []string{certFlag}, says: "no PEM certificate found",
		},
		{
			name: "cert file cut off", config: tlsfiles.ServerConfig{CertFile: f.cutCert, KeyFile: f.key}, enabled: true,
			flags: []string{certFlag}, says: "truncated",
		},
		{
			name: "key file holding only a cert", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.cert}, enabled: true,
			flags: []string{keyFlag}, says: "no PEM private key found",
		},
		{
			name: "encrypted key", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.encryptedKey}, enabled: true,
			flags: []string{keyFlag}, says: "encrypted private keys are not supported",
		},
		{
			name: "bad cert and bad key", config: tlsfiles.ServerConfig{CertFile: f.empty, KeyFile: f.garbage}, enabled: true,
			flags: []string{certFlag, keyFlag},
		},
		{
			name: "MinVersion below TLS 1.2", config: tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key, MinVersion: tls.VersionTLS10}, enabled: true,
			flags: []string{"MinVersion 0x0301"},
		},
		{
			name: "several problems", config: tlsfiles.ServerConfig{CertFile: f.cert, ClientCAFile: f.empty, MinVersion: 1}, enabled: true,
			flags: []string{caFlag, keyFlag, "MinVersion 0x0001"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.config.Enabled(); got != tt.enabled {
				t.Errorf("Enabled() = %v, want %v", got, tt.enabled)
			}
			err := tt.config.Validate("ingest-tls-")
			if got := namedFlags(err); !sameFlags(got, tt.flags) {
				t.Fatalf("Validate named %q, want %q; error:\n%v", got, tt.flags, err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error is not %v: %v", tt.is, err)
			}
			if tt.says != "" && !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error does not say %q: %v", tt.says, err)
			}
		})
	}
}

func TestServerConfigValidateNoPrefix(t *testing.T) {
	t.Parallel()
	err := tlsfiles.ServerConfig{CertFile: "x.crt"}.Validate("")
	if got, want := namedFlags(err), []string{"--key-file"}; !sameFlags(got, want) {
		t.Fatalf("named %q, want %q: %v", got, want, err)
	}
}

func TestClientConfigHandshake(t *testing.T) {
	t.Parallel()
	_, f := newTestFiles(t)
	plain, err := tlsfiles.NewReloader(tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mutual, err := tlsfiles.NewReloader(tlsfiles.ServerConfig{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.ca}, nil)
	if err != nil {
		t.Fatal(err)
	}
	plainAddr, mutualAddr := serveTLS(t, plain.TLSConfig()), serveTLS(t, mutual.TLSConfig())

	var unknownCA x509.UnknownAuthorityError
	var wrongHost x509.HostnameError
	var verifyErr *tls.CertificateVerificationError
	tests := []struct {
		name    string
		addr    string
		config  tlsfiles.ClientConfig
		wantErr any // nil for success, else a pointer for errors.As
		refused bool
	}{
		{name: "right CA", addr: plainAddr, config: tlsfiles.ClientConfig{CAFile: f.ca}},
		{name: "wrong CA", addr: plainAddr, config: tlsfiles.ClientConfig{CAFile: f.otherCA}, wantErr: &unknownCA},
		{name: "system roots", addr: plainAddr, config: tlsfiles.ClientConfig{}, wantErr: &verifyErr},
		{name: "wrong CA, verification off", addr: plainAddr, config: tlsfiles.ClientConfig{CAFile: f.otherCA, InsecureSkipVerify: true}},
		{name: "server name in cert", addr: plainAddr, config: tlsfiles.ClientConfig{CAFile: f.ca, ServerName: "localhost"}},
		{name: "server name not in cert", addr: plainAddr, config: tlsfiles.ClientConfig{CAFile: f.ca, ServerName: "ingest.example"}, wantErr: &wrongHost},
		{name: "mutual TLS", addr: mutualAddr, config: tlsfiles.ClientConfig{CAFile: f.ca, CertFile: f.clientCert, KeyFile: f.clientKey}},
		{name: "mutual TLS without client cert", addr: mutualAddr, config: tlsfiles.ClientConfig{CAFile: f.ca}, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := tt.config.TLSConfig()
			if err != nil {
				t.Fatalf("TLSConfig: %v", err)
			}
			_, err = dial(tt.addr, cfg)
			switch {
			case tt.refused:
				if !isRefused(err) {
					t.Fatalf("got %v, want the server to refuse", err)
				}
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
			default:
				if !errors.As(err, tt.wantErr) {
					t.Fatalf("got %v, want a %T", err, tt.wantErr)
				}
			}
		})
	}
}

func TestClientConfigTLSConfig(t *testing.T) {
	t.Parallel()
	_, f := newTestFiles(t)
	tests := []struct {
		name   string
		config tlsfiles.ClientConfig
		flags  []string // what Validate("") names, in any order; nil means valid
		is     error
	}{
		{name: "zero", config: tlsfiles.ClientConfig{}},
		{name: "everything", config: tlsfiles.ClientConfig{CAFile: f.ca, CertFile: f.clientCert, KeyFile: f.clientKey, ServerName: "localhost", InsecureSkipVerify: true}},
		{name: "missing CA file", config: tlsfiles.ClientConfig{CAFile: f.missing}, flags: []string{"--ca-file"}, is: fs.ErrNotExist},
		{name: "empty CA file", config: tlsfiles.ClientConfig{CAFile: f.empty}, flags: []string{"--ca-file"}},
		{name: "cert without key", config: tlsfiles.ClientConfig{CertFile: f.clientCert}, flags: []string{"--key-file"}},
		{name: "key without cert", config: tlsfiles.ClientConfig{KeyFile: f.clientKey}, flags: []string{"--cert-file"}},
		{name: "mismatched pair", config: tlsfiles.ClientConfig{CertFile: f.clientCert, KeyFile: f.key}, flags: []string{"--key-file"}},
		{name: "missing cert", config: tlsfiles.ClientConfig{CertFile: f.missing, KeyFile: f.clientKey}, flags: []string{"--cert-file"}, is: fs.ErrNotExist},
		{name: "several problems", config: tlsfiles.ClientConfig{CAFile: f.garbage, CertFile: f.clientCert}, flags: []string{"--ca-file", "--key-file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			verr := tt.config.Validate("")
			if got := namedFlags(verr); !sameFlags(got, tt.flags) {
				t.Fatalf("Validate named %q, want %q; error:\n%v", got, tt.flags, verr)
			}
			cfg, err := tt.config.TLSConfig()
			if tt.flags != nil {
				if err == nil {
					t.Fatal("TLSConfig succeeded, want an error")
				}
				if tt.is != nil && !errors.Is(err, tt.is) {
					t.Errorf("error is not %v: %v", tt.is, err)
				}
				if !strings.HasPrefix(err.Error(), "tlsfiles: client TLS: ") {
					t.Errorf("error lacks context: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("TLSConfig: %v", err)
			}
			if cfg.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", cfg.MinVersion)
			}
			if cfg.ServerName != tt.config.ServerName || cfg.InsecureSkipVerify != tt.config.InsecureSkipVerify {
				t.Errorf("ServerName %q, InsecureSkipVerify %v; want %q, %v",
					cfg.ServerName, cfg.InsecureSkipVerify, tt.config.ServerName, tt.config.InsecureSkipVerify)
			}
			if got, want := cfg.RootCAs != nil, tt.config.CAFile != ""; got != want {
				t.Errorf("RootCAs set = %v, want %v", got, want)
			}
			if got, want := len(cfg.Certificates), map[bool]int{false: 0, true: 1}[tt.config.CertFile != ""]; got != want {
				t.Errorf("%d client certificates, want %d", got, want)
			}
		})
	}
}
