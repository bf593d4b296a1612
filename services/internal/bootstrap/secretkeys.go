package bootstrap

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/hookline/hookline/pkg/keyring"
)

// SecretKeys says where the keyring that seals subscriptions' signing
// secrets in the store comes from: the keys themselves (a HOOKLINE_*
// variable filled from a Kubernetes Secret, say) or a file. Every process
// that opens the store needs it, and refuses to start without it, or when
// a stored secret is sealed with a key it lacks.
type SecretKeys struct {
	// Keys is the keyring's text form: "id:base64-key" entries separated
	// by commas or newlines, the first the current key (package keyring).
	Keys string
	// File holds the same text form.
	File string
}

// RegisterFlags registers --secret-keys and --secret-keys-file on fs.
func (c *SecretKeys) RegisterFlags(fs *pflag.FlagSet) {
	fs.StringVar(&c.Keys, "secret-keys", "", "keys sealing the signing secrets in the store: id:base64-of-32-bytes entries, comma-separated, the first sealing new writes (hookline secrets new-key makes one); prefer --secret-keys-file or the variable")
	fs.StringVar(&c.File, "secret-keys-file", "", "file holding the keys of --secret-keys, one id:base64 entry per line, the first sealing new writes")
}

// Validate reports whether exactly one source is given and the keyring
// loads, naming the flag; it never echoes key material.
func (c *SecretKeys) Validate() error {
	_, err := c.Load()
	return err
}

// Load returns the keyring.
func (c *SecretKeys) Load() (*keyring.Keyring, error) {
	switch {
	case c.Keys != "" && c.File != "":
		return nil, errors.New("--secret-keys and --secret-keys-file: give one, not both")
	case c.Keys != "":
		k, err := keyring.Parse(c.Keys)
		if err != nil {
			return nil, fmt.Errorf("--secret-keys: %w", err)
		}
		return k, nil
	case c.File != "":
		k, err := keyring.Load(c.File)
		if err != nil {
			return nil, fmt.Errorf("--secret-keys-file: %w", err)
		}
		return k, nil
	}
	return nil, errors.New("--secret-keys-file or --secret-keys: required, the keys that seal signing secrets in the store (hookline secrets new-key makes one)")
}
