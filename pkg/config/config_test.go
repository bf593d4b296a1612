package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantN   int
		wantD   time.Duration
		wantErr []string
	}{
		{name: "defaults", wantN: 1, wantD: time.Second},
		{name: "env sets", env: map[string]string{"HOOKLINE_SVC_N": "7", "HOOKLINE_SVC_POLL_INTERVAL": "5ms"}, wantN: 7, wantD: 5 * time.Millisecond},
		{name: "flag wins", args: []string{"--svc-n=3"}, env: map[string]string{"HOOKLINE_SVC_N": "7"}, wantN: 3, wantD: time.Second},
		{name: "bad values all reported", env: map[string]string{"HOOKLINE_SVC_N": "x", "HOOKLINE_SVC_POLL_INTERVAL": "soon"}, wantErr: []string{"HOOKLINE_SVC_N", "HOOKLINE_SVC_POLL_INTERVAL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
			n := fs.Int("svc-n", 1, "n")
			d := fs.Duration("svc-poll-interval", time.Second, "d")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			err := ApplyEnv(fs, func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("want error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not name %s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *n != tt.wantN || *d != tt.wantD {
				t.Errorf("got n=%d d=%v, want %d %v", *n, *d, tt.wantN, tt.wantD)
			}
		})
	}
}

func TestAnnotateUsage(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	fs.String("store-path", "", "where")
	AnnotateUsage(fs)
	AnnotateUsage(fs)
	if got := fs.Lookup("store-path").Usage; got != "where [$HOOKLINE_STORE_PATH]" {
		t.Errorf("usage = %q", got)
	}
}
