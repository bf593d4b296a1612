package kafka

import (
	"fmt"
	"strconv"
	"strings"
)

// Commit metadata. Every offset commit this package makes carries
// "hookline1 <state> <token> <seq> <pos>":
//
//   - state is held while a member owns the partition, released once it
//     has let the partition go in an orderly way (end of Consume or of a
//     generation);
//   - token identifies the Consume call, seq numbers its commits, so a
//     member that gets a partition back can tell whether anyone else
//     committed on it meanwhile;
//   - pos is one past the last offset taken (held) or handed to a handler
//     (released).
//
// A member commits "held" before it fetches anything from a partition it
// was assigned, so the next owner can tell whether the partition had an
// owner since the last orderly release.
const metaVersion = "hookline1"

const (
	stateHeld     = "held"
	stateReleased = "released"
)

type commitMeta struct {
	state string
	token string
	seq   int64
	pos   int64
}

func (m commitMeta) String() string {
	return fmt.Sprintf("%s %s %s %d %d", metaVersion, m.state, m.token, m.seq, m.pos)
}

// parseMeta parses commit metadata written by this package.
func parseMeta(s string) (commitMeta, bool) {
	f := strings.Fields(s)
	if len(f) != 5 || f[0] != metaVersion || (f[1] != stateHeld && f[1] != stateReleased) {
		return commitMeta{}, false
	}
	seq, err1 := strconv.ParseInt(f[3], 10, 64)
	pos, err2 := strconv.ParseInt(f[4], 10, 64)
	if err1 != nil || err2 != nil {
		return commitMeta{}, false
	}
	return commitMeta{state: f[1], token: f[2], seq: seq, pos: pos}, true
}

// suspectEnd returns the end of the range [committed, end) whose records
// may have been handed to a consumer before, given the committed offset's
// metadata and the partition's log end when it was assigned:
//
//   - no commit at all: nothing was handed (nobody owned the partition);
//   - released: up to the recorded hand-out position;
//   - held (the owner did not release it: it crashed or was cut off) or
//     a commit this package did not write: everything up to the log end.
func suspectEnd(committed int64, metadata string, logEnd int64) int64 {
	if committed < 0 && metadata == "" {
		return -1
	}
	md, ok := parseMeta(metadata)
	if ok && md.state == stateReleased {
		return md.pos
	}
	return logEnd
}
