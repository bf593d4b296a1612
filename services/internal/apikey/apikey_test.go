package apikey

import (
	"strings"
	"testing"
)

func TestGenerateIDAndHash(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 100 {
		key, id, err := Generate()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := ID(key)
		if !ok || got != id || !ValidID(id) || !strings.HasPrefix(key, id+"_") {
			t.Fatalf("Generate() = %q, %q; ID(key) = %q, %v", key, id, got, ok)
		}
		if seen[id] {
			t.Fatalf("id %s generated twice", id)
		}
		seen[id] = true
		if !Equal(Hash(key), Hash(key)) || Equal(Hash(key), Hash(key+"x")) {
			t.Fatal("Hash does not tell keys apart")
		}
	}
}

func TestIDRefusesOtherForms(t *testing.T) {
	t.Parallel()
	key, _, _ := Generate()
	for _, bad := range []string{
		"", "hk_", "token-from-before-api-keys", key[:len(key)-1], key + "x",
		"hk_ABCDEFGHJKMN_" + key[len(Prefix)+idChars+1:], // upper case id
		strings.Replace(key, "_", "-", 2),
	} {
		if id, ok := ID(bad); ok {
			t.Errorf("ID(%q) = %q, true; want false", bad, id)
		}
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      []string
		want    string
		wantErr string
	}{
		{[]string{"read", "publish", "read"}, "publish,read", ""},
		{[]string{" Manage "}, "manage", ""},
		{[]string{"operator"}, "operator", ""},
		{nil, "", "at least one scope"},
		{[]string{"admin"}, "", `unknown scope "admin"`},
		{[]string{"operator", "read"}, "", "on its own"},
	}
	for _, tt := range tests {
		got, err := ParseScopes(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("ParseScopes(%q) error %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && (err != nil || strings.Join(Strings(got), ",") != tt.want):
			t.Errorf("ParseScopes(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestAllows(t *testing.T) {
	t.Parallel()
	tests := []struct {
		have []Scope
		need Scope
		want bool
	}{
		{[]Scope{ScopePublish}, ScopePublish, true},
		{[]Scope{ScopePublish}, ScopeRead, false},
		{[]Scope{ScopeRead}, ScopeManage, false},
		{[]Scope{ScopeManage}, ScopeRead, true},
		{[]Scope{ScopeManage}, ScopePublish, false},
		{[]Scope{ScopeOperator}, ScopeManage, true},
		{nil, ScopeRead, false},
	}
	for _, tt := range tests {
		if got := Allows(tt.have, tt.need); got != tt.want {
			t.Errorf("Allows(%v, %s) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
}

func TestParseConfigured(t *testing.T) {
	t.Parallel()
	key, _, _ := Generate()
	for _, entry := range []string{key, HashString(key), "  " + key + "\t"} {
		h, err := ParseConfigured(entry)
		if err != nil || !Equal(h, Hash(key)) {
			t.Errorf("ParseConfigured(%q) = %x, %v; want the key's hash", entry, h, err)
		}
	}
	for _, bad := range []string{"tiny-tok", "sha256:xyz", "sha256:" + strings.Repeat("a", 62)} {
		_, err := ParseConfigured(bad)
		if err == nil || strings.Contains(err.Error(), bad) {
			t.Errorf("ParseConfigured(%q) = %v; want an error that does not echo the entry", bad, err)
		}
	}
}

// FuzzID: ID never panics, and what it accepts is a valid id prefixing
// the input.
func FuzzID(f *testing.F) {
	key, _, _ := Generate()
	f.Add(key)
	f.Add("hk_")
	f.Add("sha256:00")
	f.Fuzz(func(t *testing.T, s string) {
		id, ok := ID(s)
		if ok && (!ValidID(id) || !strings.HasPrefix(s, id+"_")) {
			t.Fatalf("ID(%q) = %q", s, id)
		}
		_, _ = ParseConfigured(s)
	})
}
