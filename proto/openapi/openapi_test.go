package openapi

import (
	"encoding/json"
	"testing"
)

func TestSpecIsJSONWithPublishPath(t *testing.T) {
	var doc struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(Spec, &doc); err != nil {
		t.Fatalf("embedded spec is not valid JSON: %v", err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger version = %q, want %q", doc.Swagger, "2.0")
	}
	for _, path := range []string{
		"/v1/events:publish",
		"/v1/events:publishBatch",
		"/v1/subscriptions/{subscription.id}",
		"/v1/deliveries/{deliveryId}:redeliver",
	} {
		if _, ok := doc.Paths[path]; !ok {
			t.Errorf("spec has no path %q", path)
		}
	}
}
