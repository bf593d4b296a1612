// Package eventtype validates event types and the patterns subscriptions
// use to select them, and matches one against the other.
//
// An event type is one or more dot-separated segments of letters, digits,
// '_' and '-' ("order.created", "invoice.payment-failed"), at most 128
// bytes. A pattern is an event type, a prefix followed by ".*" ("order.*",
// matching "order.created" and "order.item.added" but not "order"), or "*"
// (everything).
package eventtype

import (
	"fmt"
	"strings"
)

// MaxLen bounds the length of event types and patterns.
const MaxLen = 128

// Validate reports why t is not a valid event type, or nil.
func Validate(t string) error {
	if t == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(t) > MaxLen {
		return fmt.Errorf("longer than %d bytes", MaxLen)
	}
	for _, seg := range strings.Split(t, ".") {
		if seg == "" {
			return fmt.Errorf("%q has an empty segment (leading, trailing or doubled '.')", t)
		}
		for i := 0; i < len(seg); i++ {
			if !segmentByte(seg[i]) {
				return fmt.Errorf("%q contains %q; allowed are letters, digits, '_', '-' and '.' between segments", t, seg[i])
			}
		}
	}
	return nil
}

// ValidatePattern reports why p is not a valid subscription pattern, or nil.
func ValidatePattern(p string) error {
	if p == "*" {
		return nil
	}
	if prefix, ok := strings.CutSuffix(p, ".*"); ok {
		if err := Validate(prefix); err != nil {
			return fmt.Errorf("pattern %q: prefix %w", p, err)
		}
		return nil
	}
	if strings.ContainsAny(p, "*>?[]") {
		return fmt.Errorf("pattern %q: a wildcard is allowed only as the whole pattern (\"*\") or as the last segment (\"order.*\")", p)
	}
	if err := Validate(p); err != nil {
		return fmt.Errorf("pattern %w", err)
	}
	return nil
}

// Match reports whether event type t is selected by pattern p. p must be
// valid (see ValidatePattern).
func Match(p, t string) bool {
	if p == "*" {
		return true
	}
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		// prefix ends in '.', so "order.*" needs at least one more segment.
		return len(t) > len(prefix) && strings.HasPrefix(t, prefix)
	}
	return p == t
}

// MatchAny reports whether any of patterns selects t.
func MatchAny(patterns []string, t string) bool {
	for _, p := range patterns {
		if Match(p, t) {
			return true
		}
	}
	return false
}

func segmentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
