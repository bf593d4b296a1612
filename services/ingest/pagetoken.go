package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/hookline/hookline/pkg/store"
)

// queryTagLen is how many bytes of the query's hash a page token carries.
const queryTagLen = 8

// listQuery names one list query, everything that selects its rows but
// not the page: the RPC, the scope and each filter. Two requests get the
// same name exactly when they list the same rows.
func listQuery(rpc string, scope store.Scope, filters ...any) string {
	var b strings.Builder
	b.WriteString(rpc)
	b.WriteByte('\x00')
	b.WriteString(scope.String())
	for _, f := range filters {
		fmt.Fprintf(&b, "\x00%v", f)
	}
	return b.String()
}

// wrapPageToken binds the store's next-page token to the query that made
// it: the token a client sees is the query's tag followed by the store's
// token, base64url. The store's empty token (the last page) stays empty.
func wrapPageToken(query, next string) string {
	if next == "" {
		return ""
	}
	tag := sha256.Sum256([]byte(query))
	return base64.RawURLEncoding.EncodeToString(append(tag[:queryTagLen:queryTagLen], next...))
}

// unwrapPageToken returns the store's token inside tok, refusing a token
// that is not one wrapPageToken made for this same query (another list,
// other filters, another tenant, or made up) with InvalidArgument naming
// page_token.
func unwrapPageToken(query, tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	tag := sha256.Sum256([]byte(query))
	if err != nil || len(raw) <= queryTagLen || !bytes.Equal(raw[:queryTagLen], tag[:queryTagLen]) {
		var v violations
		v.add("page_token", "not a token returned by an earlier page of this list with these filters")
		return "", v.err()
	}
	return string(raw[queryTagLen:]), nil
}
