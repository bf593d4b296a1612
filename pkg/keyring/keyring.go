// Package keyring seals small secrets (webhook signing secrets) for
// storage with AES-256-GCM under named keys.
//
// A Keyring has one current key, which seals every new value, and any
// number of older keys, which only open what they sealed before a
// rotation. Each sealed value is stored with the id of the key that sealed
// it, so rotating means: add a new key as the current one, keep the old
// ones until every row is sealed again (hookline secrets reencrypt), then
// drop them.
//
// The text form, read from a file or a HOOKLINE_* variable, is one key per
// line or comma-separated entry, "id:base64", the base64 (standard or
// URL alphabet, padded or not) of exactly 32 random bytes; the first entry
// is the current key. Blank lines and lines starting with # are skipped.
package keyring

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// ErrUnknownKey means a value was sealed with a key the keyring lacks.
var ErrUnknownKey = errors.New("keyring: no key with that id")

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// Keyring holds the keys; it is safe for concurrent use and never changes
// after it is built.
type Keyring struct {
	current string
	ids     []string
	aeads   map[string]cipher.AEAD
}

// New builds a keyring whose current key is ids[0]; keys maps every id
// to its 32 bytes.
func New(ids []string, keys map[string][]byte) (*Keyring, error) {
	if len(ids) == 0 {
		return nil, errors.New("keyring: no keys")
	}
	k := &Keyring{current: ids[0], aeads: make(map[string]cipher.AEAD, len(ids))}
	for _, id := range ids {
		if !idPattern.MatchString(id) {
			return nil, fmt.Errorf("keyring: key id %q: want 1-32 letters, digits, '.', '_' or '-'", id)
		}
		if _, dup := k.aeads[id]; dup {
			return nil, fmt.Errorf("keyring: key id %q appears twice", id)
		}
		key := keys[id]
		if len(key) != KeySize {
			return nil, fmt.Errorf("keyring: key %q: %d bytes, want %d", id, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keyring: key %q: %w", id, err)
		}
		k.aeads[id] = aead
		k.ids = append(k.ids, id)
	}
	return k, nil
}

// Parse reads the text form (see the package documentation). Errors name
// the entry but never echo key material.
func Parse(text string) (*Keyring, error) {
	var ids []string
	keys := map[string][]byte{}
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' || r == '\r' })
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "" || strings.HasPrefix(f, "#") {
			continue
		}
		id, enc, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("keyring: entry %d: want id:base64-key", i+1)
		}
		key, err := decodeKey(strings.TrimSpace(enc))
		if err != nil {
			return nil, fmt.Errorf("keyring: entry %d (%s): key is not base64", i+1, strings.TrimSpace(id))
		}
		id = strings.TrimSpace(id)
		if _, dup := keys[id]; dup {
			return nil, fmt.Errorf("keyring: key id %q appears twice", id)
		}
		ids = append(ids, id)
		keys[id] = key
	}
	return New(ids, keys)
}

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

// Load reads the text form from the file at path.
func Load(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Generate returns one entry of the text form, "id:base64", holding a new
// random key.
func Generate(id string) (string, error) {
	if !idPattern.MatchString(id) {
		return "", fmt.Errorf("keyring: key id %q: want 1-32 letters, digits, '.', '_' or '-'", id)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// Current is the id of the key that seals new values.
func (k *Keyring) Current() string { return k.current }

// IDs are the ids of every key, the current one first.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// Has reports whether the keyring holds the key id.
func (k *Keyring) Has(id string) bool { _, ok := k.aeads[id]; return ok }

// Seal encrypts plaintext with the current key, binding it to aad (the
// row's id, so a sealed value cannot be moved to another row), and returns
// the key's id and nonce||ciphertext.
func (k *Keyring) Seal(plaintext, aad []byte) (keyID string, sealed []byte, err error) {
	aead := k.aeads[k.current]
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		return "", nil, fmt.Errorf("keyring: nonce: %w", err)
	}
	return k.current, aead.Seal(out, out, plaintext, aad), nil
}

// Open decrypts what Seal returned under keyID with the same aad. An id
// the keyring lacks is ErrUnknownKey; a value altered or bound to another
// aad is an error.
func (k *Keyring) Open(keyID string, sealed, aad []byte) ([]byte, error) {
	aead, ok := k.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, keyID)
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("keyring: sealed value too short")
	}
	n := aead.NonceSize()
	out, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("keyring: open with key %q: %w", keyID, err)
	}
	return out, nil
}
