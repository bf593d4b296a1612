// Package openapi embeds the OpenAPI (Swagger 2.0) document of the Hookline
// JSON/HTTP API, generated from the hookline.v1 protos by protoc-gen-openapiv2
// (see scripts/proto.sh). Servers can serve Spec as-is, for example at
// /openapi.json.
package openapi

import _ "embed"

// Spec is the merged OpenAPI document for the hookline.v1 IngestService and
// AdminService, as JSON. It must not be modified.
//
//go:embed hookline.swagger.json
var Spec []byte
