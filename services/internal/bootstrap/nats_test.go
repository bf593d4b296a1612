package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookline/hookline/pkg/transport/natsjs"
)

// TestConfigureNATSAuth: the NATS credentials and TLS flags, from the
// command line or HOOKLINE_* variables, reach Config.Broker.NATS.Auth, and their
// problems are reported with the others, each naming its flag, without
// the secret.
func TestConfigureNATSAuth(t *testing.T) {
	t.Parallel()
	const (
		pg  = "postgres://app@db:5432/hookline"
		key = "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
	)
	dir := t.TempDir()
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(password, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	got, err := configure([]string{"--store", pg, "--secret-keys", key, "--nats-user", "hookline"},
		map[string]string{"HOOKLINE_NATS_PASSWORD_FILE": password})
	if err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if want := (natsjs.Auth{User: "hookline", PasswordFile: password}); got.Broker.NATS.Auth != want {
		t.Errorf("NATS auth %+v, want %+v", got.Broker.NATS.Auth, want)
	}

	_, err = configure([]string{"--store", pg, "--secret-keys", key, "--nats-token-file", password, "--nats-tls-cert-file", missing},
		map[string]string{"HOOKLINE_NATS_CREDS_FILE": missing, "HOOKLINE_STORE_MAX_CONNS": "-1"})
	if err == nil {
		t.Fatal("Configure succeeded")
	}
	for _, want := range []string{
		"--nats-creds-file: open " + missing,
		"--nats-creds-file, --nats-token-file: give at most one way to authenticate to NATS",
		"--nats-tls-key-file: must be set when --nats-tls-cert-file is set",
		"--store-max-conns -1: must not be negative",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the secret", err)
	}
}
