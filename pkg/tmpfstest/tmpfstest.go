// Package tmpfstest mounts a small tmpfs for a test, so that a test can
// fill a disk without touching the machine's.
package tmpfstest

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes at a new directory under tb's
// temporary directory and returns it; it is unmounted when tb ends, after
// every cleanup registered later. Mounting needs root: a test run by
// another user is skipped, saying so, while a failure to mount as root
// fails the test rather than hiding behind a skip.
func Mount(tb testing.TB, size int64) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("tmpfstest: mounting a tmpfs needs root; this test fills a disk of its own")
	}
	dir := filepath.Join(tb.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		tb.Fatalf("tmpfstest: mount a tmpfs at %s as root: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			tb.Errorf("tmpfstest: unmount %s: %v", dir, err)
		}
	})
	return dir
}
