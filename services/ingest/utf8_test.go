package ingest

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// rawCodec sends *rawMsg bytes as they are, so a test can send what a
// well-behaved client would refuse to marshal; answers are decoded by the
// proto codec.
type rawCodec struct{}

type rawMsg []byte

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*rawMsg))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*rawMsg) = data.Materialize()
	return nil
}

func (rawCodec) Name() string { return "proto" }

func str(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func msg(b []byte, num protowire.Number, m []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// TestInvalidUTF8IsInvalidArgument sends strings that are not UTF-8, over
// gRPC (raw wire bytes) and in JSON: each is InvalidArgument naming the
// field, not Internal.
func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	t.Parallel()
	ts := startTestService(t, nil)
	conn, err := grpc.NewClient(ts.svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	good := str(str(str(nil, 1, "acme"), 2, "a.b"), 3, "{}")
	tests := []struct {
		name, method string
		body         []byte
		field        string
	}{
		{"tenant", hooklinev1.IngestService_Publish_FullMethodName, str(str(str(nil, 1, "ac\xffme"), 2, "a.b"), 3, "{}"), "tenant"},
		{"event type in a batch", hooklinev1.IngestService_PublishBatch_FullMethodName,
			msg(msg(nil, 1, good), 1, str(str(str(nil, 1, "acme"), 2, "a.\xc3("), 3, "{}")), "events[1].event_type"},
		{"label value", hooklinev1.IngestService_Publish_FullMethodName,
			msg(good, 6, str(str(nil, 1, "region"), 2, "e\xffu")), "labels.value"},
		{"subscription url", hooklinev1.AdminService_CreateSubscription_FullMethodName,
			msg(nil, 1, str(str(nil, 2, "acme"), 3, "http://127.0.0.1/\xfe")), "subscription.url"},
	}
	for _, tt := range tests {
		in, out := rawMsg(tt.body), rawMsg(nil)
		err := conn.Invoke(ts.ctx(t, ts.operator), tt.method, &in, &out)
		st := status.Convert(err)
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tt.field+": is not valid UTF-8") {
			t.Errorf("%s: %v, want InvalidArgument naming %s", tt.name, err, tt.field)
		}
	}
	// The same request with valid strings passes.
	in, out := rawMsg(good), rawMsg(nil)
	if err := conn.Invoke(ts.ctx(t, ts.operator), hooklinev1.IngestService_Publish_FullMethodName, &in, &out); err != nil {
		t.Errorf("valid request: %v", err)
	}

	body := []byte("{\"tenant\":\"ac\xffme\",\"eventType\":\"a.b\",\"payload\":\"e30=\"}")
	req, _ := http.NewRequest("POST", "http://"+ts.svc.HTTPAddr()+"/v1/events:publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+ts.operator)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), "UTF-8") {
		t.Errorf("JSON with invalid UTF-8: %d %s, want 400 saying UTF-8", resp.StatusCode, raw)
	}
}
