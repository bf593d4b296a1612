package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hookline/hookline/pkg/store/storetest"
	"github.com/hookline/hookline/pkg/tmpfstest"
)

// TestDiskFullNotReadyThenRecovers opens a store on a small tmpfs and
// fills the disk: writes fail naming the full disk and Ready says so; once
// the disk has room, the next write commits and the store is ready again,
// with no reopening. It needs root, to mount the tmpfs (tmpfstest.Mount).
func TestDiskFullNotReadyThenRecovers(t *testing.T) {
	t.Parallel()
	dir := tmpfstest.Mount(t, 8<<20)
	s := openPath(t, filepath.Join(dir, "hookline.db"), testKeyring)
	if err := s.CreateSubscription(t.Context(), storetest.NewSubscription("acme"), 0); err != nil {
		t.Fatal(err)
	}

	// Fill the disk to the last byte.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	_ = filler.Close()

	var writeErr error
	for i := 0; i < 1000 && writeErr == nil; i++ {
		sub := storetest.NewSubscription("acme")
		sub.Description = strings.Repeat("x", 1000)
		writeErr = s.CreateSubscription(t.Context(), sub, 0)
	}
	if writeErr == nil || !isStorageError(writeErr) {
		t.Fatalf("writes on a full disk: %v, want a storage error", writeErr)
	}
	if err := s.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "full") {
		t.Fatalf("Ready on a full disk: %v, want an error naming the full disk", err)
	}

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateSubscription(t.Context(), storetest.NewSubscription("acme"), 0); err != nil {
		t.Fatalf("write once the disk has room: %v", err)
	}
	if err := s.Ready(t.Context()); err != nil {
		t.Fatalf("Ready after a write committed again: %v", err)
	}
}
