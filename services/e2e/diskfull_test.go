package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hookline/hookline/pkg/poll"
	"github.com/hookline/hookline/pkg/tmpfstest"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// fillDisk writes a file taking all but leave bytes of dir's file system.
func fillDisk(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for left := free - leave; left > 0; left -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(int64(len(chunk)), left)]); err != nil {
			break // full: as intended
		}
	}
	if err := f.Close(); err != nil && !strings.Contains(err.Error(), "no space") {
		t.Fatal(err)
	}
	return path
}

// readyz returns the status and body of the HTTP API's /readyz.
func readyz(t *testing.T, p *pipeline) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.srv.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestDiskFullRefusesThenRecovers runs hookline dev on a small tmpfs and
// fills it: a publish is refused at once, Unavailable, naming the full
// disk; /readyz is not ready and says why; once the disk has room again,
// publishing and delivery resume by themselves, with no restart.
func TestDiskFullRefusesThenRecovers(t *testing.T) {
	t.Parallel()
	disk := tmpfstest.Mount(t, 32<<20)
	p := startPipeline(t, filepath.Join(disk, "hookline"))
	r := newReceiver(t, nil)
	subscribe(t, p, r, []string{"*"})
	publish(t, p, "order.created", 1, "")
	poll.Until(t, "the first delivery", func() bool { return r.Count() >= 1 })

	filler := fillDisk(t, disk, 32<<10)
	big := `{"fill":"` + strings.Repeat("x", 200<<10) + `"}`
	pub := func(payload string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := p.ingest.Publish(ctx, &hooklinev1.PublishRequest{Tenant: tenant, EventType: "order.created", Payload: []byte(payload)})
		return err
	}
	for i, payload := range []string{big, `{"n":2}`} {
		err := pub(payload)
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "no space left on device") {
			t.Fatalf("publish %d on a full disk: %v, want Unavailable naming the full disk", i+1, err)
		}
	}
	if code, body := readyz(t, p); code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Errorf("/readyz on a full disk: %d %q, want 503 naming the full disk", code, body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	poll.UntilReason(t, "publishing resumes once the disk has room", func() (bool, string) {
		err := pub(`{"after":"recovery"}`)
		return err == nil, status.Convert(err).Message()
	})
	if code, body := readyz(t, p); code != http.StatusOK {
		t.Errorf("/readyz after recovery: %d %q", code, body)
	}
	poll.Until(t, "delivery of the event published after recovery", func() bool {
		for _, req := range r.Requests() {
			if strings.Contains(string(req.Body), "recovery") {
				return true
			}
		}
		return false
	})
}
