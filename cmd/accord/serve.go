package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/workers/apijobs"
)

func init() { root.AddCommand(serveCmd()) }

func serveCmd() *cobra.Command {
	var tf temporalFlags
	var lf logFlags
	var listen string
	var o serveOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve Accord's HTTP API with per-tenant tokens",
		Example: `  accord serve
  accord serve --listen 0.0.0.0:8480 --temporal-address temporal.example.com:7233
  accord serve --rate-limit 5 --rate-burst 10 --max-upload 1048576 --upload-retention 72h
  accord serve --max-data 10737418240   # tenants may POST /v1/data files of up to 10 GiB`,
		Long: "serve exposes submit, status, list, cancel, approve, receipts and audit search over HTTP\n" +
			"(routes under /v1, bearer tokens from `accord token create`). A tenant token sees and acts on\n" +
			"its own tenant's jobs only; auditor tokens are read-only. Jobs run on the Temporal cluster\n" +
			"named by --temporal-address (`accord dev` serves one locally).\n\n" +
			"Each token may make --rate-limit requests a second (bursts of --rate-burst); more are answered\n" +
			"429 with Retry-After. Request bodies are limited to --max-upload bytes (413); POST /v1/data\n" +
			"(a tenant's input file into the artifact store under --home, granted to the token's tenant)\n" +
			"to --max-data bytes, and must arrive at 256 KiB/s on average after a minute. Uploaded specs\n" +
			"must stand alone (no extends or imports) and are removed --upload-retention after their last\n" +
			"job finished, by a sweep every hour. Connections have read, write, idle and header timeouts.\n\n" +
			"Provider agents (`accord provider serve`) publish their profiles with PUT /v1/providers/NAME,\n" +
			"using a token from `accord token create --role provider --name NAME`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.check(); err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			home, err := cli.Home()
			if err != nil {
				return err
			}
			tc, err := tf.dial(ctx)
			if err != nil {
				return err
			}
			defer tc.Close()
			store, err := openTenants(ctx)
			if err != nil {
				return err
			}
			defer store.Close()
			cfg := tlog.Config{Kind: lf.kind, Home: home, URL: lf.rekorURL, ReadOnly: true, Insecure: lf.insecure}
			if lf.rekorURL != "" {
				cfg.Kind = tlog.KindRekor
			}
			prov, err := provenance.OpenLocal(ctx, home, cfg)
			if err != nil {
				return err
			}
			defer prov.Close(context.Background())
			jobs := &apijobs.Jobs{Client: tc, Home: home, Prov: prov}
			if o.retention > 0 {
				go sweepUploads(ctx, jobs, o.retention)
			}
			data := artifacts.Local{Dir: artifacts.DefaultDir(home)}
			h := apiserver.New(jobs, store, apiserver.WithRateLimit(o.rate, o.burst), apiserver.WithMaxUpload(o.maxUpload),
				apiserver.WithData(data, o.maxData), apiserver.WithProviders(agents.Open(home)),
				apiserver.WithBlobs(data, o.maxData))
			return serveAPI(ctx, cmd, listen, h)
		},
	}
	tf.add(c)
	lf.add(c)
	o.add(c)
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8480", "address to serve the API on")
	return c
}

// serveOptions are the API's public-endpoint limits.
type serveOptions struct {
	rate      float64
	burst     int
	maxUpload int64
	maxData   int64
	retention time.Duration
}

func (o *serveOptions) add(c *cobra.Command) {
	f := c.Flags()
	f.Float64Var(&o.rate, "rate-limit", apiserver.DefaultRate, "requests a second each token may make (0: no limit)")
	f.IntVar(&o.burst, "rate-burst", apiserver.DefaultBurst, "requests a token may make at once above --rate-limit")
	f.Int64Var(&o.maxUpload, "max-upload", apiserver.DefaultMaxUpload, "largest request body in bytes (a spec is at most 4 MiB)")
	f.Int64Var(&o.maxData, "max-data", apiserver.DefaultMaxData, "largest POST /v1/data body (a tenant's input file) in bytes")
	f.DurationVar(&o.retention, "upload-retention", apijobs.DefaultUploadRetention, "keep an uploaded spec this long after its last job finished (0: keep forever)")
}

func (o *serveOptions) check() error {
	switch {
	case o.rate < 0:
		return cli.Usagef("--rate-limit %g: want 0 (no limit) or more", o.rate)
	case o.rate > 0 && o.burst < 1:
		return cli.Usagef("--rate-burst %d: want 1 or more", o.burst)
	case o.maxUpload < 1<<10:
		return cli.Usagef("--max-upload %d: want at least 1024 bytes", o.maxUpload)
	case o.maxData < 1:
		return cli.Usagef("--max-data %d: want at least 1 byte", o.maxData)
	case o.retention < 0:
		return cli.Usagef("--upload-retention %s: want 0 (keep forever) or more", o.retention)
	}
	return nil
}

// sweepUploadsEvery is how often serve removes uploads no job needs.
const sweepUploadsEvery = time.Hour

// sweepUploads removes old uploads now and then every sweepUploadsEvery
// until ctx ends.
func sweepUploads(ctx context.Context, jobs *apijobs.Jobs, retention time.Duration) {
	t := time.NewTicker(sweepUploadsEvery)
	defer t.Stop()
	for {
		n, err := jobs.SweepUploads(ctx, retention)
		if err != nil {
			slog.Warn("sweep uploads", "err", err)
		}
		if n > 0 {
			slog.Info("removed uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func serveAPI(ctx context.Context, cmd *cobra.Command, listen string, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := apiserver.NewHTTPServer(h, apiserver.DefaultLimits)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	slog.Info("serving the API", "addr", ln.Addr().String())
	if err := cli.Print(cmd, map[string]string{"listen": ln.Addr().String(), "status": "serving"}, func(w cli.Writer) {
		w.Printf("accord API on http://%s\n", ln.Addr())
	}); err != nil {
		return err
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}
