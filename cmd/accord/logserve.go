package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	"github.com/accordmesh/accord/provenance/witness"
)

func init() {
	root.AddCommand(newLogCmd())
	cli.RegisterNotFound(rekorapi.ErrNoWriter)
}

// writersPath is the writers file of the log under home.
func writersPath(home string) string { return filepath.Join(home, "log-writers.json") }

func newLogCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "log",
		Short: "Serve the embedded transparency log to every party, writers authenticated",
		Example: `  accord log token add worker-b --key worker-b.pub > worker-b.token
  accord log serve --addr 127.0.0.1:3000 --witness http://w1.example.org:7380`,
	}
	c.AddCommand(newLogServeCmd(), newLogTokenCmd())
	return c
}

func newLogServeCmd() *cobra.Command {
	var addr, tlsCert, tlsKey string
	var witnesses []string
	var every time.Duration
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the embedded log as Rekor v1's REST API; uploads need a writer token",
		Long: "serve opens the embedded log under --home (HOME/tlog) and serves the Rekor v1 REST subset\n" +
			"(docs/witness.md, \"The log as a service\"): reads are open to anyone; POST /api/v1/log/entries\n" +
			"needs \"Authorization: Bearer <token>\" of a writer in HOME/log-writers.json (accord log token add)\n" +
			"and, when the writer has keys, an envelope signed by one of them (401 without a token, 403 for\n" +
			"an unknown token or another key). Serve it over TLS (--tls-cert, --tls-key) when writers are on\n" +
			"other machines: the token is a bearer credential. Workers log through it with --rekor-url URL\n" +
			"--rekor-token-file FILE (and --insecure for a plain http:// URL on this machine).\n\n" +
			"With --witness URL (repeatable) it takes the log's checkpoint to each witness every\n" +
			"--witness-every and serves the latest cosigned checkpoint (the log's signed note followed by\n" +
			"the cosignature lines) at GET /api/v1/log/checkpoint/cosigned. Bodies are limited to 4 MiB;\n" +
			"connections have header, read, write and idle timeouts.",
		Example: `  accord log serve --addr 127.0.0.1:3000
  accord log serve --home /var/lib/accord-log --addr 0.0.0.0:3443 --tls-cert log.crt --tls-key log.key \
    --witness http://w1.example.org:7380 --witness http://w2.example.org:7380 --witness-every 30s --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if every < time.Second {
				return cli.Usagef("--witness-every must be at least 1s")
			}
			if (tlsCert == "") != (tlsKey == "") {
				return cli.Usagef("--tls-cert and --tls-key go together")
			}
			home, err := cli.Home()
			if err != nil {
				return err
			}
			ctx, stop := signalContext()
			defer stop()
			return serveLog(ctx, cmd, home, addr, tlsCert, tlsKey, witnesses, every)
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:3000", "listen address")
	c.Flags().StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this certificate chain (PEM)")
	c.Flags().StringVar(&tlsKey, "tls-key", "", "the certificate's private key (PEM)")
	c.Flags().StringArrayVar(&witnesses, "witness", nil, "keep this witness (tlog-witness URL) up to date and serve its cosignatures (repeatable)")
	c.Flags().DurationVar(&every, "witness-every", 10*time.Second, "how often to take the log's checkpoint to the witnesses")
	return c
}

func serveLog(ctx context.Context, cmd *cobra.Command, home, addr, tlsCert, tlsKey string, witnesses []string, every time.Duration) error {
	l, err := embedded.Open(ctx, filepath.Join(home, "tlog"), embedded.Options{})
	if err != nil {
		return fmt.Errorf("log serve: %w", err)
	}
	defer l.Close(context.Background())
	writers, err := rekorapi.OpenWriters(writersPath(home))
	if err != nil {
		return err
	}
	opts := []rekorapi.Option{rekorapi.WithWriters(writers)}
	var wg sync.WaitGroup
	defer wg.Wait()
	if len(witnesses) > 0 {
		k, err := witness.NewKeeper(l, witnesses, slog.Default())
		if err != nil {
			return cli.Usage(err)
		}
		opts = append(opts, rekorapi.WithCosigned(k.LatestNote))
		wg.Add(1)
		go func() { defer wg.Done(); k.Run(ctx, every) }()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("log serve: %w", err)
	}
	srv := rekorapi.Server(addr, rekorapi.NewHandler(l, opts...))
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	scheme := "http"
	if tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
		if err != nil {
			ln.Close()
			return cli.InputErr(fmt.Errorf("log serve: TLS: %w", err))
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		ln, scheme = tls.NewListener(ln, srv.TLSConfig), "https"
	}
	if err := printServing(ctx, cmd, l, scheme+"://"+ln.Addr().String(), ln.Addr().String(), home, witnesses); err != nil {
		srv.Close()
		return err
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("log serve: %w", err)
	}
	return nil
}

func printServing(ctx context.Context, cmd *cobra.Command, l *embedded.Log, url, listen, home string, witnesses []string) error {
	info, err := l.Info(ctx)
	if err != nil {
		return fmt.Errorf("log serve: %w", err)
	}
	origin, _, _ := strings.Cut(info.SignedCheckpoint, "\n")
	pub, _ := l.PublicKey(ctx)
	if witnesses == nil {
		witnesses = []string{}
	}
	res := map[string]any{
		"listen": listen, "url": url, "status": "serving", "origin": origin,
		"tree_size": info.TreeSize, "public_key": string(pub), "writers_file": writersPath(home), "witnesses": witnesses,
	}
	slog.Info("log serving", "addr", listen, "origin", origin, "witnesses", len(witnesses))
	return cli.Print(cmd, res, func(w cli.Writer) {
		w.Printf("log %q (size %d) on %s, writers in %s, %d witnesses\n", origin, info.TreeSize, url, writersPath(home), len(witnesses))
	})
}

func newLogTokenCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "token",
		Short: "Manage the writers allowed to upload to `accord log serve`",
		Example: `  accord log token add worker-b --key worker-b.pub > worker-b.token
  accord log token list
  accord log token remove worker-b`,
	}
	c.AddCommand(newLogTokenAddCmd(), newLogTokenListCmd(), newLogTokenRemoveCmd())
	return c
}

func newLogTokenAddCmd() *cobra.Command {
	var keyFiles []string
	c := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a writer and print its new token (shown once; only its hash is kept)",
		Long: "add creates writer NAME in HOME/log-writers.json and prints a new bearer token on stdout, once:\n" +
			"the file keeps only its SHA-256. With --key PEM (repeatable) the writer may log only envelopes\n" +
			"signed by those keys. A running `accord log serve` picks the change up on its next upload. To\n" +
			"rotate a token, remove the writer and add it again.",
		Example: `  accord log token add worker-b > /etc/accord/log.token
  accord log token add provider-a --key provider-a.pub --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var keys [][]byte
			for _, f := range keyFiles {
				b, err := bounded.ReadFile(f, 64<<10)
				if err != nil {
					return cli.InputErr(fmt.Errorf("--key: %w", err))
				}
				keys = append(keys, b)
			}
			home, err := cli.Home()
			if err != nil {
				return err
			}
			token, err := rekorapi.AddWriter(writersPath(home), args[0], keys)
			if errors.Is(err, rekorapi.ErrWriterName) || errors.Is(err, rekorapi.ErrWriterExists) {
				return cli.Usage(err)
			}
			if err != nil {
				return cli.InputErr(err)
			}
			res := map[string]any{"writer": args[0], "token": token, "keys": len(keys), "writers_file": writersPath(home)}
			return cli.Print(cmd, res, func(w cli.Writer) { w.Printf("%s\n", token) })
		},
	}
	c.Flags().StringArrayVar(&keyFiles, "key", nil, "PEM public key the writer may log envelopes for (repeatable; default any)")
	return c
}

func newLogTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List the log's writers (names, key allow-lists; never tokens)",
		Example: `  accord log token list --json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := cli.HomePath()
			if err != nil {
				return err
			}
			ws, err := rekorapi.ListWriters(writersPath(home))
			if err != nil {
				return err
			}
			type row struct {
				Name    string    `json:"name"`
				Keys    []string  `json:"keys"`
				Created time.Time `json:"created"`
			}
			rows := make([]row, len(ws))
			for i, w := range ws {
				rows[i] = row{w.Name, append([]string{}, w.Keys...), w.Created}
			}
			return cli.Print(cmd, map[string]any{"writers": rows}, func(w cli.Writer) {
				for _, r := range rows {
					keys := "any signer"
					if len(r.Keys) > 0 {
						keys = strings.Join(r.Keys, ", ")
					}
					w.Printf("%s\t%s\t%s\n", r.Name, r.Created.Format(time.RFC3339), keys)
				}
			})
		},
	}
}

func newLogTokenRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove NAME",
		Short:   "Remove a writer: its token stops working at once",
		Example: `  accord log token remove worker-b`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := cli.HomePath()
			if err != nil {
				return err
			}
			if err := rekorapi.RemoveWriter(writersPath(home), args[0]); err != nil {
				return err
			}
			return cli.Print(cmd, map[string]any{"writer": args[0], "removed": true}, func(w cli.Writer) {
				w.Printf("removed writer %s\n", args[0])
			})
		},
	}
}
