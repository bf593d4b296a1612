package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hookline/hookline/pkg/tlsfiles"
	"github.com/hookline/hookline/pkg/tlsfiles/tlsfilestest"
	"github.com/hookline/hookline/services/cli"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/ingest"
	"github.com/hookline/hookline/services/internal/servicetable"
)

// hookline runs the CLI with args (env: HOOKLINE_* variables are not
// read from the test's environment, every setting is a flag) and returns
// its standard output.
func hookline(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	root := cli.NewRoot()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestCLIKeysConfineATeam issues a team's key with the CLI, as the README
// shows, and uses it: it publishes and reads its own tenant, is refused
// another tenant and what its scopes do not allow, and stops working once
// revoked.
func TestCLIKeysConfineATeam(t *testing.T) {
	t.Parallel()
	p := startPipeline(t, t.TempDir())
	server := "--server=" + p.srv.GRPCAddr()
	out, err := hookline(t, server, "keys", "create", "--tenant", "acme", "--scope", "publish,read", "--name", "team", "-o", "json")
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	var created struct {
		APIKey struct{ ID string } `json:"apiKey"`
		Key    string              `json:"key"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Key == "" {
		t.Fatalf("keys create output %q: %v", out, err)
	}
	key := "--api-key=" + created.Key
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"publish to its tenant", []string{"publish", "--type", "order.created", "--data", `{"n":1}`}, ""},
		{"list its deliveries", []string{"deliveries", "list"}, ""},
		{"list another tenant", []string{"subscriptions", "list", "--tenant", "other"}, "PermissionDenied"},
		{"create without manage", []string{"subscriptions", "create", "--url", "http://127.0.0.1:9/", "--event-type", "*"}, "PermissionDenied"},
		{"its keys by prefix", []string{"keys", "list"}, ""},
	}
	for _, tt := range tests {
		out, err := hookline(t, append([]string{server, key}, tt.args...)...)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: %v, want %s", tt.name, err, tt.wantErr)
		case tt.name == "its keys by prefix" && (!strings.Contains(out, created.APIKey.ID) || strings.Contains(out, created.Key)):
			t.Errorf("keys list shows %q: want the prefix %s and never the key", out, created.APIKey.ID)
		}
	}
	if _, err := hookline(t, server, "keys", "revoke", created.APIKey.ID, "--tenant", "acme"); err != nil {
		t.Fatalf("keys revoke: %v", err)
	}
	if _, err := hookline(t, server, key, "deliveries", "list"); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("a revoked key: %v, want Unauthenticated", err)
	}
}

// TestCLIOverMutualTLS serves the API with TLS and client certificates and
// uses the CLI's existing TLS flags against it: with the CA and a client
// certificate it works; without the certificate it is refused.
func TestCLIOverMutualTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	serverCA, clientCA := tlsfilestest.NewCA(t), tlsfilestest.NewCA(t)
	cert, key := serverCA.IssueServer(t, "ingest")
	certFile, keyFile := serverCA.WriteFiles(t, dir, "server", cert, key)
	ccert, ckey := clientCA.IssueClient(t, "operator")
	clientCert, clientKey := clientCA.WriteFiles(t, dir, "client", ccert, ckey)
	caFile, clientCAFile := serverCA.WriteCA(t, dir, "server-ca"), clientCA.WriteCA(t, dir, "client-ca")

	p := startPipeline(t, dir, func(c *devserver.Config) {
		in := servicetable.ConfigOf[ingest.Config](c.Services)
		in.TLS = tlsfiles.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: clientCAFile}
	})
	server := "--server=" + p.srv.GRPCAddr()
	if _, err := hookline(t, server, "--ca-file", caFile, "--cert-file", clientCert, "--key-file", clientKey,
		"subscriptions", "list", "--tenant", "acme"); err != nil {
		t.Errorf("CLI with the CA and a client certificate: %v", err)
	}
	if _, err := hookline(t, server, "--ca-file", caFile, "subscriptions", "list", "--tenant", "acme"); err == nil {
		t.Error("CLI without a client certificate was served")
	}
	if _, err := hookline(t, server, "subscriptions", "list", "--tenant", "acme"); err == nil {
		t.Error("plaintext CLI was served by a TLS listener")
	}
}
