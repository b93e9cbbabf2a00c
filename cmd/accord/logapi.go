package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	"github.com/accordmesh/accord/workers"
)

// logOptions selects the Rekor v1 backend when url is set.
func logOptions(o workers.LocalOptions, rekorURL string) workers.LocalOptions {
	if rekorURL != "" {
		o.LogKind, o.LogURL = tlog.KindRekor, rekorURL
	}
	return o
}

// serveRekorAPI serves l's Rekor v1 REST subset (what rekor-cli needs) on
// addr until the returned stop is called.
func serveRekorAPI(addr string, l tlog.Log) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("rekor api: %w", err)
	}
	srv := &http.Server{Handler: rekorapi.NewHandler(l), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			slog.Error("rekor api", "err", err)
		}
	}()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}, nil
}
