package natsjs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
	"github.com/hookline/hookline/pkg/transport"
	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// natsServer starts nats-server with JetStream on a random loopback port,
// with the options configure sets, and shuts it down when the test ends.
func natsServer(t *testing.T, configure func(*natsserver.Options)) *natsserver.Server {
	t.Helper()
	opts := &natsserver.Options{
		Host: "127.0.0.1", Port: -1,
		JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: os.Getenv("NATSJS_TEST_LOG") == "",
	}
	configure(opts)
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatalf("configure nats-server: %v", err)
	}
	if !opts.NoLog {
		ns.ConfigureLogger()
	}
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns
}

// natsURL is the nats:// URL of ns's client port (plain nats://, also when
// ns requires TLS: the client's TLS settings turn TLS on).
func natsURL(ns *natsserver.Server) string { return "nats://" + ns.Addr().String() }

// writeFile writes a file of mode 0600 in a new directory and returns its
// path.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// mustConnect opens a Transport on url with auth and checks it is ready
// and publishes.
func mustConnect(t *testing.T, url string, auth natsjs.Auth) {
	t.Helper()
	tr := openWith(t, natsjs.Config{URL: url, Auth: auth}, nil)
	ctx := ctxT(t)
	if err := tr.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if _, err := tr.Publish(ctx, transport.Events, transport.Message{ID: "m1", Subject: "x"}); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// connectErr is the error of New on url with auth, which must fail.
func connectErr(t *testing.T, url string, auth natsjs.Auth) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), poll.DefaultTimeout)
	defer cancel()
	tr, err := natsjs.New(ctx, natsjs.Config{URL: url, Auth: auth}, nil)
	if err == nil {
		_ = tr.Close()
		t.Fatal("New succeeded, want it refused")
	}
	return err
}

// wantRefused fails the test unless New on url with auth fails because
// the server refuses the credentials.
func wantRefused(t *testing.T, url string, auth natsjs.Auth) {
	t.Helper()
	if err := connectErr(t, url, auth); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("New: %v, want %v", err, nats.ErrAuthorization)
	}
}

func TestAuthUserPassword(t *testing.T) {
	t.Parallel()
	ns := natsServer(t, func(o *natsserver.Options) {
		o.Users = []*natsserver.User{{Username: "hookline", Password: "correct horse"}}
	})
	mustConnect(t, natsURL(ns), natsjs.Auth{User: "hookline", PasswordFile: writeFile(t, "password", []byte("correct horse\n"))})
	wantRefused(t, natsURL(ns), natsjs.Auth{User: "hookline", PasswordFile: writeFile(t, "password", []byte("battery staple\n"))})
	wantRefused(t, natsURL(ns), natsjs.Auth{})
}

func TestAuthToken(t *testing.T) {
	t.Parallel()
	ns := natsServer(t, func(o *natsserver.Options) { o.Authorization = "s3cret-token" })
	mustConnect(t, natsURL(ns), natsjs.Auth{TokenFile: writeFile(t, "token", []byte("s3cret-token\r\n"))})
	wantRefused(t, natsURL(ns), natsjs.Auth{TokenFile: writeFile(t, "token", []byte("other-token"))})
}

// userSeed returns a new NKey user's public key and seed.
func userSeed(t *testing.T) (string, []byte) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	return pub, seed
}

func TestAuthNKey(t *testing.T) {
	t.Parallel()
	pub, seed := userSeed(t)
	ns := natsServer(t, func(o *natsserver.Options) { o.Nkeys = []*natsserver.NkeyUser{{Nkey: pub}} })
	mustConnect(t, natsURL(ns), natsjs.Auth{NKeyFile: writeFile(t, "user.nk", append(seed, '\n'))})
	_, other := userSeed(t)
	wantRefused(t, natsURL(ns), natsjs.Auth{NKeyFile: writeFile(t, "other.nk", other)})
}

// operator is a NATS operator with one account with JetStream, for
// decentralized (JWT) authentication.
type operator struct {
	key     nkeys.KeyPair // the operator's
	account nkeys.KeyPair
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return &operator{key: op, account: acc}
}

func pubKey(t *testing.T, kp nkeys.KeyPair) string {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// configure makes o trust the operator and know its account, with
// unlimited JetStream, and a system account (JetStream needs one).
func (op *operator) configure(t *testing.T, o *natsserver.Options) {
	t.Helper()
	sys, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	resolver := &natsserver.MemAccResolver{}
	for _, acc := range []nkeys.KeyPair{op.account, sys} {
		ac := jwt.NewAccountClaims(pubKey(t, acc))
		if acc == op.account {
			ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		accJWT, err := ac.Encode(op.key)
		if err != nil {
			t.Fatal(err)
		}
		if err := resolver.Store(pubKey(t, acc), accJWT); err != nil {
			t.Fatal(err)
		}
	}
	o.TrustedKeys = []string{pubKey(t, op.key)}
	o.AccountResolver = resolver
	o.SystemAccount = pubKey(t, sys)
}

// creds returns a credentials file's content for a new user of account,
// expiring at expires (never when zero), with the seed of seedOf (the
// user's own when nil).
func creds(t *testing.T, account nkeys.KeyPair, expires time.Time, seedOf nkeys.KeyPair) []byte {
	t.Helper()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	uc := jwt.NewUserClaims(pubKey(t, user))
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	userJWT, err := uc.Encode(account)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	file, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	if seedOf != nil { // FormatUserConfig refuses a seed of another user
		other, err := seedOf.Seed()
		if err != nil {
			t.Fatal(err)
		}
		file = bytes.ReplaceAll(file, seed, other)
	}
	return file
}

func TestAuthCredsFile(t *testing.T) {
	t.Parallel()
	op := newOperator(t)
	ns := natsServer(t, func(o *natsserver.Options) { op.configure(t, o) })
	mustConnect(t, natsURL(ns), natsjs.Auth{CredsFile: writeFile(t, "user.creds", creds(t, op.account, time.Time{}, nil))})

	// A user of an account the server does not know.
	stranger, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	wantRefused(t, natsURL(ns), natsjs.Auth{CredsFile: writeFile(t, "stranger.creds", creds(t, stranger, time.Time{}, nil))})
}

// tlsServer configures o for TLS with a certificate of ca, requiring a
// client certificate of ca when mutual.
func tlsServer(t *testing.T, ca *tlsfilestest.CA, mutual bool) func(*natsserver.Options) {
	t.Helper()
	certPEM, keyPEM := ca.IssueServer(t, "nats")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *natsserver.Options) {
		o.TLS = true
		o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if mutual {
			o.TLSVerify = true
			o.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
			o.TLSConfig.ClientCAs = ca.Pool()
		}
	}
}

// attemptFailed is what New logs of a failed connection attempt.
const attemptFailed = "nats connection attempt failed"

// cancelOnFailedAttempt is a slog.Handler that keeps every record and
// cancels a context once a failed connection attempt is logged.
type cancelOnFailedAttempt struct {
	cancel context.CancelFunc
	logRecorder
}

func (h *cancelOnFailedAttempt) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *cancelOnFailedAttempt) WithGroup(string) slog.Handler      { return h }

func (h *cancelOnFailedAttempt) Handle(ctx context.Context, r slog.Record) error {
	_ = h.logRecorder.Handle(ctx, r)
	if strings.Contains(r.Message, attemptFailed) {
		h.cancel()
	}
	return nil
}

// failedAttempt runs New on url with auth until it logs a failed
// connection attempt, and returns New's error, which names that attempt's.
func failedAttempt(t *testing.T, url string, auth natsjs.Auth) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), poll.DefaultTimeout)
	defer cancel()
	h := &cancelOnFailedAttempt{cancel: cancel}
	tr, err := natsjs.New(ctx, natsjs.Config{URL: url, Auth: auth}, slog.New(h))
	if err == nil {
		_ = tr.Close()
		t.Fatal("New succeeded, want it to fail")
	}
	if n, _ := h.count(attemptFailed); n == 0 {
		t.Error("New logged no failed connection attempt")
	}
	return err
}

func TestAuthTLS(t *testing.T) {
	t.Parallel()
	ca := tlsfilestest.NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteCA(t, dir, "ca")
	certPEM, keyPEM := ca.IssueClient(t, "hookline")
	certFile, keyFile := ca.WriteFiles(t, dir, "client", certPEM, keyPEM)
	otherCA := tlsfilestest.NewCA(t).WriteCA(t, t.TempDir(), "other-ca")

	t.Run("server verified with the CA", func(t *testing.T) {
		t.Parallel()
		ns := natsServer(t, tlsServer(t, ca, false))
		mustConnect(t, natsURL(ns), natsjs.Auth{TLSCAFile: caFile})
		err := failedAttempt(t, natsURL(ns), natsjs.Auth{TLSCAFile: otherCA})
		if !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("New with another CA: %v, want it to name the certificate error", err)
		}
	})
	t.Run("mutual TLS", func(t *testing.T) {
		t.Parallel()
		ns := natsServer(t, tlsServer(t, ca, true))
		mustConnect(t, natsURL(ns), natsjs.Auth{TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile})
		err := failedAttempt(t, natsURL(ns), natsjs.Auth{TLSCAFile: caFile})
		// "remote error: tls: certificate required", or a write error
		// if the server closes first.
		if !strings.Contains(err.Error(), "last connection attempt:") || !strings.Contains(err.Error(), "tls") {
			t.Errorf("New without a client certificate: %v, want it to name the TLS failure", err)
		}
	})
	t.Run("mutual TLS and a password", func(t *testing.T) {
		t.Parallel()
		ns := natsServer(t, func(o *natsserver.Options) {
			tlsServer(t, ca, true)(o)
			o.Users = []*natsserver.User{{Username: "hookline", Password: "pw"}}
		})
		mustConnect(t, natsURL(ns), natsjs.Auth{
			User: "hookline", PasswordFile: writeFile(t, "password", []byte("pw")),
			TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile,
		})
	})
}

// TestAuthValidate: every problem is reported, each naming its flag, and
// no secret is shown.
func TestAuthValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing")
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	_, seed := userSeed(t)
	seedFile := file("user.nk", string(seed))
	accountKP, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	accountSeed, _ := accountKP.Seed()
	credsFile := file("user.creds", string(creds(t, accountKP, time.Time{}, nil)))
	expired := file("expired.creds", string(creds(t, accountKP, time.Now().Add(-time.Hour), nil)))
	mismatched := file("mismatched.creds", string(creds(t, accountKP, time.Time{}, mustUser(t))))
	password := file("password", "hunter2-secret\n")
	ca := tlsfilestest.NewCA(t)
	caFile := ca.WriteCA(t, dir, "ca")
	certPEM, keyPEM := ca.IssueClient(t, "hookline")
	certFile, keyFile := ca.WriteFiles(t, dir, "client", certPEM, keyPEM)
	_, otherKey := ca.IssueClient(t, "other")
	_, otherKeyFile := ca.WriteFiles(t, t.TempDir(), "other", certPEM, otherKey)

	tests := []struct {
		name string
		auth natsjs.Auth
		want []string // substrings of the error; none means valid
	}{
		{"none", natsjs.Auth{}, nil},
		{"creds file", natsjs.Auth{CredsFile: credsFile}, nil},
		{"nkey file", natsjs.Auth{NKeyFile: seedFile}, nil},
		{"user and password", natsjs.Auth{User: "u", PasswordFile: password}, nil},
		{"token", natsjs.Auth{TokenFile: password}, nil},
		{"mutual TLS with a password", natsjs.Auth{User: "u", PasswordFile: password, TLSCAFile: caFile, TLSCertFile: certFile, TLSKeyFile: keyFile}, nil},
		{"CA only", natsjs.Auth{TLSCAFile: caFile}, nil},
		{"two methods", natsjs.Auth{CredsFile: credsFile, TokenFile: password},
			[]string{"--nats-creds-file, --nats-token-file: give at most one way to authenticate to NATS"}},
		{"every method", natsjs.Auth{CredsFile: credsFile, NKeyFile: seedFile, User: "u", PasswordFile: password, TokenFile: password},
			[]string{"--nats-creds-file, --nats-nkey-file, --nats-user, --nats-token-file: give at most one"}},
		{"user without password", natsjs.Auth{User: "u"}, []string{"--nats-password-file: required with --nats-user"}},
		{"password without user", natsjs.Auth{PasswordFile: password}, []string{"--nats-user: required with --nats-password-file"}},
		{"missing files", natsjs.Auth{CredsFile: missing, TLSCAFile: missing},
			[]string{"--nats-creds-file: open " + missing, "--nats-tls-ca-file: open " + missing}},
		{"missing password file", natsjs.Auth{User: "u", PasswordFile: missing}, []string{"--nats-password-file: open " + missing}},
		{"empty token", natsjs.Auth{TokenFile: file("empty", "\n")}, []string{"--nats-token-file: " + dir + "/empty is empty"}},
		{"two-line password", natsjs.Auth{User: "u", PasswordFile: file("two", "a\nb\n")}, []string{"--nats-password-file: " + dir + "/two has more than one line"}},
		{"seed is no creds file", natsjs.Auth{CredsFile: seedFile}, []string{"--nats-creds-file: " + seedFile + ": no user JWT"}},
		{"creds file as seed", natsjs.Auth{NKeyFile: credsFile}, nil}, // nats.go reads a creds file's seed too
		{"account seed", natsjs.Auth{NKeyFile: file("account.nk", string(accountSeed))}, []string{"--nats-nkey-file: " + dir + "/account.nk: no NKey user seed"}},
		{"no seed", natsjs.Auth{NKeyFile: password}, []string{"--nats-nkey-file: " + password + ": no NKey user seed"}},
		{"expired JWT", natsjs.Auth{CredsFile: expired}, []string{"--nats-creds-file: " + expired + ": the user JWT expired at"}},
		{"seed of another user", natsjs.Auth{CredsFile: mismatched}, []string{"--nats-creds-file: " + mismatched + ": the NKey seed is not that of the JWT's user"}},
		{"cert without key", natsjs.Auth{TLSCertFile: certFile}, []string{"--nats-tls-key-file: must be set when --nats-tls-cert-file is set"}},
		{"key of another cert", natsjs.Auth{TLSCertFile: certFile, TLSKeyFile: otherKeyFile}, []string{"--nats-tls-key-file: private key in"}},
		{"CA file without a certificate", natsjs.Auth{TLSCAFile: password}, []string{"--nats-tls-ca-file: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.auth.Validate("nats-")
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate succeeded, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for line := range strings.Lines(err.Error()) {
				if !strings.HasPrefix(line, "--nats-") {
					t.Errorf("error line %q names no flag", line)
				}
			}
			for _, secret := range []string{"hunter2", string(seed[2:20]), string(accountSeed[2:20])} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

// TestNewChecksAuth: New refuses an Auth that Validate would, before it
// connects, naming Auth's fields.
func TestNewChecksAuth(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	_, err := natsjs.New(t.Context(), natsjs.Config{URL: "nats://127.0.0.1:1", Auth: natsjs.Auth{User: "u", TokenFile: missing}}, nil)
	if err == nil {
		t.Fatal("New succeeded")
	}
	for _, want := range []string{"Auth.PasswordFile: required with Auth.User", "Auth.TokenFile: open " + missing, "Auth.User, Auth.TokenFile: give at most one"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want it to contain %q", err, want)
		}
	}
}

// TestNewRedactsURL: New's errors do not show credentials given in the
// URL.
func TestNewRedactsURL(t *testing.T) {
	t.Parallel()
	ns := natsServer(t, func(o *natsserver.Options) {
		o.Users = []*natsserver.User{{Username: "hookline", Password: "right"}}
	})
	for _, url := range []string{"nats://hookline:pa55word@" + ns.Addr().String(), "nats://t0ken@" + ns.Addr().String()} {
		err := connectErr(t, url, natsjs.Auth{})
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("New on %s: %v, want %v", url, err, nats.ErrAuthorization)
		}
		if strings.Contains(err.Error(), "pa55word") || strings.Contains(err.Error(), "t0ken") {
			t.Errorf("New: %v shows the credentials", err)
		}
	}
}

func mustUser(t *testing.T) nkeys.KeyPair {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	return kp
}
