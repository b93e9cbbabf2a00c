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

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/workers/apijobs"
)

func init() { root.AddCommand(serveCmd()) }

func serveCmd() *cobra.Command {
	var tf temporalFlags
	var lf logFlags
	var listen string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve Accord's HTTP API with per-tenant tokens",
		Example: `  accord serve
  accord serve --listen 0.0.0.0:8480 --temporal-address temporal.example.com:7233`,
		Long: "serve exposes submit, status, list, cancel, approve, receipts and audit search over HTTP\n" +
			"(routes under /v1, bearer tokens from `accord token create`). A tenant token sees and acts on\n" +
			"its own tenant's jobs only; auditor tokens are read-only. Jobs run on the Temporal cluster\n" +
			"named by --temporal-address (`accord dev` serves one locally).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			cfg := tlog.Config{Kind: lf.kind, Home: home, URL: lf.rekorURL, ReadOnly: true}
			if lf.rekorURL != "" {
				cfg.Kind = tlog.KindRekor
			}
			prov, err := provenance.OpenLocal(ctx, home, cfg)
			if err != nil {
				return err
			}
			defer prov.Close(context.Background())
			return serveAPI(ctx, cmd, listen, apiserver.New(&apijobs.Jobs{Client: tc, Home: home, Prov: prov}, store))
		},
	}
	tf.add(c)
	lf.add(c)
	c.Flags().StringVar(&listen, "listen", "127.0.0.1:8480", "address to serve the API on")
	return c
}

func serveAPI(ctx context.Context, cmd *cobra.Command, listen string, h http.Handler) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
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
