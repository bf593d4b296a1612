package broker

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a size in bytes that a flag gives as a plain number or with
// a unit: 512MiB, 10GiB, 1TB (KiB, MiB, GiB, TiB are powers of 1024; KB,
// MB, GB, TB powers of 1000). It is a pflag.Value.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// Set parses s; a negative size, an unknown unit or an overflow is an
// error.
func (b *ByteSize) Set(s string) error {
	num, factor := strings.TrimSpace(s), int64(1)
	for _, u := range byteUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, factor = strings.TrimSpace(rest), u.factor
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a size (want bytes, or a number with KiB, MiB, GiB, TiB, KB, MB, GB or TB)", s)
	}
	if n < 0 {
		return fmt.Errorf("%q: a size must not be negative", s)
	}
	if n > math.MaxInt64/factor {
		return fmt.Errorf("%q: too large", s)
	}
	*b = ByteSize(n * factor)
	return nil
}

// String formats b in the largest binary unit that divides it exactly.
func (b *ByteSize) String() string {
	v := int64(*b)
	if v == 0 {
		return "0"
	}
	for i := 3; i >= 0; i-- {
		u := byteUnits[i]
		if v%u.factor == 0 {
			return strconv.FormatInt(v/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

// Type names the value in --help.
func (b *ByteSize) Type() string { return "size" }
