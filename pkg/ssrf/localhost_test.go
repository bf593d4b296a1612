package ssrf

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
)

// TestDialLocalhost: localhost names are dialled as loopback addresses
// when loopback is allowed, refused without a lookup when it is not, and
// every other address is handed to the dialer as it is. No connection is
// made: the dialer is a recorder.
func TestDialLocalhost(t *testing.T) {
	t.Parallel()
	errRecorded := errors.New("recorded, not dialled")
	loopback := NewGuard(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
	v6only := NewGuard(netip.MustParsePrefix("::1/128"))
	deny := NewGuard()
	tests := []struct {
		name      string
		guard     *Guard
		address   string
		wantDials []string
		forbidden bool
	}{
		{"localhost allowed", loopback, "localhost:9000", []string{"127.0.0.1:9000", "[::1]:9000"}, false},
		{"trailing dot, upper case", loopback, "LocalHost.:9000", []string{"127.0.0.1:9000", "[::1]:9000"}, false},
		{"name under .localhost", loopback, "foo.localhost:80", []string{"127.0.0.1:80", "[::1]:80"}, false},
		{"only ::1 allowed still tries both, Control refuses 127.0.0.1", v6only, "localhost:80", []string{"127.0.0.1:80", "[::1]:80"}, false},
		{"localhost denied", deny, "localhost:9000", nil, true},
		{"sub.localhost. denied", deny, "a.b.localhost.:443", nil, true},
		{"ordinary name passes through", deny, "example.com:443", []string{"example.com:443"}, false},
		{"not localhost though it ends so", deny, "notlocalhost:80", []string{"notlocalhost:80"}, false},
		{"IP literal passes through", deny, "192.0.2.1:80", []string{"192.0.2.1:80"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var dials []string
			dial := tt.guard.DialLocalhost(func(_ context.Context, _, address string) (net.Conn, error) {
				dials = append(dials, address)
				return nil, errRecorded
			})
			_, err := dial(context.Background(), "tcp", tt.address)
			var fe *ForbiddenError
			if tt.forbidden != errors.As(err, &fe) {
				t.Fatalf("error %v, want forbidden %v", err, tt.forbidden)
			}
			if len(dials) != len(tt.wantDials) {
				t.Fatalf("dialled %v, want %v", dials, tt.wantDials)
			}
			for i := range dials {
				if dials[i] != tt.wantDials[i] {
					t.Fatalf("dialled %v, want %v", dials, tt.wantDials)
				}
			}
		})
	}
}
