package keyring

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// testKey returns 32 bytes derived from b, and their standard base64.
func testKey(b byte) ([]byte, string) {
	key := bytes.Repeat([]byte{b}, KeySize)
	for i := range key {
		key[i] ^= byte(i * 7)
	}
	return key, base64.StdEncoding.EncodeToString(key)
}

func TestParse(t *testing.T) {
	t.Parallel()
	k1, b1 := testKey(1)
	k2, b2 := testKey(2)
	for _, tc := range []struct {
		name    string
		text    string
		current string
		ids     []string
		keys    map[string][]byte
	}{
		{"one key", "k1:" + b1, "k1", []string{"k1"}, map[string][]byte{"k1": k1}},
		{"lines, current first", "k2:" + b2 + "\nk1:" + b1 + "\n", "k2", []string{"k2", "k1"}, map[string][]byte{"k1": k1, "k2": k2}},
		{"commas", "k2:" + b2 + ",k1:" + b1, "k2", []string{"k2", "k1"}, nil},
		{"comments, blanks, CRLF and spaces", "# keys\r\n\r\n  k1 : " + b1 + "  \r\n# old\r\n k2:" + b2, "k1", []string{"k1", "k2"}, nil},
		{"URL alphabet, unpadded", "a.b_c-1:" + base64.RawURLEncoding.EncodeToString(k1), "a.b_c-1", []string{"a.b_c-1"},
			map[string][]byte{"a.b_c-1": k1}},
		{"standard alphabet, unpadded", "k1:" + base64.RawStdEncoding.EncodeToString(k2), "k1", []string{"k1"},
			map[string][]byte{"k1": k2}},
		{"URL alphabet, padded", "k1:" + base64.URLEncoding.EncodeToString(k1), "k1", []string{"k1"}, nil},
		{"longest id", strings.Repeat("x", 32) + ":" + b1, strings.Repeat("x", 32), []string{strings.Repeat("x", 32)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := Parse(tc.text)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if kr.Current() != tc.current || !slices.Equal(kr.IDs(), tc.ids) {
				t.Fatalf("current %q, ids %v; want %q, %v", kr.Current(), kr.IDs(), tc.current, tc.ids)
			}
			for _, id := range tc.ids {
				if !kr.Has(id) {
					t.Fatalf("Has(%q) = false", id)
				}
			}
			if kr.Has("nope") {
				t.Fatal(`Has("nope") = true`)
			}
			// Each key is the one given: what it seals, a keyring built
			// from the expected bytes opens.
			for id, key := range tc.keys {
				want, err := New([]string{id}, map[string][]byte{id: key})
				if err != nil {
					t.Fatal(err)
				}
				sealed := sealWith(t, kr, id, []byte("x"), []byte("aad"))
				if got, err := want.Open(id, sealed, []byte("aad")); err != nil || string(got) != "x" {
					t.Fatalf("key %s is not the one given: %v", id, err)
				}
			}
			// IDs returns a copy.
			ids := kr.IDs()
			ids[0] = "mutated"
			if kr.IDs()[0] == "mutated" {
				t.Fatal("IDs returns the keyring's own slice")
			}
		})
	}
}

// sealWith seals plaintext with the key id of kr, by building a keyring
// whose current key is id (kr seals only with its current key).
func sealWith(t *testing.T, kr *Keyring, id string, plaintext, aad []byte) []byte {
	t.Helper()
	one := &Keyring{current: id, ids: []string{id}, aeads: kr.aeads}
	keyID, sealed, err := one.Seal(plaintext, aad)
	if err != nil || keyID != id {
		t.Fatalf("Seal with %s: %q, %v", id, keyID, err)
	}
	return sealed
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	_, b1 := testKey(1)
	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 16))
	long := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{9}, 33))
	for _, tc := range []struct {
		name string
		text string
		want string // a part of the error
	}{
		{"empty", "", "no keys"},
		{"only comments", "# nothing\n\n", "no keys"},
		{"no colon", b1, "entry 1: want id:base64-key"},
		{"no colon, second entry", "k1:" + b1 + "\n" + b1, "entry 2: want id:base64-key"},
		{"not base64", "k1:" + b1[:20] + "!!" + b1[22:], `entry 1 (k1): key is not base64`},
		{"short key", "k1:" + short, `key "k1": 16 bytes, want 32`},
		{"long key", "k1:" + long, `key "k1": 33 bytes, want 32`},
		{"empty key", "k1:", `key "k1": 0 bytes, want 32`},
		{"duplicate id", "k1:" + b1 + "\nk1:" + b1, `key id "k1" appears twice`},
		{"empty id", ":" + b1, `key id ""`},
		{"bad id", "bad id:" + b1, `key id "bad id"`},
		{"id too long", strings.Repeat("x", 33) + ":" + b1, "want 1-32 letters"},
		{"id starting with a dot", ".k:" + b1, `key id ".k"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kr, err := Parse(tc.text)
			if err == nil {
				t.Fatalf("Parse succeeded: %v", kr.IDs())
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
			checkNoKeyMaterial(t, tc.text, err)
			// Not even a piece of a key, valid or not.
			for _, key := range []string{b1, short, long} {
				if strings.Contains(err.Error(), key[:12]) {
					t.Fatalf("error %q shows a piece of a key", err)
				}
			}
		})
	}
}

// checkNoKeyMaterial fails t if err shows the key part of any entry of
// text that is key material (base64 of at least 16 bytes). The ids of
// text, which errors may name (plain or quoted), are taken out of the
// message first: a key that is also (part of) an id is not a leak.
func checkNoKeyMaterial(t testing.TB, text string, err error) {
	t.Helper()
	var ids, keys []string
	for _, f := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == ',' || r == '\r' }) {
		id, key, ok := strings.Cut(strings.TrimSpace(f), ":")
		if !ok {
			key, id = id, "" // without a colon, the whole entry may be a bare key
		}
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
		key = strings.TrimSpace(key)
		if raw, err := decodeKey(key); err == nil && len(raw) >= 16 {
			keys = append(keys, key)
		}
	}
	msg := err.Error()
	slices.SortFunc(ids, func(a, b string) int { return len(b) - len(a) }) // longest first
	for _, id := range ids {
		msg = strings.ReplaceAll(msg, strconv.Quote(id), "<id>")
		msg = strings.ReplaceAll(msg, id, "<id>")
	}
	for _, key := range keys {
		if strings.Contains(msg, key) {
			t.Fatalf("error %q shows key material %q", err, key)
		}
		if raw, _ := decodeKey(key); strings.Contains(msg, string(raw)) {
			t.Fatalf("error %q shows decoded key material", err)
		}
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	k1, _ := testKey(1)
	for _, tc := range []struct {
		name string
		ids  []string
		keys map[string][]byte
	}{
		{"no ids", nil, nil},
		{"missing key", []string{"k1", "k2"}, map[string][]byte{"k1": k1}},
		{"duplicate id", []string{"k1", "k1"}, map[string][]byte{"k1": k1}},
		{"bad id", []string{"k 1"}, map[string][]byte{"k 1": k1}},
	} {
		if kr, err := New(tc.ids, tc.keys); err == nil {
			t.Errorf("%s: New succeeded: %v", tc.name, kr.IDs())
		}
	}
}

func TestSealOpen(t *testing.T) {
	t.Parallel()
	k1, b1 := testKey(1)
	_, b2 := testKey(2)
	old, err := Parse("k1:" + b1)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := Parse("k2:" + b2 + "\nk1:" + b1)
	if err != nil {
		t.Fatal(err)
	}
	plaintext := []byte(`[{"value":"whsec_c2VjcmV0","created_at":1}]`)
	aad := []byte("sub_01")

	keyID, sealed, err := old.Seal(plaintext, aad)
	if err != nil || keyID != "k1" {
		t.Fatalf("Seal: key %q, err %v", keyID, err)
	}
	if bytes.Contains(sealed, plaintext) || bytes.Contains(sealed, []byte("whsec_")) {
		t.Fatal("the sealed value holds the plaintext")
	}
	for name, kr := range map[string]*Keyring{"same keyring": old, "rotated keyring": rotated} {
		got, err := kr.Open(keyID, sealed, aad)
		if err != nil || !bytes.Equal(got, plaintext) {
			t.Fatalf("%s: Open = %q, %v; want the plaintext", name, got, err)
		}
	}
	// The rotated keyring seals with its current key.
	keyID2, sealed2, err := rotated.Seal(plaintext, aad)
	if err != nil || keyID2 != "k2" {
		t.Fatalf("Seal with the rotated keyring: key %q, err %v", keyID2, err)
	}
	if _, err := old.Open(keyID2, sealed2, aad); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open with a keyring lacking k2: %v, want ErrUnknownKey", err)
	}
	// Sealing twice gives different values (random nonces).
	_, again, err := old.Seal(plaintext, aad)
	if err != nil || bytes.Equal(again, sealed) {
		t.Fatalf("sealing twice gave the same value (err %v)", err)
	}
	// The empty plaintext and nil aad seal too.
	_, empty, err := old.Seal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := old.Open("k1", empty, nil); err != nil || len(got) != 0 {
		t.Fatalf("Open(empty) = %q, %v", got, err)
	}

	// Failures.
	wrongKey, err := New([]string{"k1"}, map[string][]byte{"k1": append([]byte{k1[0] ^ 1}, k1[1:]...)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		kr     *Keyring
		keyID  string
		sealed []byte
		aad    []byte
		is     error
	}{
		{"wrong aad", old, "k1", sealed, []byte("sub_02"), nil},
		{"no aad", old, "k1", sealed, nil, nil},
		{"unknown key id", old, "k9", sealed, aad, ErrUnknownKey},
		{"empty key id", old, "", sealed, aad, ErrUnknownKey},
		{"same id, other key", wrongKey, "k1", sealed, aad, nil},
		{"tampered nonce", old, "k1", flip(sealed, 0), aad, nil},
		{"tampered ciphertext", old, "k1", flip(sealed, 12), aad, nil},
		{"tampered tag", old, "k1", flip(sealed, len(sealed)-1), aad, nil},
		{"truncated", old, "k1", sealed[:len(sealed)-1], aad, nil},
		{"too short", old, "k1", sealed[:10], aad, nil},
		{"empty", old, "k1", nil, aad, nil},
		{"extended", old, "k1", append(slices.Clone(sealed), 0), aad, nil},
	} {
		got, err := tc.kr.Open(tc.keyID, tc.sealed, tc.aad)
		if err == nil {
			t.Fatalf("%s: Open succeeded: %q", tc.name, got)
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Fatalf("%s: Open: %v, want %v", tc.name, err, tc.is)
		}
		if strings.Contains(err.Error(), string(plaintext)) || strings.Contains(err.Error(), b1) {
			t.Fatalf("%s: error %q shows secret material", tc.name, err)
		}
	}
}

// flip returns b with one bit of byte i flipped.
func flip(b []byte, i int) []byte {
	out := slices.Clone(b)
	out[i] ^= 0x10
	return out
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	a, err := Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate("k2")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := Parse(a + "\n" + b)
	if err != nil {
		t.Fatalf("Parse(Generate): %v", err)
	}
	if !slices.Equal(kr.IDs(), []string{"k1", "k2"}) {
		t.Fatalf("ids %v", kr.IDs())
	}
	if a[3:] == b[3:] {
		t.Fatal("two generated keys are equal")
	}
	if _, err := Generate("bad id"); err == nil {
		t.Fatal(`Generate("bad id") succeeded`)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, b1 := testKey(1)
	good := filepath.Join(dir, "keys")
	if err := os.WriteFile(good, []byte("# current\nk1:"+b1+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := Load(good)
	if err != nil || kr.Current() != "k1" {
		t.Fatalf("Load: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("k1:"+b1[:40]), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("Load(bad): %v, want an error naming the file", err)
	}
	checkNoKeyMaterial(t, "k1:"+b1[:40], err)
	if _, err := Load(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing): %v", err)
	}
}

// FuzzParse: Parse never panics; a keyring it returns is consistent and
// seals and opens; an error never shows key material.
func FuzzParse(f *testing.F) {
	_, b1 := testKey(1)
	_, b2 := testKey(2)
	for _, seed := range []string{
		"", "k1:" + b1, "k2:" + b2 + "\nk1:" + b1, "k1:" + b1 + ",k1:" + b1, "# c\r\n k1 : " + b1,
		":" + b1, "k1:", "k1", b1, "k1:" + b1[:10], "k1:" + b1 + ":x", ",,,\n\n", "k:" + strings.Repeat("A", 43),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		kr, err := Parse(text)
		if err != nil {
			if kr != nil {
				t.Fatal("Parse returned a keyring and an error")
			}
			checkNoKeyMaterial(t, text, err)
			return
		}
		ids := kr.IDs()
		if len(ids) == 0 || ids[0] != kr.Current() {
			t.Fatalf("ids %v, current %q", ids, kr.Current())
		}
		for _, id := range ids {
			if !kr.Has(id) || !idPattern.MatchString(id) {
				t.Fatalf("bad id %q in %v", id, ids)
			}
		}
		keyID, sealed, err := kr.Seal([]byte(text), []byte("aad"))
		if err != nil || keyID != kr.Current() {
			t.Fatalf("Seal: %q, %v", keyID, err)
		}
		if got, err := kr.Open(keyID, sealed, []byte("aad")); err != nil || string(got) != text {
			t.Fatalf("Open: %v", err)
		}
	})
}
