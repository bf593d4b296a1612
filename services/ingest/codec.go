package ingest

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// utf8Codec is gRPC's proto codec, except for a request of the hookline
// API holding a string that is not UTF-8: gRPC would answer Internal with
// no field named, so the codec lets the call through with the message
// empty and leaves the field's name for authUnary, which refuses the call
// with InvalidArgument naming it before any handler runs.
type utf8Codec struct {
	encoding.CodecV2
	// bad maps a request message to the path of its first string field
	// that is not UTF-8, from Unmarshal to authUnary.
	bad sync.Map
}

func newUTF8Codec() *utf8Codec {
	return &utf8Codec{CodecV2: encoding.GetCodecV2("proto")}
}

// Unmarshal decodes as the proto codec does; see utf8Codec.
func (c *utf8Codec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	m, ok := v.(proto.Message)
	if !ok || !strings.HasPrefix(string(m.ProtoReflect().Descriptor().FullName()), "hookline.") {
		return err // reflection and health stream; only unary hookline calls reach authUnary
	}
	buf := data.Materialize()
	field, found := invalidUTF8Field(buf, m.ProtoReflect().Descriptor(), "")
	if !found {
		return err
	}
	proto.Reset(m)
	c.bad.Store(m, field)
	return nil
}

// badUTF8 returns, once, the field of req that was not UTF-8.
func (c *utf8Codec) badUTF8(req any) (string, bool) {
	f, ok := c.bad.LoadAndDelete(req)
	if !ok {
		return "", false
	}
	return f.(string), true
}

// invalidUTF8Field walks the wire form b of a message of md and returns
// the path of the first string field (at any depth) that is not UTF-8.
func invalidUTF8Field(b []byte, md protoreflect.MessageDescriptor, path string) (string, bool) {
	index := map[protoreflect.Name]int{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return "", false
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return "", false
		}
		b = b[n:]
		name := path + string(fd.Name())
		if fd.IsList() {
			name = fmt.Sprintf("%s[%d]", name, index[fd.Name()])
			index[fd.Name()]++
		}
		switch {
		case fd.Kind() == protoreflect.StringKind && !utf8.Valid(v):
			return name, true
		case fd.IsMap():
			if f, ok := invalidUTF8Field(v, fd.Message(), name+"."); ok {
				return f, true
			}
		case fd.Kind() == protoreflect.MessageKind:
			if f, ok := invalidUTF8Field(v, fd.Message(), name+"."); ok {
				return f, true
			}
		}
	}
	return "", false
}
