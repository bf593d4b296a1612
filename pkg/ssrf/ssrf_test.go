package ssrf

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCheckAddr runs the decision function over addresses from every range
// of the IANA IPv4/IPv6 Special-Purpose Address Registries plus ordinary
// public addresses. want is "" for allowed, otherwise a substring of the
// range name the error must carry.
func TestCheckAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		want string
	}{
		// Public unicast: allowed.
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"93.184.215.14", ""},
		{"100.63.255.255", ""},  // just below CGNAT
		{"100.128.0.0", ""},     // just above CGNAT
		{"172.15.255.255", ""},  // just below 172.16/12
		{"172.32.0.0", ""},      // just above 172.16/12
		{"192.0.1.255", ""},     // between 192.0.0/24 and 192.0.2/24
		{"198.17.255.255", ""},  // below benchmarking
		{"198.20.0.0", ""},      // above benchmarking
		{"223.255.255.255", ""}, // below multicast
		{"192.31.196.1", ""},    // AS112, globally reachable
		{"2606:4700:4700::1111", ""},
		{"2001:4860:4860::8888", ""},
		{"2a00:1450:4001:80b::200e", ""},
		{"2001:200::1", ""}, // APNIC, just past 2001::/23
		{"::ffff:8.8.8.8", ""},
		{"2620:4f:8000::1", ""}, // AS112 direct delegation, globally reachable

		// IPv4 special purpose.
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"10.0.0.1", "private-use"},
		{"10.255.255.255", "private-use"},
		{"172.16.0.1", "private-use"},
		{"172.31.255.255", "private-use"},
		{"192.168.1.1", "private-use"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"100.100.100.200", "carrier-grade NAT"}, // Alibaba Cloud metadata
		{"169.254.169.254", "metadata"},
		{"169.254.170.2", "link-local"}, // ECS task metadata
		{"169.254.0.1", "link-local"},
		{"192.0.0.1", "DS-Lite"},
		{"192.0.0.170", "NAT64/DNS64 discovery"},
		{"192.0.0.192", "IETF protocol assignments"}, // Oracle Cloud metadata
		{"192.0.2.10", "TEST-NET-1"},
		{"192.88.99.1", "6to4 relay"},
		{"198.18.0.1", "benchmarking"},
		{"198.19.255.255", "benchmarking"},
		{"198.51.100.7", "TEST-NET-2"},
		{"203.0.113.9", "TEST-NET-3"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.254", "reserved"},
		{"255.255.255.255", "broadcast"},

		// IPv6 special purpose.
		{"::", "unspecified"},
		{"::1", "loopback"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"febf:ffff::1", "link-local"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"fd00:ec2::254", "metadata"},
		{"fec0::1", "site-local"},
		{"ff02::1", "multicast"},
		{"ff0e::1", "multicast"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"2001::1", "Teredo"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"2001:2::1", "benchmarking"},
		{"2001:10::1", "ORCHID"},
		{"2001:20::1", "ORCHIDv2"},
		{"2001:30::1", "drone"},
		{"2001:1::1", "IETF protocol assignments"},
		{"2001:4:112::1", "IETF protocol assignments"},
		{"2002::1", "6to4"},
		{"2002:c0a8:101::1", "6to4"}, // embeds 192.168.1.1
		{"2002:808:808::1", "6to4"},
		{"64:ff9b::a00:1", "NAT64 well-known"},   // 10.0.0.1
		{"64:ff9b::808:808", "NAT64 well-known"}, // 8.8.8.8 still refused
		{"64:ff9b:1::1", "NAT64 local-use"},
		{"100::1", "discard-only"},
		{"100:0:0:1::1", "dummy"},
		{"5f00::1", "segment routing"},
		{"::ffff:0:a00:1", "IPv4-translated"},
		{"4000::1", "outside global unicast"},
		{"1::1", "outside global unicast"},
		{"e000::1", "outside global unicast"},

		// IPv4 embedded in IPv6.
		{"::ffff:127.0.0.1", "IPv4-mapped 127.0.0.1: loopback"},
		{"::ffff:10.1.2.3", "private-use"},
		{"::ffff:169.254.169.254", "metadata"},
		{"::ffff:0.0.0.0", "unspecified"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"::10.0.0.1", "private-use"},
		{"::2", "IPv4-compatible"},
	}
	g := NewGuard()
	for _, tc := range tests {
		addr := netip.MustParseAddr(tc.addr)
		err := g.CheckAddr(addr)
		if tc.want == "" {
			if err != nil {
				t.Errorf("CheckAddr(%s) = %v, want allowed", tc.addr, err)
			}
			continue
		}
		if !errors.Is(err, ErrForbidden) {
			t.Errorf("CheckAddr(%s) = %v, want ErrForbidden", tc.addr, err)
			continue
		}
		var fe *ForbiddenError
		if !errors.As(err, &fe) {
			t.Errorf("CheckAddr(%s) = %T, want *ForbiddenError", tc.addr, err)
			continue
		}
		if !strings.Contains(fe.Range, tc.want) {
			t.Errorf("CheckAddr(%s) range %q, want it to mention %q", tc.addr, fe.Range, tc.want)
		}
		if msg := err.Error(); !strings.Contains(msg, addr.WithZone("").String()) || !strings.Contains(msg, fe.Range) {
			t.Errorf("CheckAddr(%s) message %q must name the address and range", tc.addr, msg)
		}
		// A nil Guard applies the same defaults.
		var nilGuard *Guard
		if err := nilGuard.CheckAddr(addr); !errors.Is(err, ErrForbidden) {
			t.Errorf("nil Guard CheckAddr(%s) = %v, want ErrForbidden", tc.addr, err)
		}
	}
	if err := g.CheckAddr(netip.Addr{}); !errors.Is(err, ErrForbidden) {
		t.Errorf("CheckAddr(zero Addr) = %v, want ErrForbidden", err)
	}
}

func TestCheckAddrAllowList(t *testing.T) {
	t.Parallel()
	allow, err := ParsePrefixes([]string{"127.0.0.0/8", "10.1.0.0/16", "fd00::/8", "::ffff:192.168.7.0/120", "fe80::1%eth0", "169.254.169.254"})
	if err != nil {
		t.Fatal(err)
	}
	g := NewGuard(append(allow, netip.Prefix{})...) // invalid prefix ignored
	tests := []struct {
		addr    string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"127.9.9.9", true},
		{"::ffff:127.0.0.1", true}, // mapped form of an allowed IPv4
		{"::1", false},             // IPv6 loopback not listed
		{"10.1.200.3", true},
		{"10.2.0.1", false},
		{"fd00:ec2::254", true}, // inside an allowed prefix even though special
		{"fc00::1", false},
		{"192.168.7.42", true}, // mapped allow prefix applies to IPv4
		{"192.168.8.1", false},
		{"fe80::1", true},
		{"fe80::1%eth1", true}, // zone stripped
		{"fe80::2", false},
		{"169.254.169.254", true},
		{"169.254.169.253", false},
		{"8.8.8.8", true},
	}
	for _, tc := range tests {
		err := g.CheckAddr(netip.MustParseAddr(tc.addr))
		if tc.allowed && err != nil {
			t.Errorf("CheckAddr(%s) = %v, want allowed", tc.addr, err)
		}
		if !tc.allowed && !errors.Is(err, ErrForbidden) {
			t.Errorf("CheckAddr(%s) = %v, want ErrForbidden", tc.addr, err)
		}
	}
}

func TestControlDirect(t *testing.T) {
	t.Parallel()
	g := NewGuard(netip.MustParsePrefix("10.9.0.0/16"))
	tests := []struct {
		network, address string
		forbidden        bool
	}{
		{"tcp4", "10.0.0.1:443", true},
		{"tcp4", "10.9.1.1:443", false},
		{"tcp4", "169.254.169.254:80", true},
		{"tcp6", "[fd00:ec2::254]:80", true},
		{"tcp6", "[fe80::1%eth0]:8080", true},
		{"tcp6", "[::ffff:192.168.0.1]:80", true},
		{"tcp6", "[64:ff9b::a00:1]:443", true},
		{"tcp4", "8.8.8.8:443", false},
		{"tcp6", "[2606:4700:4700::1111]:443", false},
		{"tcp", "example.com:443", true}, // not a resolved address
		{"tcp", "8.8.8.8", true},         // no port
		{"tcp", "", true},
	}
	for _, tc := range tests {
		err := g.Control(tc.network, tc.address, nil)
		if tc.forbidden != errors.Is(err, ErrForbidden) || (!tc.forbidden && err != nil) {
			t.Errorf("Control(%q, %q) = %v, forbidden=%v", tc.network, tc.address, err, tc.forbidden)
		}
	}
}

// TestDialerControl dials a real loopback listener through net.Dialer with
// the guard installed. Refused dials must not reach the listener: the first
// connection it accepts has to be the later, allowed one.
func TestDialerControl(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	deny := &net.Dialer{Control: NewGuard().Control}
	for _, addr := range []string{ln.Addr().String(), strings.Replace(ln.Addr().String(), "127.0.0.1", "localhost", 1)} {
		conn, err := deny.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn.Close()
			t.Fatalf("dial %s with loopback denied succeeded", addr)
		}
		if !errors.Is(err, ErrForbidden) {
			t.Fatalf("dial %s: %v, want ErrForbidden", addr, err)
		}
	}

	allow := &net.Dialer{Control: NewGuard(netip.MustParsePrefix("127.0.0.0/8")).Control}
	conn, err := allow.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial with 127.0.0.0/8 allowed: %v", err)
	}
	defer conn.Close()
	accepted, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer accepted.Close()
	if got, want := accepted.RemoteAddr().String(), conn.LocalAddr().String(); got != want {
		t.Fatalf("listener accepted a connection from %s before the allowed one from %s: a refused dial got through", got, want)
	}
}

// TestHTTPClientGuard wires the guard into an http.Transport the way the
// delivery service does and checks a loopback server is never reached.
func TestHTTPClientGuard(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
	}))
	defer srv.Close()

	for _, tc := range []struct {
		name  string
		guard *Guard
		ok    bool
	}{
		{"denied", NewGuard(), false},
		{"allowed", NewGuard(netip.MustParsePrefix("127.0.0.0/8")), true},
	} {
		tr := &http.Transport{DialContext: (&net.Dialer{Control: tc.guard.Control}).DialContext}
		client := &http.Client{Transport: tr}
		before := hits.Load()
		resp, err := client.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		tr.CloseIdleConnections()
		if tc.ok != (err == nil) {
			t.Errorf("%s: GET = %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: GET error %v, want ErrForbidden", tc.name, err)
		}
		if reached := hits.Load() != before; reached != tc.ok {
			t.Errorf("%s: server reached = %v", tc.name, reached)
		}
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	dns := newTestDNS(map[string][]string{
		"public.hookline.test":   {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"v6only.hookline.test":   {"2606:4700:4700::1111"},
		"mixed.hookline.test":    {"93.184.215.14", "10.0.0.5"},
		"mixed6.hookline.test":   {"93.184.215.14", "fd00::5"},
		"meta.hookline.test":     {"169.254.169.254"},
		"internal.hookline.test": {"10.1.2.3"},
		"empty.hookline.test":    {},
	})
	res := dns.resolver()
	deny := NewGuard()
	dev := NewGuard(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.1.0.0/16"))

	const (
		ok        = ""
		forbidden = "forbidden"
	)
	tests := []struct {
		url   string
		guard *Guard
		want  string // ok, forbidden, or the URLError part
	}{
		{"https://public.hookline.test/hooks", deny, ok},
		{"http://PUBLIC.hookline.test:8080/x?y=1#f", deny, ok},
		{"https://public.hookline.test./hooks", deny, ok},
		{"https://v6only.hookline.test/", deny, ok},
		{"HTTPS://93.184.215.14/", deny, ok},
		{"https://93.184.215.14./", deny, ok},
		{"https://[2606:4700:4700::1111]:443/", deny, ok},

		{"ftp://public.hookline.test/", deny, "scheme"},
		{"file:///etc/passwd", deny, "scheme"},
		{"gopher://127.0.0.1:25/", deny, "scheme"},
		{"//public.hookline.test/", deny, "scheme"},
		{"public.hookline.test/hooks", deny, "scheme"},
		{"https://user:pass@public.hookline.test/", deny, "userinfo"},
		{"https://user@public.hookline.test/", deny, "userinfo"},
		{"https:///path", deny, "host"},
		{"https:opaque", deny, "host"},
		{"https://:443/", deny, "host"},
		{"https://public.hookline.test:0/", deny, "port"},
		{"https://public.hookline.test:65536/", deny, "port"},
		{"https://public.hookline.test:http/", deny, "url"},
		{"https://[::1/", deny, "url"},
		{"https://exa mple.com/", deny, "url"},
		{"https://127.1/", deny, "host"},
		{"https://2130706433/", deny, "host"},
		{"https://0x7f000001/", deny, "host"},
		{"https://0x7f.0.0.1/", deny, "host"},
		{"https://0177.0.0.1/", deny, "host"},
		{"https://1.2.3.4.5/", deny, "host"},
		{"https://a..b/", deny, "host"},
		{"https://nx.hookline.test/", deny, "host"},
		{"https://empty.hookline.test/", deny, "host"},

		{"http://127.0.0.1/", deny, forbidden},
		{"http://[::1]:8080/", deny, forbidden},
		{"http://[::ffff:127.0.0.1]/", deny, forbidden},
		{"http://[fe80::1%25eth0]/", deny, forbidden},
		{"http://169.254.169.254/latest/meta-data/", deny, forbidden},
		{"http://[fd00:ec2::254]/", deny, forbidden},
		{"http://0.0.0.0:8080/", deny, forbidden},
		{"http://localhost:8080/", deny, forbidden},
		{"http://LocalHost./", deny, forbidden},
		{"http://api.localhost/", deny, forbidden},
		{"https://mixed.hookline.test/", deny, forbidden},
		{"https://mixed6.hookline.test/", deny, forbidden},
		{"https://meta.hookline.test/", deny, forbidden},
		{"https://internal.hookline.test/", deny, forbidden},

		{"http://localhost:8080/", dev, ok},
		{"http://api.localhost/", dev, ok},
		{"http://127.0.0.1:9000/", dev, ok},
		{"http://[::1]:9000/", dev, ok},
		{"https://internal.hookline.test/", dev, ok},
		{"https://mixed.hookline.test/", dev, forbidden}, // 10.0.0.5 not in 10.1/16
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			err := tc.guard.CheckURL(ctx, tc.url, res)
			switch tc.want {
			case ok:
				if err != nil {
					t.Fatalf("CheckURL = %v, want nil", err)
				}
			case forbidden:
				if !errors.Is(err, ErrForbidden) || errors.Is(err, ErrInvalidURL) {
					t.Fatalf("CheckURL = %v, want ErrForbidden", err)
				}
			default:
				var ue *URLError
				if !errors.As(err, &ue) || !errors.Is(err, ErrInvalidURL) || errors.Is(err, ErrForbidden) {
					t.Fatalf("CheckURL = %v, want *URLError", err)
				}
				if ue.Part != tc.want {
					t.Fatalf("CheckURL = %v, part %q, want %q", err, ue.Part, tc.want)
				}
			}
			if err != nil && strings.Contains(err.Error(), "pass") {
				t.Fatalf("error %q leaks the URL's password", err)
			}
		})
	}
}

func TestCheckURLErrorDetails(t *testing.T) {
	t.Parallel()
	dns := newTestDNS(map[string][]string{"mixed.hookline.test": {"93.184.215.14", "10.0.0.5"}})
	ctx := context.Background()
	err := NewGuard().CheckURL(ctx, "https://mixed.hookline.test/x", dns.resolver())
	var fe *ForbiddenError
	if !errors.As(err, &fe) {
		t.Fatalf("CheckURL = %v, want *ForbiddenError", err)
	}
	if fe.Host != "mixed.hookline.test" || fe.Addr != netip.MustParseAddr("10.0.0.5") {
		t.Errorf("ForbiddenError = %+v, want host mixed.hookline.test and addr 10.0.0.5", fe)
	}
	for _, s := range []string{"mixed.hookline.test", "10.0.0.5", "private-use"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}

	err = NewGuard().CheckURL(ctx, "https://nx.hookline.test/", dns.resolver())
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Errorf("CheckURL(unknown host) = %v, want a not-found *net.DNSError inside", err)
	}

	err = NewGuard().CheckURL(ctx, "ftp://x/", nil)
	if err == nil || !strings.Contains(err.Error(), `"ftp"`) || !strings.Contains(err.Error(), "http or https") {
		t.Errorf("scheme error %v should name the scheme and the allowed ones", err)
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      []string
		want    []string
		wantErr string // substring naming the bad entry
	}{
		{in: nil, want: []string{}},
		{in: []string{"10.0.0.0/8"}, want: []string{"10.0.0.0/8"}},
		{in: []string{" 127.0.0.1 ", "", "::1"}, want: []string{"127.0.0.1/32", "::1/128"}},
		{in: []string{"10.1.2.3/16"}, want: []string{"10.1.0.0/16"}},
		{in: []string{"fd00::1/8"}, want: []string{"fd00::/8"}},
		{in: []string{"fe80::1%eth0"}, want: []string{"fe80::1/128"}},
		{in: []string{"fe80::1%eth0/64"}, want: []string{"fe80::/64"}},
		{in: []string{"0.0.0.0/0"}, want: []string{"0.0.0.0/0"}},
		{in: []string{"10.0.0.0/8", "bogus"}, wantErr: `"bogus"`},
		{in: []string{"10.0.0.0/33"}, wantErr: `"10.0.0.0/33"`},
		{in: []string{"10.0.0.0/"}, wantErr: `"10.0.0.0/"`},
		{in: []string{"/8"}, wantErr: `"/8"`},
		{in: []string{"localhost"}, wantErr: `"localhost"`},
		{in: []string{"10.0.0.0/8/8"}, wantErr: `"10.0.0.0/8/8"`},
		{in: []string{"::1/129"}, wantErr: `"::1/129"`},
	}
	for _, tc := range tests {
		got, err := ParsePrefixes(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePrefixes(%q) = %v, %v; want error naming %s", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePrefixes(%q): %v", tc.in, err)
			continue
		}
		gs := make([]string, len(got))
		for i, p := range got {
			gs[i] = p.String()
		}
		if strings.Join(gs, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ParsePrefixes(%q) = %v, want %v", tc.in, gs, tc.want)
		}
	}
}

func TestCheckAddrAllocs(t *testing.T) {
	g := NewGuard(netip.MustParsePrefix("10.1.0.0/16"))
	addrs := []netip.Addr{netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("2606:4700:4700::1111"), netip.MustParseAddr("10.1.0.9")}
	if n := testing.AllocsPerRun(100, func() {
		for _, a := range addrs {
			if g.CheckAddr(a) != nil {
				t.Fatal("refused")
			}
		}
	}); n != 0 {
		t.Errorf("CheckAddr allocates %v times when allowing", n)
	}
}

// FuzzCheckAddr checks that IPv4-mapped IPv6 addresses get the same verdict
// as the IPv4 address they embed, and that allow-listing an address always
// permits it.
func FuzzCheckAddr(f *testing.F) {
	f.Add([]byte{127, 0, 0, 1})
	f.Add([]byte{8, 8, 8, 8})
	f.Add(netip.MustParseAddr("fd00:ec2::254").AsSlice())
	f.Add(netip.MustParseAddr("2606:4700:4700::1111").AsSlice())
	g := NewGuard()
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		err := g.CheckAddr(a)
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Fatalf("CheckAddr(%s) = %v, not ErrForbidden", a, err)
		}
		if a.Is4() {
			mapped := netip.AddrFrom16(a.As16())
			if (g.CheckAddr(mapped) == nil) != (err == nil) {
				t.Fatalf("CheckAddr(%s) = %v but CheckAddr(%s) = %v", a, err, mapped, g.CheckAddr(mapped))
			}
		}
		if err := NewGuard(netip.PrefixFrom(a, a.BitLen())).CheckAddr(a); err != nil {
			t.Fatalf("allow-listed %s refused: %v", a, err)
		}
		if err := g.Control("tcp", netip.AddrPortFrom(a, 443).String(), nil); (err == nil) != (g.CheckAddr(a) == nil) {
			t.Fatalf("Control and CheckAddr disagree on %s: %v", a, err)
		}
	})
}

func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{"10.0.0.0/8", "127.0.0.1,::1", "fe80::1%eth0/64", " , 0.0.0.0/0", "10.0.0.0/33", "::ffff:1.2.3.4/120", "1.2.3.4/08"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries := strings.Split(s, ",")
		got, err := ParsePrefixes(entries)
		if err != nil {
			if !strings.Contains(err.Error(), "allow-list entry") {
				t.Fatalf("error %v does not name the entry", err)
			}
			return
		}
		nonEmpty := 0
		for _, e := range entries {
			if strings.TrimSpace(e) != "" {
				nonEmpty++
			}
		}
		if len(got) != nonEmpty {
			t.Fatalf("ParsePrefixes(%q) returned %d prefixes for %d entries", s, len(got), nonEmpty)
		}
		for _, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" {
				t.Fatalf("ParsePrefixes(%q) returned non-canonical %v", s, p)
			}
			again, err := ParsePrefixes([]string{p.String()})
			if err != nil || len(again) != 1 || again[0] != p {
				t.Fatalf("round trip of %v: %v, %v", p, again, err)
			}
			if !NewGuard(p).allowed(p.Addr()) && !p.Addr().Is4In6() {
				t.Fatalf("guard from %v does not allow its own address", p)
			}
		}
	})
}

// FuzzCheckURL feeds arbitrary URLs through CheckURL with a resolver that
// can only reach the in-process test DNS server (which knows no names), so
// only IP literals and /etc/hosts entries can ever pass.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://93.184.215.14/", "http://127.0.0.1:8080/", "http://[::1]/", "http://[fe80::1%25en0]/",
		"https://user:pw@1.1.1.1/", "ftp://x/", "http://localhost/", "https://0x7f.1/", "https://a.b.example./",
		"http://[::ffff:10.0.0.1]:0/", "https:opaque", "http://%31%32%37.0.0.1/",
	} {
		f.Add(s)
	}
	g := NewGuard()
	res := newTestDNS(nil).resolver()
	f.Fuzz(func(t *testing.T, raw string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := g.CheckURL(ctx, raw, res)
		if err != nil {
			if !errors.Is(err, ErrForbidden) && !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("CheckURL(%q) = %v: neither ErrForbidden nor ErrInvalidURL", raw, err)
			}
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("CheckURL accepted unparsable %q", raw)
		}
		if s := strings.ToLower(u.Scheme); (s != "http" && s != "https") || u.User != nil || u.Hostname() == "" {
			t.Fatalf("CheckURL accepted %q (scheme %q, user %v, host %q)", raw, u.Scheme, u.User, u.Hostname())
		}
		host := strings.TrimSuffix(u.Hostname(), ".")
		if a, err := netip.ParseAddr(host); err == nil {
			if g.CheckAddr(a) != nil {
				t.Fatalf("CheckURL accepted %q with forbidden literal %s", raw, a)
			}
			return
		}
		addrs, err := res.LookupNetIP(ctx, "ip", u.Hostname())
		if err != nil || len(addrs) == 0 {
			t.Fatalf("CheckURL accepted %q whose host does not resolve: %v", raw, err)
		}
		for _, a := range addrs {
			if g.CheckAddr(a) != nil {
				t.Fatalf("CheckURL accepted %q resolving to forbidden %s", raw, a)
			}
		}
	})
}
