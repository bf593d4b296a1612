package signature_test

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/hookline/hookline/pkg/signature"
)

// A receiver verifies each request against the raw body before trusting it.
// During a secret rotation, pass both the old and the new secret.
func ExampleVerifier_Verify() {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	verifier, err := signature.NewVerifier(secret)
	if err != nil {
		log.Fatal(err)
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read the exact bytes that were signed; never re-encode the JSON.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if err := verifier.Verify(r.Header, body); err != nil {
			if errors.Is(err, signature.ErrTimestampTooOld) {
				log.Print("possible replay")
			}
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		// Deduplicate on r.Header.Get(signature.HeaderID), then process.
		w.WriteHeader(http.StatusNoContent)
	})

	// What Hookline sends.
	signer, err := signature.NewSigner(secret)
	if err != nil {
		log.Fatal(err)
	}
	body := `{"type":"invoice.paid","data":{"id":"inv_1"}}`
	now := time.Now()
	send := func(delivered string) int {
		req := httptest.NewRequest(http.MethodPost, "/webhooks", strings.NewReader(delivered))
		req.Header.Set(signature.HeaderID, "dlv_01J0EXAMPLE")
		req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(signature.HeaderSignature, signer.Sign("dlv_01J0EXAMPLE", now, []byte(body)))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec.Code
	}
	fmt.Println(send(body))                                       // authentic
	fmt.Println(send(strings.Replace(body, "inv_1", "inv_2", 1))) // tampered in transit
	// Output:
	// 204
	// 401
}

func ExampleSigner_Sign() {
	signer, err := signature.NewSigner("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(signer.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`)))
	// Output: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
}
