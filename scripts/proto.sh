#!/usr/bin/env bash
# proto.sh — lint the Hookline protos and regenerate the checked-in code.
#
# Usage: scripts/proto.sh [PROTO_DIR]
#
# Installs the pinned code generators below into <repo>/.bin (skipped when the
# binary there already reports the pinned module version), then, in PROTO_DIR
# (default <repo>/proto):
#   buf format --diff --exit-code   formatting check
#   buf lint                        STANDARD + COMMENTS, see buf.yaml
#   buf generate                    Go, gRPC, grpc-gateway, merged OpenAPI
# Outputs: gen/go/hookline/v1/*.go and openapi/hookline.swagger.json; both
# are deleted first, so files of removed protos do not linger.
#
# Needs only Go and the Go module proxy (no BSR, no remote plugins). Works
# from any working directory. scripts/proto-verify.sh uses PROTO_DIR to
# regenerate into a temporary copy.
#
# Breaking-change check (buf.yaml: FILE rules), against the main branch:
#   (cd proto && ../.bin/buf breaking --against '../.git#branch=main,subdir=proto')
set -euo pipefail

# Pinned tool versions. Keep in step with proto/go.mod (runtime libraries).
BUF_VERSION=v1.75.0                 # github.com/bufbuild/buf
PROTOC_GEN_GO_VERSION=v1.36.12      # google.golang.org/protobuf
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc
GRPC_GATEWAY_VERSION=v2.33.0        # github.com/grpc-ecosystem/grpc-gateway/v2

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.bin"
PROTO_DIR="$(cd "${1:-$ROOT/proto}" && pwd)"

# install_tool NAME MODULE PACKAGE VERSION installs PACKAGE@VERSION as
# $BIN/NAME unless the binary there was already built from MODULE@VERSION.
install_tool() {
	local name=$1 module=$2 pkg=$3 version=$4 have=""
	if [[ -x "$BIN/$name" ]]; then
		have=$(go version -m "$BIN/$name" 2>/dev/null |
			awk -v m="$module" '$1 == "mod" && $2 == m { print $3 }')
	fi
	if [[ "$have" == "$version" ]]; then
		return 0
	fi
	echo "proto.sh: installing $pkg@$version into $BIN" >&2
	# GOWORK=off: build the tool from its own go.mod, not the repo workspace.
	GOWORK=off GOFLAGS=-mod=mod GOBIN="$BIN" go install "$pkg@$version"
}

mkdir -p "$BIN"
install_tool buf github.com/bufbuild/buf \
	github.com/bufbuild/buf/cmd/buf "$BUF_VERSION"
install_tool protoc-gen-go google.golang.org/protobuf \
	google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_tool protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc \
	google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
install_tool protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2 \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway "$GRPC_GATEWAY_VERSION"
install_tool protoc-gen-openapiv2 github.com/grpc-ecosystem/grpc-gateway/v2 \
	github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2 "$GRPC_GATEWAY_VERSION"

# buf.gen.yaml names the plugins as local binaries: resolve them from .bin.
export PATH="$BIN:$PATH"

cd "$PROTO_DIR"
buf format --diff --exit-code
buf lint
rm -rf gen/go
rm -f openapi/*.swagger.json
buf generate
echo "proto.sh: generated $PROTO_DIR/gen/go and $PROTO_DIR/openapi" >&2
