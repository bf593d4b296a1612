package bench

import (
	"bytes"
	"math"
	"strconv"
)

// PayloadSize is the size of every event payload in bytes.
const PayloadSize = 1024

// Payload prefixes: the payload starts with `{"t":<scheduled unix nanos>,"seq":<n>,`
// so the receiver can read both without a JSON decoder.
var (
	prefixT   = []byte(`{"t":`)
	prefixSeq = []byte(`,"seq":`)
	prefixPad = []byte(`,"pad":"`)
	suffixPad = []byte(`"}`)
)

// AppendPayload appends the JSON payload of event seq scheduled at sched
// (unix nanoseconds) to dst: {"t":sched,"seq":seq,"pad":"xxx…"}, padded to
// PayloadSize bytes (longer only if the numbers alone exceed it).
func AppendPayload(dst []byte, sched, seq int64) []byte {
	start := len(dst)
	dst = append(dst, prefixT...)
	dst = strconv.AppendInt(dst, sched, 10)
	dst = append(dst, prefixSeq...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, prefixPad...)
	pad := PayloadSize - (len(dst) - start) - len(suffixPad)
	for range max(pad, 0) {
		dst = append(dst, 'x')
	}
	return append(dst, suffixPad...)
}

// ParsePayload reads the scheduled time and sequence number from the
// start of a payload built by AppendPayload with a prefix scan. ok is
// false when the payload does not start that way.
func ParsePayload(b []byte) (sched, seq int64, ok bool) {
	rest, found := bytes.CutPrefix(b, prefixT)
	if !found {
		return 0, 0, false
	}
	sched, rest, ok = leadingInt(rest)
	if !ok {
		return 0, 0, false
	}
	if rest, found = bytes.CutPrefix(rest, prefixSeq); !found {
		return 0, 0, false
	}
	seq, rest, ok = leadingInt(rest)
	if !ok || len(rest) == 0 || (rest[0] != ',' && rest[0] != '}') {
		return 0, 0, false
	}
	return sched, seq, true
}

// leadingInt parses the non-negative decimal integer at the start of b.
func leadingInt(b []byte) (n int64, rest []byte, ok bool) {
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d := int64(b[i] - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, b, false // overflows int64
		}
		n = n*10 + d
	}
	return n, b[i:], i > 0
}
