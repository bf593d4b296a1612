package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// guardHTTP authenticates an HTTP/JSON request before anything reads its
// body, then reads the body itself, capped at maxHTTPBodyBytes: a body
// declared larger is refused before any of it is read, and one that grows
// larger on the way is refused when it crosses the cap (413 either way,
// naming the limit), having held at most the cap in memory. The gRPC
// server behind the gateway checks the key again, from its cache.
func (s *Service) guardHTTP(gw *runtime.ServeMux) http.Handler {
	limit := s.cfg.maxHTTPBodyBytes()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		md := metadata.MD{}
		if v := r.Header.Values("Authorization"); len(v) > 0 {
			md["authorization"] = v
		}
		if _, err := s.auth.authenticate(r.Context(), md, false); err != nil {
			runtime.DefaultHTTPErrorHandler(r.Context(), gw, &runtime.JSONPb{}, w, r, err)
			return
		}
		if err := checkURLText(r); err != nil {
			s.httpError(r.Context(), gw, &runtime.JSONPb{}, w, r, err)
			return
		}
		body, err := readCapped(r.Body, r.ContentLength, limit)
		if err != nil {
			w.Header().Set("Connection", "close") // the rest of the body is not read
			s.httpError(r.Context(), gw, &runtime.JSONPb{}, w, r, err)
			return
		}
		if len(body) > 0 && !json.Valid(body) {
			s.httpError(r.Context(), gw, &runtime.JSONPb{}, w, r, malformedJSON(body))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		gw.ServeHTTP(w, r)
	})
}

// checkURLText refuses a path or query parameter that is not UTF-8 once
// decoded: it would fill a string field of the request, which gRPC cannot
// encode (an Internal error otherwise).
func checkURLText(r *http.Request) error {
	var v violations
	if !utf8.ValidString(r.URL.Path) {
		v.add("path", "is not valid UTF-8")
	}
	for key, vals := range r.URL.Query() {
		if !utf8.ValidString(key) {
			v.add("query", "a parameter name is not valid UTF-8")
			continue
		}
		for _, val := range vals {
			if !utf8.ValidString(val) {
				v.add(key, "is not valid UTF-8")
				break
			}
		}
	}
	return v.err()
}

// malformedJSON says where and why body is not JSON.
func malformedJSON(body []byte) error {
	var raw json.RawMessage
	err := json.Unmarshal(body, &raw)
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return status.Errorf(codes.InvalidArgument, "body: not valid JSON at byte %d: %v", syn.Offset, syn)
	}
	return status.Errorf(codes.InvalidArgument, "body: not valid JSON: %v", err)
}

// bodyChunk is the step in which a body of unknown length is read.
const bodyChunk = 256 << 10

// readCapped reads all of body, whose declared length is declared (-1 when
// unknown), unless it is longer than limit: then it stops at the limit and
// returns errBodyTooLarge. A body of unknown length is read in chunks and
// joined once, so growing it never holds more than the body and its last
// chunk.
func readCapped(body io.Reader, declared, limit int64) ([]byte, error) {
	if declared > limit {
		return nil, errBodyTooLarge{limit}
	}
	if declared >= 0 {
		buf := make([]byte, declared)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "read request body: %v", err)
		}
		return buf, nil
	}
	var chunks [][]byte
	var total int64
	for {
		chunk := make([]byte, bodyChunk)
		n, err := io.ReadFull(body, chunk)
		total += int64(n)
		if total > limit {
			return nil, errBodyTooLarge{limit}
		}
		chunks = append(chunks, chunk[:n])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "read request body: %v", err)
		}
	}
	return bytes.Join(chunks, nil), nil
}

// errBodyTooLarge is a request body over the cap, answered with 413.
type errBodyTooLarge struct{ limit int64 }

func (e errBodyTooLarge) Error() string {
	return fmt.Sprintf("request body exceeds the limit of %d bytes (--ingest-max-payload-bytes x --ingest-max-batch-events, as JSON)", e.limit)
}

// httpError is the gateway's error handler: a body over the cap is 413
// with the limit named; everything else is as grpc-gateway maps it.
func (s *Service) httpError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	var big errBodyTooLarge
	if !errors.As(err, &big) {
		runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
		return
	}
	st := status.New(codes.ResourceExhausted, big.Error())
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, &statusOverride{ResponseWriter: w, code: http.StatusRequestEntityTooLarge}, r, st.Err())
}

// statusOverride writes code instead of the status the gateway chose.
type statusOverride struct {
	http.ResponseWriter
	code int
}

func (o *statusOverride) WriteHeader(int) { o.ResponseWriter.WriteHeader(o.code) }
