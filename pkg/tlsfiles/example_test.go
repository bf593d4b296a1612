package tlsfiles_test

import (
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"

	"github.com/hookline/hookline/pkg/tlsfiles"
)

// A listener serves TLS from files that a certificate manager rotates in
// place; mutual TLS is on because a client CA bundle is configured. The
// same config suits gRPC: grpc.Creds(credentials.NewTLS(r.TLSConfig())).
func ExampleReloader() {
	cfg := tlsfiles.ServerConfig{
		CertFile:     "/etc/hookline/tls/tls.crt",
		KeyFile:      "/etc/hookline/tls/tls.key",
		ClientCAFile: "/etc/hookline/tls/clients.pem",
	}
	// At startup: report every problem, naming the flags that set them.
	if err := cfg.Validate("ingest-tls-"); err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	if cfg.Enabled() {
		r, err := tlsfiles.NewReloader(cfg, slog.Default())
		if err != nil {
			log.Fatal(err)
		}
		srv := &http.Server{Handler: http.NotFoundHandler(), TLSConfig: r.TLSConfig()}
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}
}

// The hookline CLI turns its flags into a client config.
func ExampleClientConfig() {
	c := tlsfiles.ClientConfig{CAFile: "ca.pem", CertFile: "me.crt", KeyFile: "me.key"}
	if err := c.Validate(""); err != nil { // errors name --ca-file, --cert-file, --key-file
		log.Fatal(err)
	}
	tlsConfig, err := c.TLSConfig()
	if err != nil {
		log.Fatal(err)
	}
	_ = tlsConfig // grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig))
}
