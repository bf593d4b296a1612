// Package apikey defines Hookline's API keys: their form, their scopes and
// the hash under which they are stored.
//
// A key is "hk_" + 12 characters of public prefix (the key's id, by which
// it is found and listed) + "_" + 43 characters of base64url secret
// (32 random bytes). Only its SHA-256 is stored: the key is random, so a
// fast hash loses nothing against guessing, and checking a request costs
// one hash. Operator keys given in configuration are accepted as the key
// itself or as "sha256:" + the hex of its hash, so a configuration file
// need not hold the key.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Prefix starts every key and every key id.
const Prefix = "hk_"

// idChars is the length of the random part of a key id.
const idChars = 12

// idAlphabet is lowercase base32 without look-alikes' ambiguity concerns
// for humans reading ids aloud: digits and letters.
const idAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"

// Scope is one thing a key may do.
type Scope string

// The scopes. Manage includes read; operator includes everything, across
// tenants.
const (
	ScopePublish  Scope = "publish"
	ScopeRead     Scope = "read"
	ScopeManage   Scope = "manage"
	ScopeOperator Scope = "operator"
)

// AllScopes lists the scopes, weakest first.
var AllScopes = []Scope{ScopePublish, ScopeRead, ScopeManage, ScopeOperator}

// ParseScopes checks and normalises scope names: known, no duplicates, at
// least one, and "operator" only on its own.
func ParseScopes(names []string) ([]Scope, error) {
	if len(names) == 0 {
		return nil, errors.New("at least one scope is required (publish, read, manage or operator)")
	}
	var out []Scope
	for _, n := range names {
		s := Scope(strings.TrimSpace(strings.ToLower(n)))
		if !slices.Contains(AllScopes, s) {
			return nil, fmt.Errorf("unknown scope %q: want publish, read, manage or operator", n)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if slices.Contains(out, ScopeOperator) && len(out) > 1 {
		return nil, errors.New(`"operator" includes every other scope and is given on its own`)
	}
	slices.SortFunc(out, func(a, b Scope) int { return slices.Index(AllScopes, a) - slices.Index(AllScopes, b) })
	return out, nil
}

// Allows reports whether a key holding scopes may act with need: it holds
// need, or operator, or manage when need is read.
func Allows(scopes []Scope, need Scope) bool {
	for _, s := range scopes {
		if s == need || s == ScopeOperator || (s == ScopeManage && need == ScopeRead) {
			return true
		}
	}
	return false
}

// Strings returns the scopes' names.
func Strings(scopes []Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

// Generate returns a new random key and its id.
func Generate() (key, id string, err error) {
	var raw [idChars + 32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("apikey: %w", err)
	}
	var b strings.Builder
	b.WriteString(Prefix)
	for _, c := range raw[:idChars] {
		b.WriteByte(idAlphabet[int(c)%len(idAlphabet)]) // 256 is a multiple of 32: no bias
	}
	id = b.String()
	b.WriteByte('_')
	b.WriteString(base64.RawURLEncoding.EncodeToString(raw[idChars:]))
	return b.String(), id, nil
}

// ID returns the id of a key of Hookline's form, and false for any other
// string.
func ID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, Prefix)
	if !ok || len(rest) != idChars+1+43 || rest[idChars] != '_' {
		return "", false
	}
	for i := range idChars {
		if !strings.ContainsRune(idAlphabet, rune(rest[i])) {
			return "", false
		}
	}
	return key[:len(Prefix)+idChars], true
}

// ValidID reports whether id has the form of a key id.
func ValidID(id string) bool {
	rest, ok := strings.CutPrefix(id, Prefix)
	if !ok || len(rest) != idChars {
		return false
	}
	for i := range rest {
		if !strings.ContainsRune(idAlphabet, rune(rest[i])) {
			return false
		}
	}
	return true
}

// Hash is the SHA-256 of key, as stored.
func Hash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// HashString is the configuration form of key's hash: "sha256:" + hex.
func HashString(key string) string {
	return "sha256:" + hex.EncodeToString(Hash(key))
}

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// MinLegacyLength is the shortest configured key that is not of
// Hookline's form (a plain token from before API keys) still accepted.
const MinLegacyLength = 16

// ParseConfigured reads one configured operator key: "sha256:" + 64 hex
// digits, or the key itself (Hookline's form, or any token of at least
// MinLegacyLength characters). It returns the hash to compare against.
// Errors never echo the entry.
func ParseConfigured(entry string) ([]byte, error) {
	entry = strings.TrimSpace(entry)
	if h, ok := strings.CutPrefix(entry, "sha256:"); ok {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return nil, errors.New(`"sha256:" must be followed by 64 hex digits`)
		}
		return b, nil
	}
	if len(entry) < MinLegacyLength {
		return nil, fmt.Errorf("shorter than %d characters", MinLegacyLength)
	}
	return Hash(entry), nil
}
