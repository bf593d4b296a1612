package childproc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWithoutRace(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want []string }{
		{[]string{"A=1", "GOFLAGS=-race -count=1"}, []string{"A=1", "GOFLAGS=-count=1"}},
		{[]string{"GOFLAGS=-race=true"}, []string{"GOFLAGS="}},
		{[]string{"GOFLAGS=-mod=mod"}, []string{"GOFLAGS=-mod=mod"}},
		{[]string{"PATH=/bin"}, []string{"PATH=/bin"}},
	}
	for _, tt := range tests {
		if got := WithoutRace(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("WithoutRace(%q) = %q; want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvDropsHooklineVariables(t *testing.T) {
	t.Setenv("HOOKLINE_STORE", "postgres://x")
	t.Setenv("CHILDPROC_TEST_KEEP", "1")
	env := Env()
	if slices.Contains(env, "HOOKLINE_STORE=postgres://x") || !slices.Contains(env, "CHILDPROC_TEST_KEEP=1") {
		t.Fatalf("Env() kept HOOKLINE_* or dropped others: %q", env)
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]string{1: "c", 2: "b\nc", 5: "a\nb\nc"} {
		if got := Tail(p, n); got != want {
			t.Errorf("Tail(%d) = %q; want %q", n, got, want)
		}
	}
}
