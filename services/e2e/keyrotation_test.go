package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookline/hookline/pkg/keyring"
	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/store"
	"github.com/hookline/hookline/pkg/store/sqlite"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// TestDeliverySignsAcrossKeyRotation rotates the key that seals signing
// secrets in the store (a new key first in the keyring, reencrypt, the old
// key dropped) between deliveries: the receiver verifies every delivery
// with the secret it was given at creation, and a keyring missing the key
// of a stored secret is refused at start.
func TestDeliverySignsAcrossKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys")
	k1, k2 := newKeyEntry(t, "k1"), newKeyEntry(t, "k2")
	writeKeys := func(entries ...string) {
		t.Helper()
		if err := os.WriteFile(keysFile, []byte(strings.Join(entries, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	withKeys := func(c *devserver.Config) { c.SecretKeysFile = keysFile }
	r := newReceiver(t, nil)

	writeKeys(k1)
	p := startPipeline(t, dir, withKeys)
	sub := subscribe(t, p, r, []string{"*"})
	r.setSecret(sub.GetSecrets()[0].GetValue())
	publish(t, p, "order.created", 1, "")
	poll.Until(t, "first delivery", func() bool { return r.Count() >= 1 })
	p.stop()

	// k2 seals new writes; k1 still opens the old rows. Reencrypt moves
	// them, after which k1 can go.
	writeKeys(k2, k1)
	ring, err := keyring.Load(keysFile)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "hookline.db"), sqlite.Options{Keyring: ring}, servicetest.Logger())
	if err != nil {
		t.Fatalf("open with [k2, k1]: %v", err)
	}
	moved, err := st.ReencryptSecrets(context.Background(), 100)
	if err != nil || moved != 1 {
		t.Fatalf("ReencryptSecrets = %d, %v; want 1 subscription moved", moved, err)
	}
	if n, err := st.ReencryptSecrets(context.Background(), 100); err != nil || n != 0 {
		t.Fatalf("second ReencryptSecrets = %d, %v; want 0", n, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// A keyring without k2 cannot open what is stored now.
	writeKeys(k1)
	ring1, _ := keyring.Load(keysFile)
	if st, err := sqlite.Open(context.Background(), filepath.Join(dir, "hookline.db"), sqlite.Options{Keyring: ring1}, servicetest.Logger()); !errors.Is(err, store.ErrMissingSecretKey) {
		if st != nil {
			_ = st.Close()
		}
		t.Fatalf("open with [k1] after reencrypting to k2: %v, want ErrMissingSecretKey", err)
	}

	writeKeys(k2)
	p = startPipeline(t, dir, withKeys)
	publish(t, p, "order.created", 2, "")
	poll.Until(t, "second delivery", func() bool { return r.Count() >= 2 })
	if bad := r.badSignatures(); len(bad) > 0 {
		t.Fatalf("deliveries that do not verify with the subscription's secret: %v", bad)
	}
}

func newKeyEntry(t *testing.T, id string) string {
	t.Helper()
	e, err := keyring.Generate(id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
