package ingest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
	hooklinev1 "github.com/hookline/hookline/proto/gen/go/hookline/v1"
	"github.com/hookline/hookline/services/internal/deps"
	"github.com/hookline/hookline/services/internal/servicetest"
)

// TestTLSAndMutualTLS serves both listeners with a server certificate and
// a client CA, and connects over gRPC and HTTP with the right CA and a
// client certificate (accepted), without a client certificate, with one
// from another CA, and trusting another CA (all refused).
func TestTLSAndMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serverCA, clientCA, otherCA := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
	cert, key := serverCA.IssueServer(t, "ingest")
	certFile, keyFile := serverCA.WriteFiles(t, dir, "server", cert, key)
	goodCert, goodKey := clientCA.IssueClient(t, "publisher")
	goodCertFile, goodKeyFile := clientCA.WriteFiles(t, dir, "good-client", goodCert, goodKey)
	badCert, badKey := otherCA.IssueClient(t, "stranger")
	badCertFile, badKeyFile := otherCA.WriteFiles(t, dir, "bad-client", badCert, badKey)
	serverCAFile, otherCAFile := serverCA.WriteCA(t, dir, "server-ca"), otherCA.WriteCA(t, dir, "other-ca")

	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AuthTokens = []string{token}
	cfg.TLS = tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCA.WriteCA(t, dir, "client-ca")}
	s, err := New(cfg, deps.Deps[Store]{Store: servicetest.Store(t), Transport: servicetest.Transport(t), Logger: servicetest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(runCtx) }()
	t.Cleanup(func() { cancel(); <-done })

	tests := []struct {
		name   string
		client tlsfiles.ClientConfig
		ok     bool
	}{
		{"right CA and client certificate", tlsfiles.ClientConfig{CAFile: serverCAFile, CertFile: goodCertFile, KeyFile: goodKeyFile}, true},
		{"no client certificate", tlsfiles.ClientConfig{CAFile: serverCAFile}, false},
		{"client certificate of an untrusted CA", tlsfiles.ClientConfig{CAFile: serverCAFile, CertFile: badCertFile, KeyFile: badKeyFile}, false},
		{"server not trusted by the client", tlsfiles.ClientConfig{CAFile: otherCAFile, CertFile: goodCertFile, KeyFile: goodKeyFile}, false},
	}
	for _, tt := range tests {
		tlsCfg, err := tt.client.TLSConfig()
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tt.name+"/grpc", func(t *testing.T) {
			t.Parallel()
			conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg.Clone())))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), 10*time.Second)
			defer cancel()
			_, err = hooklinev1.NewAdminServiceClient(conn).ListSubscriptions(ctx, &hooklinev1.ListSubscriptionsRequest{Tenant: "acme"})
			if (err == nil) != tt.ok {
				t.Fatalf("ListSubscriptions over TLS: %v, want success %v", err, tt.ok)
			}
		})
		t.Run(tt.name+"/http", func(t *testing.T) {
			t.Parallel()
			c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg.Clone()}}
			defer c.CloseIdleConnections()
			req, _ := http.NewRequest("GET", "https://"+s.HTTPAddr()+"/v1/subscriptions?tenant=acme", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := c.Do(req)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					err = &httpStatusError{resp.StatusCode, string(body)}
				}
			}
			if (err == nil) != tt.ok {
				t.Fatalf("GET /v1/subscriptions over TLS: %v, want success %v", err, tt.ok)
			}
		})
	}

	// Plaintext HTTP is not served.
	t.Run("plaintext", func(t *testing.T) {
		t.Parallel()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + s.HTTPAddr() + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("plaintext HTTP served on a TLS listener")
			}
		}
	})
}

type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string {
	return http.StatusText(e.code) + ": " + strings.TrimSpace(e.body)
}
