package wire

import (
	"encoding/binary"
	"fmt"
	"time"
)

// WakeSignal is the data of a TopicDue signal: the due time, as 8 bytes of
// big-endian Unix nanoseconds.
func WakeSignal(due time.Time) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(due.UnixNano()))
}

// ParseWake decodes a TopicDue signal.
func ParseWake(b []byte) (time.Time, error) {
	if len(b) != 8 {
		return time.Time{}, fmt.Errorf("due signal: %d bytes, want 8", len(b))
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b))), nil
}
