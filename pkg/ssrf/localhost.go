package ssrf

import (
	"context"
	"net"
	"strings"
)

// DialFunc is the signature of net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// IsLocalhostName reports whether host is "localhost" or a name under
// ".localhost", with any letter case and a trailing dot: names RFC 6761
// reserves for loopback, which must never be sent to a DNS server.
func IsLocalhostName(host string) bool {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

// DialLocalhost wraps dial so that an address whose host is a localhost
// name (IsLocalhostName) is never resolved: when the allow-list permits
// loopback it is dialled as 127.0.0.1, then ::1, with the same port;
// otherwise it is refused with a *ForbiddenError, without any lookup.
// Every other address goes to dial unchanged, whose Control hook (Guard's)
// checks each resolved address.
func (g *Guard) DialLocalhost(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil || !IsLocalhostName(host) {
			return dial(ctx, network, address)
		}
		if !g.allowedLoopback() {
			return nil, &ForbiddenError{Host: host, Range: nameLocalhost}
		}
		var firstErr error
		for _, ip := range []string{"127.0.0.1", "::1"} {
			c, err := dial(ctx, network, net.JoinHostPort(ip, port))
			if err == nil {
				return c, nil
			}
			if firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				break
			}
		}
		return nil, firstErr
	}
}
