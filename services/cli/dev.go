package cli

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hookline/hookline/pkg/config"
	"github.com/hookline/hookline/pkg/telemetry"
	"github.com/hookline/hookline/services/devserver"
	"github.com/hookline/hookline/services/internal/broker"
)

// newDevCommand returns `hookline dev`: the whole pipeline in one process
// on an embedded NATS JetStream server and a SQLite file.
func newDevCommand() *cobra.Command {
	cfg := devserver.DefaultConfig()
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run all of Hookline in one process on embedded NATS and SQLite",
		Long: `dev runs ingest, fanout, delivery and the retry scheduler in one process, on an
embedded NATS JetStream server and a SQLite database kept in --data-dir, so a
restart resumes where it stopped. With --transport kafka it uses the Kafka
brokers of --kafka-brokers instead of the embedded NATS server. Loopback
receivers are allowed, so webhooks can go to 'hookline listen' on this machine.
Every flag can also be set with the HOOKLINE_* environment variable shown
beside it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := config.ApplyEnv(cmd.Flags(), nil); err != nil {
				return err
			}
			logger, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return err
			}
			srv, err := devserver.New(cmd.Context(), cfg, logger)
			if err != nil {
				return err
			}
			printDevBanner(cmd.OutOrStdout(), srv, cfg)
			return srv.Run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	cfg.RegisterFlags(fs)
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	config.AnnotateUsage(fs)
	return cmd
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts))), nil
	case "json":
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("--log-format %q: must be text or json", format)
}

// selfName is how the user invoked this binary, for copy-pasteable hints.
func selfName() string {
	name := os.Args[0]
	if strings.Contains(name, string(filepath.Separator)) && !strings.Contains(name, "go-build") {
		return name
	}
	return "hookline"
}

func printDevBanner(w io.Writer, srv *devserver.Server, cfg devserver.Config) {
	self := selfName()
	brokerName, brokerLine := "embedded NATS JetStream", "  NATS       embedded, in process only (no port)"
	if cfg.Broker.Transport == broker.Kafka {
		brokerName, brokerLine = "Kafka", "  Kafka      "+strings.Join(cfg.Broker.Kafka.Brokers, ",")
	}
	fmt.Fprintf(w, `
Hookline is running: ingest, fanout, delivery and scheduler on %[6]s and SQLite.

  gRPC API   %[1]s
  HTTP API   http://%[2]s   (OpenAPI document: /openapi.json)
%[7]s
  data       %[3]s   (kept across restarts)
%[5]s
Send a first event — in a second terminal start a receiver:

  %[4]s listen

and in a third, subscribe it and publish:

  %[4]s subscriptions create --tenant acme --url http://127.0.0.1:9000/ --event-type 'order.*'
  %[4]s publish --tenant acme --type order.created --data '{"order_id": 42}'
  %[4]s attempts list --tenant acme

Calls without an API key act as an operator here (loopback only). Give a team its own key:

  %[4]s keys create --tenant acme --scope publish,read

Stop with Ctrl-C.

`, srv.GRPCAddr(), srv.HTTPAddr(), cfg.DataDir, self, profilesLine(srv), brokerName, brokerLine)
}

// profilesLine is the banner's line for the runtime profiles, if served.
func profilesLine(srv *devserver.Server) string {
	if srv.PprofAddr() == "" {
		return ""
	}
	return "  profiles   http://" + srv.PprofAddr() + "/debug/pprof/\n"
}
