package ssrf

import "net/netip"

// namedRange is a refused address block and the name reported for it.
type namedRange struct {
	prefix netip.Prefix
	name   string
}

func r(cidr, name string) namedRange {
	return namedRange{prefix: netip.MustParsePrefix(cidr), name: name}
}

// Refused ranges. Sources: the IANA IPv4 and IPv6 Special-Purpose Address
// Registries (https://www.iana.org/assignments/iana-ipv4-special-registry/,
// https://www.iana.org/assignments/iana-ipv6-special-registry/, RFC 6890),
// the IANA IPv4 and IPv6 Multicast Address Space registries, and the cloud
// providers' instance-metadata endpoints. Every block the special-purpose
// registries mark "Globally Reachable: False" is refused, together with the
// translation and tunnelling prefixes (NAT64, 6to4, Teredo) through which a
// global-looking IPv6 address can reach an internal IPv4 one. Lists are
// searched in order, so more specific blocks come first to get the most
// precise name.
var v4Ranges = []namedRange{
	r("169.254.169.254/32", "cloud instance metadata service"),
	r("0.0.0.0/32", `unspecified address ("this host", RFC 1122)`),
	r("0.0.0.0/8", `"this network" (RFC 791)`),
	r("10.0.0.0/8", "private-use (RFC 1918)"),
	r("100.64.0.0/10", "shared address space / carrier-grade NAT (RFC 6598)"),
	r("127.0.0.0/8", "loopback (RFC 1122)"),
	r("169.254.0.0/16", "link-local (RFC 3927)"),
	r("172.16.0.0/12", "private-use (RFC 1918)"),
	r("192.0.0.0/29", "IPv4 service continuity prefix / DS-Lite (RFC 7335)"),
	r("192.0.0.170/31", "NAT64/DNS64 discovery (RFC 7050)"),
	r("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
	r("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
	r("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
	r("192.168.0.0/16", "private-use (RFC 1918)"),
	r("198.18.0.0/15", "benchmarking (RFC 2544)"),
	r("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
	r("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
	r("224.0.0.0/4", "multicast (RFC 5771)"),
	r("255.255.255.255/32", "limited broadcast (RFC 919)"),
	r("240.0.0.0/4", "reserved for future use (RFC 1112)"),
}

var v6Ranges = []namedRange{
	r("::/128", "unspecified address (RFC 4291)"),
	r("::1/128", "loopback (RFC 4291)"),
	r("::ffff:0:0:0/96", "IPv4-translated address (RFC 2765)"),
	r("64:ff9b::/96", "NAT64 well-known prefix (RFC 6052)"),
	r("64:ff9b:1::/48", "NAT64 local-use prefix (RFC 8215)"),
	r("100::/64", "discard-only (RFC 6666)"),
	r("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)"),
	r("2001::/32", "Teredo tunnelling (RFC 4380)"),
	r("2001:2::/48", "benchmarking (RFC 5180)"),
	r("2001:10::/28", "deprecated ORCHID (RFC 4843)"),
	r("2001:20::/28", "ORCHIDv2 (RFC 7343)"),
	r("2001:30::/28", "drone remote ID entity tags (RFC 9374)"),
	r("2001::/23", "IETF protocol assignments (RFC 2928)"),
	r("2001:db8::/32", "documentation (RFC 3849)"),
	r("2002::/16", "6to4 (RFC 3056)"),
	r("3fff::/20", "documentation (RFC 9637)"),
	r("5f00::/16", "segment routing SIDs (RFC 9602)"),
	r("fd00:ec2::254/128", "cloud instance metadata service"),
	r("fc00::/7", "unique local (RFC 4193)"),
	r("fe80::/10", "link-local (RFC 4291)"),
	r("fec0::/10", "deprecated site-local (RFC 3879)"),
	r("ff00::/8", "multicast (RFC 4291)"),
}

// globalUnicast is the only IPv6 block IANA allocates for global unicast
// (IANA IPv6 Address Space registry); everything outside it not listed above
// is reserved by the IETF and refused.
var globalUnicast = netip.MustParsePrefix("2000::/3")

const (
	nameOutsideGlobalUnicast = "reserved IPv6 space outside global unicast 2000::/3 (RFC 4291)"
	nameIPv4Compatible       = "deprecated IPv4-compatible IPv6 address (RFC 4291)"
	nameLocalhost            = `loopback name "localhost" (RFC 6761)`
)
