package ingest

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
)

// fuzzRoutes are the JSON API's routes, with ids of objects that exist in
// the fuzz target's store where a route names one.
func fuzzRoutes(sub, dlv, evt, key string) [][2]string {
	return [][2]string{
		{"POST", "/v1/events:publish"},
		{"POST", "/v1/events:publishBatch"},
		{"GET", "/v1/events/" + evt},
		{"POST", "/v1/subscriptions"},
		{"GET", "/v1/subscriptions/" + sub},
		{"GET", "/v1/subscriptions"},
		{"PATCH", "/v1/subscriptions/" + sub},
		{"DELETE", "/v1/subscriptions/sub_01m8y214kbc9xr1f580e977c34"},
		{"POST", "/v1/subscriptions/" + sub + ":rotateSecret"},
		{"POST", "/v1/subscriptions/" + sub + ":enable"},
		{"POST", "/v1/subscriptions/" + sub + ":disable"},
		{"POST", "/v1/subscriptions/" + sub + ":sendTestEvent"},
		{"GET", "/v1/subscriptions/" + sub + "/secret"},
		{"GET", "/v1/deliveries"},
		{"GET", "/v1/deliveries/" + dlv},
		{"POST", "/v1/deliveries/" + dlv + ":redeliver"},
		{"GET", "/v1/attempts"},
		{"POST", "/v1/keys"},
		{"GET", "/v1/keys"},
		{"POST", "/v1/keys/" + key + ":revoke"},
	}
}

// FuzzHTTPRoutes sends arbitrary bodies and query strings to every route
// of the JSON API, authenticated: the server never panics and never
// answers a bad request with a server error (500, 501, or an unset
// status); only Unavailable (503), which a failing store may cause, is a
// 5xx it may give.
func FuzzHTTPRoutes(f *testing.F) {
	ts := startTestService(f, nil)
	admin := hooklinev1.NewAdminServiceClient(ts.conn)
	sub, err := admin.CreateSubscription(ts.ctx(f, ts.operator), &hooklinev1.CreateSubscriptionRequest{Subscription: &hooklinev1.Subscription{
		Tenant: "acme", Url: "http://127.0.0.1:9/", EventTypes: []string{"*"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	sent, err := admin.SendTestEvent(ts.ctx(f, ts.operator), &hooklinev1.SendTestEventRequest{Id: sub.GetId()})
	if err != nil {
		f.Fatal(err)
	}
	k, err := admin.CreateAPIKey(ts.ctx(f, ts.operator), &hooklinev1.CreateAPIKeyRequest{Tenant: "acme", Scopes: []string{"read"}})
	if err != nil {
		f.Fatal(err)
	}
	routes := fuzzRoutes(sub.GetId(), sent.GetDeliveryId(), sent.GetEventId(), k.GetApiKey().GetId())
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	h, err := ts.svc.httpHandler(ctx)
	if err != nil {
		f.Fatal(err)
	}
	for i := range routes {
		f.Add(uint8(i), "tenant=acme", []byte(`{"tenant":"acme","eventType":"a.b","payload":"e30="}`))
	}
	f.Add(uint8(1), "", []byte(`{"events":[{"tenant":"acme","eventType":"a.b","payload":"e30=","labels":{"k":"v"}}]}`))
	f.Add(uint8(6), "update_mask=url,eventTypes", []byte(`{"tenant":"acme","url":"http://127.0.0.1:9/x","eventTypes":["a.*"]}`))
	f.Add(uint8(13), "status=DELIVERY_STATUS_DEAD&createdAfter=2026-01-01T00:00:00Z&pageSize=-1", []byte(nil))
	f.Add(uint8(17), "", []byte(`{"tenant":"acme","scopes":["operator"],"expireTime":"1999-01-01T00:00:00Z"}`))
	f.Add(uint8(3), "", []byte("{\"tenant\":\"ac\xffme\",\"url\":\"http://[::1]:0/\",\"headers\":{\"X\":\"\\u0001\"},\"timeout\":\"-1s\"}"))
	f.Fuzz(func(t *testing.T, route uint8, query string, body []byte) {
		r := routes[int(route)%len(routes)]
		target := r[1]
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(r[0], "http://ingest"+target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.Header.Set("Authorization", "Bearer "+ts.operator)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s with %q: %d %s", r[0], target, body, rec.Code, rec.Body.String())
		}
	})
}
