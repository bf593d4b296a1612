package ssrf

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
)

// testDNS is a small authoritative DNS server speaking the real wire format
// (RFC 1035, TCP framing) over in-memory pipes. Go's own resolver talks to it
// through Resolver.Dial, so name resolution in tests never leaves the
// process: unknown names get NXDOMAIN.
type testDNS struct {
	records map[string][]netip.Addr // lower-case FQDN with trailing dot
}

func newTestDNS(records map[string][]string) *testDNS {
	d := &testDNS{records: map[string][]netip.Addr{}}
	for name, addrs := range records {
		key := strings.ToLower(strings.TrimSuffix(name, ".")) + "."
		for _, a := range addrs {
			d.records[key] = append(d.records[key], netip.MustParseAddr(a))
		}
	}
	return d
}

// resolver returns a pure-Go resolver whose every DNS exchange is answered
// by d over a net.Pipe; it cannot reach the network.
func (d *testDNS) resolver() *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			client, server := net.Pipe()
			go d.serve(server)
			return client, nil
		},
	}
}

func (d *testDNS) serve(c net.Conn) {
	defer c.Close()
	for {
		var l [2]byte
		if _, err := io.ReadFull(c, l[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp := d.answer(q)
		if resp == nil {
			return
		}
		out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
		if _, err := c.Write(append(out, resp...)); err != nil {
			return
		}
	}
}

const (
	typeA    = 1
	typeAAAA = 28
)

// answer builds the response to one query, or nil if q is malformed.
func (d *testDNS) answer(q []byte) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	off := 12
	var name strings.Builder
	for {
		if off >= len(q) {
			return nil
		}
		n := int(q[off])
		off++
		if n == 0 {
			break
		}
		if n > 63 || off+n > len(q) {
			return nil
		}
		name.WriteString(strings.ToLower(string(q[off : off+n])))
		name.WriteByte('.')
		off += n
	}
	if off+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[off : off+2])
	question := q[12 : off+4]

	addrs, known := d.records[name.String()]
	var answers []byte
	count := 0
	for _, a := range addrs {
		var rdata []byte
		switch {
		case qtype == typeA && a.Is4():
			b := a.As4()
			rdata = b[:]
		case qtype == typeAAAA && a.Is6():
			b := a.As16()
			rdata = b[:]
		default:
			continue
		}
		answers = append(answers, 0xc0, 12) // pointer to the question name
		answers = binary.BigEndian.AppendUint16(answers, qtype)
		answers = binary.BigEndian.AppendUint16(answers, 1) // class IN
		answers = binary.BigEndian.AppendUint32(answers, 60)
		answers = binary.BigEndian.AppendUint16(answers, uint16(len(rdata)))
		answers = append(answers, rdata...)
		count++
	}
	rcode := byte(0)
	if !known {
		rcode = 3 // NXDOMAIN
	}
	resp := make([]byte, 12, 12+len(question)+len(answers))
	copy(resp[0:2], q[0:2])                              // id
	resp[2] = 0x80 | 0x04 | (q[2] & 0x01)                // QR, AA, RD copied
	resp[3] = 0x80 | rcode                               // RA, rcode
	binary.BigEndian.PutUint16(resp[4:6], 1)             // QDCOUNT
	binary.BigEndian.PutUint16(resp[6:8], uint16(count)) // ANCOUNT
	resp = append(resp, question...)
	return append(resp, answers...)
}
