package natsjs

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/tlsfiles"
)

// Auth is how a Transport authenticates to NATS and secures its
// connection: at most one way of authenticating (a credentials file, an
// NKey seed file, a user with a password file, or a token file), and TLS
// settings. The zero value connects anonymously, in plaintext unless the
// URL is tls://. Secrets are only ever read from files, so they never
// appear in a command line or an environment listing, and no error shows
// their content.
//
// nats.go reads the credentials file, the NKey seed and the TLS files
// again at each (re)connection, so replacing them takes effect at the next
// one; the password and the token are read once, by New.
type Auth struct {
	// CredsFile is a NATS credentials file: a user JWT and its NKey seed,
	// as nsc or the nats command write it (decentralized JWT auth).
	CredsFile string
	// NKeyFile holds an NKey user seed ("SU..."), for NKey auth.
	NKeyFile string
	// User and PasswordFile are a user name and the file holding its
	// password (one line; a trailing newline is ignored).
	User, PasswordFile string
	// TokenFile holds an authentication token (one line; a trailing
	// newline is ignored).
	TokenFile string
	// TLSCAFile is a PEM bundle of the CAs the server's certificate is
	// verified against, replacing the system roots. Setting it, or the
	// client certificate, requires TLS.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the PEM client certificate and key
	// presented to the server, for mutual TLS. Give both or neither.
	TLSCertFile, TLSKeyFile string
}

// Flag names of Auth, after the prefix given to RegisterFlags and
// Validate.
const (
	flagCredsFile    = "creds-file"
	flagNKeyFile     = "nkey-file"
	flagUser         = "user"
	flagPasswordFile = "password-file"
	flagTokenFile    = "token-file"
	flagTLSPrefix    = "tls-" // + ca-file, cert-file, key-file (package tlsfiles)
)

// RegisterFlags registers a's settings on fs as flags named prefix+
// "creds-file", "nkey-file", "user", "password-file", "token-file",
// "tls-ca-file", "tls-cert-file" and "tls-key-file" (prefix "nats-" gives
// --nats-creds-file and so on): the names Validate's errors use.
func (a *Auth) RegisterFlags(fs *pflag.FlagSet, prefix string) {
	f := func(name string) string { return prefix + name }
	fs.StringVar(&a.CredsFile, f(flagCredsFile), "", "NATS credentials file (user JWT and NKey seed, as nsc writes it) to authenticate with; re-read at each reconnection")
	fs.StringVar(&a.NKeyFile, f(flagNKeyFile), "", "file holding the NKey user seed (SU...) to authenticate to NATS with; re-read at each reconnection")
	fs.StringVar(&a.User, f(flagUser), "", "NATS user name; its password is read from --"+f(flagPasswordFile))
	fs.StringVar(&a.PasswordFile, f(flagPasswordFile), "", "file holding the password of --"+f(flagUser)+" (one line), read at start; no flag or variable takes the password itself")
	fs.StringVar(&a.TokenFile, f(flagTokenFile), "", "file holding the NATS authentication token (one line), read at start; no flag or variable takes the token itself")
	fs.StringVar(&a.TLSCAFile, f(flagTLSPrefix+"ca-file"), "", "PEM CA bundle the NATS server certificate is verified against, instead of the system roots; turns TLS on; re-read at each reconnection")
	fs.StringVar(&a.TLSCertFile, f(flagTLSPrefix+"cert-file"), "", "PEM client certificate presented to NATS (mutual TLS); turns TLS on; re-read at each reconnection")
	fs.StringVar(&a.TLSKeyFile, f(flagTLSPrefix+"key-file"), "", "PEM private key of --"+f(flagTLSPrefix+"cert-file")+"; re-read at each reconnection")
}

// Validate checks a and the files it names, and returns every problem
// joined, each naming its flag as RegisterFlags(fs, prefix) names it, as
// in "--nats-creds-file: open /x.creds: no such file or directory": at
// most one way of authenticating, a user with its password file, files
// that can be read and parse (a credentials file's JWT and seed belong
// together and the JWT has not expired), and TLS files as package
// tlsfiles checks them (the key matches the certificate). It never shows
// a secret.
func (a Auth) Validate(prefix string) error {
	return a.check(func(name string) string { return "--" + prefix + name }, prefix+flagTLSPrefix)
}

// fieldLabel names a setting by its Auth field, for New's errors.
func fieldLabel(name string) string {
	switch name {
	case flagCredsFile:
		return "Auth.CredsFile"
	case flagNKeyFile:
		return "Auth.NKeyFile"
	case flagUser:
		return "Auth.User"
	case flagPasswordFile:
		return "Auth.PasswordFile"
	case flagTokenFile:
		return "Auth.TokenFile"
	}
	return "Auth." + name
}

// check is Validate with label naming each setting; tlsPrefix is what
// tlsfiles.ClientConfig.Validate names the TLS settings after ("" for
// New, whose TLS errors name Auth's fields instead).
func (a Auth) check(label func(string) string, tlsPrefix string) error {
	var errs []error
	var methods []string
	if a.CredsFile != "" {
		methods = append(methods, label(flagCredsFile))
		errs = append(errs, prefixErr(label(flagCredsFile), checkCredsFile(a.CredsFile, time.Now())))
	}
	if a.NKeyFile != "" {
		methods = append(methods, label(flagNKeyFile))
		errs = append(errs, prefixErr(label(flagNKeyFile), checkSeedFile(a.NKeyFile)))
	}
	if a.User != "" || a.PasswordFile != "" {
		if a.User != "" {
			methods = append(methods, label(flagUser))
		} else {
			methods = append(methods, label(flagPasswordFile))
		}
		switch {
		case a.PasswordFile == "":
			errs = append(errs, fmt.Errorf("%s: required with %s", label(flagPasswordFile), label(flagUser)))
		case a.User == "":
			errs = append(errs, fmt.Errorf("%s: required with %s", label(flagUser), label(flagPasswordFile)))
		}
		if a.PasswordFile != "" {
			_, err := readSecret(a.PasswordFile)
			errs = append(errs, prefixErr(label(flagPasswordFile), err))
		}
	}
	if a.TokenFile != "" {
		methods = append(methods, label(flagTokenFile))
		_, err := readSecret(a.TokenFile)
		errs = append(errs, prefixErr(label(flagTokenFile), err))
	}
	if len(methods) > 1 {
		errs = append(errs, fmt.Errorf("%s: give at most one way to authenticate to NATS", strings.Join(methods, ", ")))
	}
	tc := tlsfiles.ClientConfig{CAFile: a.TLSCAFile, CertFile: a.TLSCertFile, KeyFile: a.TLSKeyFile}
	if tlsPrefix != "" {
		errs = append(errs, tc.Validate(tlsPrefix))
	} else if a.tlsEnabled() {
		if _, err := tc.TLSConfig(); err != nil {
			errs = append(errs, fmt.Errorf("Auth.TLSCAFile, Auth.TLSCertFile, Auth.TLSKeyFile: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (a Auth) tlsEnabled() bool {
	return a.TLSCAFile != "" || a.TLSCertFile != "" || a.TLSKeyFile != ""
}

// options returns the nats.go options of a, which check has accepted:
// nats.UserCredentials, nats.NkeyOptionFromSeed, nats.UserInfo or
// nats.Token, and nats.RootCAs and nats.ClientCert.
func (a Auth) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("Auth.NKeyFile: %w", err)
		}
		opts = append(opts, o)
	case a.User != "":
		pw, err := readSecret(a.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("Auth.PasswordFile: %w", err)
		}
		opts = append(opts, nats.UserInfo(a.User, pw))
	case a.TokenFile != "":
		tok, err := readSecret(a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("Auth.TokenFile: %w", err)
		}
		opts = append(opts, nats.Token(tok))
	}
	if a.TLSCAFile != "" {
		opts = append(opts, nats.RootCAs(a.TLSCAFile))
	}
	if a.TLSCertFile != "" {
		opts = append(opts, nats.ClientCert(a.TLSCertFile, a.TLSKeyFile))
	}
	return opts, nil
}

// prefixErr prefixes err, if any, with the setting's label.
func prefixErr(label string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", label, err)
}

// readSecret reads a one-line secret from file, without its trailing
// newline. Errors name the file, never its content.
func readSecret(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	switch {
	case s == "":
		return "", fmt.Errorf("%s is empty", file)
	case strings.ContainsAny(s, "\r\n"):
		return "", fmt.Errorf("%s has more than one line", file)
	}
	return s, nil
}

// checkSeedFile checks that file holds an NKey user seed, as
// nats.NkeyOptionFromSeed reads it.
func checkSeedFile(file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	defer wipe(b)
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%s: no NKey user seed: %w", file, err)
	}
	kp.Wipe()
	return nil
}

// checkCredsFile checks that file is a credentials file, as
// nats.UserCredentials reads it: a user JWT that has not expired by now,
// and the NKey user seed of its subject.
func checkCredsFile(file string, now time.Time) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	defer wipe(b)
	token, err := nkeys.ParseDecoratedJWT(b)
	if err != nil {
		return fmt.Errorf("%s: no user JWT: %w", file, err)
	}
	claims, err := jwt.DecodeUserClaims(token)
	if err != nil {
		return fmt.Errorf("%s: no user JWT: %w", file, err)
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("%s: no NKey user seed: %w", file, err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return fmt.Errorf("%s: NKey user seed: %w", file, err)
	}
	var errs []error
	if pub != claims.Subject {
		errs = append(errs, fmt.Errorf("%s: the NKey seed is not that of the JWT's user %s", file, claims.Subject))
	}
	if claims.Expires != 0 && !now.Before(time.Unix(claims.Expires, 0)) {
		errs = append(errs, fmt.Errorf("%s: the user JWT expired at %s", file, time.Unix(claims.Expires, 0).UTC().Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// redactURL returns urls (comma-separated) with any password or token in
// them replaced, for messages.
func redactURL(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
			if _, hasPw := u.User.Password(); !hasPw { // a token
				u.User = url.User("xxxxx")
				parts[i] = u.String()
			}
		}
	}
	return strings.Join(parts, ",")
}

// wipe overwrites b, which held secret material.
func wipe(b []byte) {
	for i := range b {
		b[i] = 'x'
	}
}
