package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	"github.com/accordmesh/accord/workers/local"
)

// localFlags select the components a local worker opens: dev, run and
// worker share them.
type localFlags struct {
	containerd, ledgerDSN, rekorURL string
	rekorTokenFile                  string
	overcommit                      float64
	insecure                        bool
	hostInputs                      []string
	registry                        registryFlags
}

func (f *localFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.containerd, "containerd", "", "existing containerd socket (default: a private daemon under the home directory)")
	fl.StringVar(&f.ledgerDSN, "ledger-dsn", "", "ledger database (default SQLite under the home directory; postgres://... for PostgreSQL)")
	fl.StringVar(&f.rekorURL, "rekor-url", "", "log attestations to this Rekor v1 server instead of the embedded log (its key must be trusted: accord keys trust FILE --scope log)")
	fl.StringVar(&f.rekorTokenFile, "rekor-token-file", "", "file holding the writer token for a --rekor-url log that authenticates uploads (accord log token add); default $ACCORD_REKOR_TOKEN")
	fl.BoolVar(&f.insecure, "insecure", false, "allow a plain http:// --rekor-url (no TLS: only a log on this machine or a test)")
	fl.Float64Var(&f.overcommit, "overcommit", 1, "offer this many times the host's CPUs and memory in the local pool (tasks keep their own limits)")
	def := "none: specs use artifacts (accord data push) and registry images"
	if cmd.Name() == "run" {
		def = "the spec's directory"
	}
	fl.StringArrayVar(&f.hostInputs, "host-inputs", nil, "directory under which specs may mount host path inputs and import oci-archive: images (repeatable; default "+def+")")
	f.registry.add(cmd)
}

// options are the worker's local options; the Rekor v1 backend replaces the
// embedded log when --rekor-url is set.
func (f *localFlags) options(home string) local.Options {
	o := local.Options{Home: home, ContainerdAddress: f.containerd, LedgerDSN: f.ledgerDSN, Overcommit: f.overcommit, HostInputs: f.hostInputs}
	if f.rekorURL != "" {
		o.LogKind, o.LogURL, o.LogInsecure = tlog.KindRekor, f.rekorURL, f.insecure
		o.LogTokenFile, o.LogToken = f.rekorTokenFile, os.Getenv("ACCORD_REKOR_TOKEN")
	}
	f.registry.apply(&o)
	return o
}

// stackOptions are the single-user stack's options (`accord run`, `accord
// dev`): the only place where unknown tenants are created on first use.
func (f *localFlags) stackOptions() local.Options {
	o := f.options("")
	o.AutoCreateTenants = true
	return o
}

// serveRekorAPI serves l's Rekor v1 REST subset (what rekor-cli needs) on
// addr until the returned stop is called. It is read-only: uploads answer
// 405, since only the worker, which holds the log directly, writes to it.
func serveRekorAPI(addr string, l tlog.Log) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("rekor api: %w", err)
	}
	srv := &http.Server{Handler: rekorapi.NewHandler(l, rekorapi.WithReadOnly()), ReadHeaderTimeout: 10 * time.Second}
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
