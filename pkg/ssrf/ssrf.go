// Package ssrf guards outbound webhook connections against server-side
// request forgery: it refuses loopback, private, link-local, carrier-grade
// NAT, cloud metadata, multicast, broadcast, documentation, reserved and the
// other IANA special-purpose address ranges, and the IPv6 translation
// prefixes (IPv4-mapped, NAT64, 6to4, Teredo) that can reach them, unless an
// operator allow-lists them.
//
// The authoritative check is Guard.Control, installed as net.Dialer.Control:
// it runs on the address actually being connected to, after DNS resolution,
// so DNS rebinding cannot slip past it. Guard.CheckURL gives early, readable
// errors when a subscription URL is created. The package uses only the
// standard library.
package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// ErrForbidden is wrapped by every error that refuses an address or a host
// because of where it points.
var ErrForbidden = errors.New("ssrf: destination address is forbidden")

// ErrInvalidURL is wrapped by every CheckURL error about the shape of the
// URL (as opposed to where it points).
var ErrInvalidURL = errors.New("ssrf: invalid webhook URL")

// ForbiddenError reports a refused destination. errors.Is(err, ErrForbidden)
// holds for it.
type ForbiddenError struct {
	// Host is the host name that led to Addr, if the check started from a
	// name; empty for IP literals and dialled addresses.
	Host string
	// Addr is the refused address. It is the zero Addr when a name was
	// refused without resolving it (such as "localhost").
	Addr netip.Addr
	// Range names the special-purpose range Addr falls in.
	Range string
}

// Error names the host (if any), the address and the range.
func (e *ForbiddenError) Error() string {
	var b strings.Builder
	b.WriteString("ssrf: ")
	if e.Host != "" {
		b.WriteString("host ")
		b.WriteString(strconv.Quote(e.Host))
		if e.Addr.IsValid() {
			b.WriteString(" resolves to ")
		}
	}
	if e.Addr.IsValid() {
		b.WriteString("address ")
		b.WriteString(e.Addr.String())
	}
	b.WriteString(" is forbidden: ")
	b.WriteString(e.Range)
	return b.String()
}

// Unwrap returns ErrForbidden.
func (e *ForbiddenError) Unwrap() error { return ErrForbidden }

// URLError reports which part of a webhook URL is unacceptable.
// errors.Is(err, ErrInvalidURL) holds for it. It never contains the URL's
// userinfo.
type URLError struct {
	// Part is the offending component: "url", "scheme", "userinfo", "host"
	// or "port".
	Part string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any (for example a *net.DNSError).
	Err error
}

// Error returns "ssrf: invalid webhook URL: <part>: <reason>[: <err>]".
func (e *URLError) Error() string {
	s := "ssrf: invalid webhook URL: " + e.Part + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrInvalidURL.
func (e *URLError) Is(target error) bool { return target == ErrInvalidURL }

// Unwrap returns the underlying error, if any.
func (e *URLError) Unwrap() error { return e.Err }

// Guard decides whether an outbound connection may go to an address. A Guard
// is immutable and safe for concurrent use; a nil *Guard refuses every
// special-purpose address and allows nothing extra.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a Guard that refuses the special-purpose ranges except
// addresses inside one of the allow prefixes (for example 127.0.0.0/8 for
// local development, or a private range holding trusted receivers). Invalid
// prefixes are ignored; IPv4-mapped IPv6 prefixes are treated as the IPv4
// prefix they map.
func NewGuard(allow ...netip.Prefix) *Guard {
	g := &Guard{allow: make([]netip.Prefix, 0, len(allow))}
	for _, p := range allow {
		if p = normalizePrefix(p); p.IsValid() {
			g.allow = append(g.allow, p)
		}
	}
	return g
}

// normalizePrefix masks p, strips any zone and turns ::ffff:a.b.c.d/96+n
// into a.b.c.d/n.
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if !p.IsValid() {
		return netip.Prefix{}
	}
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

func (g *Guard) allowed(a netip.Addr) bool {
	if g == nil {
		return false
	}
	for _, p := range g.allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// CheckAddr returns nil if a connection to addr is permitted, and otherwise
// a *ForbiddenError (wrapping ErrForbidden) naming the address and the range
// it falls in. Zones are ignored. An address inside an allow-list prefix is
// always permitted. IPv4-mapped IPv6 addresses are judged by the IPv4 address
// they embed; IPv4-compatible IPv6 addresses are always refused. The invalid
// zero Addr is refused. CheckAddr does not allocate when it permits.
func (g *Guard) CheckAddr(addr netip.Addr) error {
	a := addr.WithZone("")
	if !a.IsValid() {
		return &ForbiddenError{Addr: a, Range: "invalid address"}
	}
	if g.allowed(a) {
		return nil
	}
	if a.Is4In6() {
		a4 := a.Unmap()
		if g.allowed(a4) {
			return nil
		}
		if name := lookup(v4Ranges, a4); name != "" {
			return &ForbiddenError{Addr: a, Range: "IPv4-mapped " + a4.String() + ": " + name}
		}
		return nil
	}
	if a.Is4() {
		if name := lookup(v4Ranges, a); name != "" {
			return &ForbiddenError{Addr: a, Range: name}
		}
		return nil
	}
	if name := lookup(v6Ranges, a); name != "" {
		return &ForbiddenError{Addr: a, Range: name}
	}
	if b := a.As16(); isZero(b[:12]) {
		// ::/96 other than :: and ::1, which matched above.
		a4 := netip.AddrFrom4([4]byte(b[12:]))
		name := nameIPv4Compatible + " embedding " + a4.String()
		if n := lookup(v4Ranges, a4); n != "" {
			name += ": " + n
		}
		return &ForbiddenError{Addr: a, Range: name}
	}
	if !globalUnicast.Contains(a) {
		return &ForbiddenError{Addr: a, Range: nameOutsideGlobalUnicast}
	}
	return nil
}

func lookup(ranges []namedRange, a netip.Addr) string {
	for i := range ranges {
		if ranges[i].prefix.Contains(a) {
			return ranges[i].name
		}
	}
	return ""
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Control has the signature of net.Dialer.Control. The dialer calls it for
// every resolved address just before connecting, with address in "ip:port"
// form; Control returns CheckAddr's verdict on that IP, so a refused address
// is never connected to, whatever DNS answered. An address that does not
// parse as ip:port is refused. c is not used.
func (g *Guard) Control(network, address string, c syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %s dial address %q: %v", ErrForbidden, network, address, err)
	}
	return g.CheckAddr(ap.Addr())
}

// CheckURL validates a subscription URL when it is created or changed. It
// returns a *URLError (wrapping ErrInvalidURL) when the URL is malformed, the
// scheme is not http or https, the host is missing, the URL carries
// userinfo, the port is out of range, the host is a numeric IPv4 form other
// than dotted decimal (such as "127.1" or "0x7f000001"), or the name does not
// resolve. It returns a *ForbiddenError (wrapping ErrForbidden) when the host
// is "localhost" or ends in ".localhost" (refused without resolving), when an
// IP-literal host is refused by CheckAddr, or when any address the name
// resolves to is refused. Names are resolved with resolver, or
// net.DefaultResolver when it is nil. Passing CheckURL does not make later
// connections safe by itself: DNS can change, so dial through Control too.
func (g *Guard) CheckURL(ctx context.Context, rawURL string, resolver *net.Resolver) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may hold credentials
		}
		return &URLError{Part: "url", Reason: "cannot parse", Err: err}
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	case "":
		return &URLError{Part: "scheme", Reason: "missing; must be http or https"}
	default:
		return &URLError{Part: "scheme", Reason: strconv.Quote(u.Scheme) + " is not allowed; must be http or https"}
	}
	if u.User != nil {
		return &URLError{Part: "userinfo", Reason: "credentials in the URL are not allowed; use custom headers"}
	}
	host := u.Hostname()
	if u.Opaque != "" || host == "" {
		return &URLError{Part: "host", Reason: "required"}
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return &URLError{Part: "port", Reason: strconv.Quote(p) + " is not in 1-65535"}
		}
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		return g.CheckAddr(addr)
	}
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	if name == "" || strings.HasPrefix(name, ".") || strings.Contains(name, "..") {
		return &URLError{Part: "host", Reason: strconv.Quote(host) + " is not a valid host name"}
	}
	if addr, err := netip.ParseAddr(name); err == nil { // "192.0.2.1."
		return g.CheckAddr(addr)
	}
	if endsInNumber(name) {
		return &URLError{Part: "host", Reason: strconv.Quote(host) + " is a numeric IPv4 form other than dotted decimal"}
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		if g.allowedLoopback() {
			return nil
		}
		return &ForbiddenError{Host: host, Range: nameLocalhost}
	}
	if resolver == nil {
		resolver = net.DefaultResolver
	}
	addrs, err := resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return &URLError{Part: "host", Reason: "cannot resolve " + strconv.Quote(host), Err: err}
	}
	if len(addrs) == 0 {
		return &URLError{Part: "host", Reason: strconv.Quote(host) + " resolves to no addresses"}
	}
	for _, a := range addrs {
		if err := g.CheckAddr(a); err != nil {
			var fe *ForbiddenError
			if errors.As(err, &fe) {
				fe.Host = host
			}
			return err
		}
	}
	return nil
}

// allowedLoopback reports whether the allow list permits 127.0.0.1 or ::1,
// the addresses "localhost" names.
func (g *Guard) allowedLoopback() bool {
	return g.allowed(netip.AddrFrom4([4]byte{127, 0, 0, 1})) || g.allowed(netip.IPv6Loopback())
}

// endsInNumber reports whether the last label of the host name is numeric
// (decimal, or hexadecimal with a 0x prefix), which URL parsers in browsers
// and C libraries treat as an IPv4 address (WHATWG URL "ends in a number").
func endsInNumber(name string) bool {
	last := name
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		last = name[i+1:]
	}
	if last == "" {
		return false
	}
	if strings.HasPrefix(last, "0x") {
		for _, c := range last[2:] {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
		return true
	}
	for _, c := range last {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ParsePrefixes parses allow-list entries from configuration: each entry is
// a CIDR prefix ("10.1.0.0/16", "fd00::/8") or a bare IP address, taken as a
// single-address prefix. Surrounding white space is trimmed and empty
// entries are skipped; prefixes are masked to their network address and
// zones are stripped. The error names the first bad entry.
func ParsePrefixes(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for i, raw := range list {
		s := strings.TrimSpace(raw)
		if s == "" {
			continue
		}
		addrPart, bitsPart, isCIDR := strings.Cut(s, "/")
		a, err := netip.ParseAddr(addrPart)
		if err != nil {
			return nil, fmt.Errorf("ssrf: allow-list entry %d %q is not a CIDR prefix or IP address: %v", i, raw, err)
		}
		a = a.WithZone("")
		p := netip.PrefixFrom(a, a.BitLen())
		if isCIDR {
			if p, err = netip.ParsePrefix(a.String() + "/" + bitsPart); err != nil {
				return nil, fmt.Errorf("ssrf: allow-list entry %d %q is not a CIDR prefix or IP address: %v", i, raw, err)
			}
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
