package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/atomicfile"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/witness"
)

func init() {
	root.AddCommand(newWitnessCmd())
}

func newWitnessCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "witness",
		Short: "A C2SP transparency-log witness: cosign checkpoints only when the log stayed append-only",
		Example: `  accord witness key --key witness.key --name witness.example.org/w1
  accord witness serve --addr 127.0.0.1:7380 --key witness.key --state witness-state \
    --log "accord.local - 4711=log.pub"`,
	}
	c.AddCommand(newWitnessKeyCmd(), newWitnessServeCmd())
	return c
}

func newWitnessKeyCmd() *cobra.Command {
	var keyPath, name string
	c := &cobra.Command{
		Use:   "key",
		Short: "Create (when missing) the witness's Ed25519 key and print its verifier key",
		Long: "key prints the witness's verifier key as a C2SP vkey line (name+keyID+base64(0x04 || key)):\n" +
			"auditors save it to a file and pass it to `accord audit verify --witness-key FILE`. The\n" +
			"private key file (a note signer key, mode 0600) is created when missing, with --name.",
		Example: `  accord witness key --key witness.key --name witness.example.org/w1 > witness.vkey
  accord witness key --key witness.key --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyPath == "" {
				return cli.Usagef("--key FILE is required")
			}
			s, created, err := loadOrCreateWitnessKey(keyPath, name)
			if err != nil {
				return err
			}
			res := map[string]any{"key_file": keyPath, "name": s.Name(), "verifier_key": s.VerifierKey(), "created": created}
			return cli.Print(cmd, res, func(w cli.Writer) { w.Printf("%s\n", s.VerifierKey()) })
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "witness private key file")
	c.Flags().StringVar(&name, "name", "", "the witness's key name when creating the key (a schema-less URL, e.g. witness.example.org/w1)")
	return c
}

func loadOrCreateWitnessKey(path, name string) (*witness.Signer, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := witness.NewSigner(string(b))
		if err != nil {
			return nil, false, cli.InputErr(fmt.Errorf("witness key %s: %w", path, err))
		}
		if name != "" && name != s.Name() {
			return nil, false, cli.Usagef("witness key %s is named %q, not %q", path, s.Name(), name)
		}
		return s, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("witness key: %w", err)
	}
	if name == "" {
		return nil, false, cli.Usagef("%s does not exist: --name NAME is required to create a witness key", path)
	}
	skey, err := witness.GenerateKey(rand.Reader, name)
	if err != nil {
		return nil, false, cli.Usage(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("witness key: %w", err)
	}
	if _, err := atomicfile.WriteNew(path, []byte(skey+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("witness key: %w", err)
	}
	return loadOrCreateWitnessKey(path, name) // the first complete write stands
}

func newWitnessServeCmd() *cobra.Command {
	var addr, keyPath, stateDir string
	var logSpecs []string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve tlog-witness POST /add-checkpoint for the configured logs",
		Long: "serve cosigns a checkpoint of a configured log (--log ORIGIN=KEYFILE: the checkpoint's origin\n" +
			"line and the log's public key, PEM as `accord keys list` / Rekor's /api/v1/log/publicKey give\n" +
			"it, or a note verifier key) when the log's signature verifies and a consistency proof from the\n" +
			"size it cosigned last holds. It keeps that size and root per log under --state, written before it\n" +
			"answers, so a restarted witness refuses rollbacks (409) and forks (409 at the same size, 422 for\n" +
			"a proof that fails). Bodies are limited to 64 KiB; connections have read, write and idle timeouts.",
		Example: `  accord witness serve --addr 127.0.0.1:7380 --key witness.key --state /var/lib/accord-witness \
    --log "accord.local - 4711=/etc/accord/log.pub"
  accord witness serve --addr 0.0.0.0:7380 --key witness.key --state state \
    --log "rekor.example.org - 1193050959916656506=rekor.pub" --log "accord.local - 4711=log.pub" --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyPath == "" || stateDir == "" || len(logSpecs) == 0 {
				return cli.Usagef("--key FILE, --state DIR and at least one --log ORIGIN=KEYFILE are required")
			}
			logs, err := parseWitnessLogs(logSpecs)
			if err != nil {
				return err
			}
			s, _, err := loadOrCreateWitnessKey(keyPath, "")
			if err != nil {
				return err
			}
			w, err := witness.New(s, stateDir, logs...)
			if err != nil {
				return err
			}
			defer w.Close()
			ctx, stop := signalContext()
			defer stop()
			return serveWitness(ctx, cmd, w, addr, logs)
		},
	}
	c.Flags().StringVar(&addr, "addr", "127.0.0.1:7380", "listen address")
	c.Flags().StringVar(&keyPath, "key", "", "witness private key file (accord witness key creates it)")
	c.Flags().StringVar(&stateDir, "state", "", "directory for the latest cosigned checkpoint of each log")
	c.Flags().StringArrayVar(&logSpecs, "log", nil, "ORIGIN=KEYFILE: a log to witness (repeatable)")
	return c
}

func parseWitnessLogs(specs []string) ([]witness.Log, error) {
	var out []witness.Log
	for _, spec := range specs {
		origin, file, ok := strings.Cut(spec, "=")
		if !ok || origin == "" || file == "" {
			return nil, cli.Usagef("--log %q: want ORIGIN=KEYFILE", spec)
		}
		key, err := os.ReadFile(file)
		if err != nil {
			return nil, cli.InputErr(fmt.Errorf("--log %s: %w", origin, err))
		}
		out = append(out, witness.Log{Origin: origin, Key: key})
	}
	return out, nil
}

func serveWitness(ctx context.Context, cmd *cobra.Command, w *witness.Witness, addr string, logs []witness.Log) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("witness: %w", err)
	}
	srv := w.Server(addr)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	origins := make([]string, len(logs))
	for i, l := range logs {
		origins[i] = l.Origin
	}
	slog.Info("witness serving", "addr", ln.Addr().String(), "logs", len(logs))
	res := map[string]any{"listen": ln.Addr().String(), "status": "serving", "name": w.Signer().Name(), "verifier_key": w.Signer().VerifierKey(), "logs": origins}
	if err := cli.Print(cmd, res, func(pw cli.Writer) {
		pw.Printf("witness %s on http://%s (%d logs)\n", w.Signer().Name(), ln.Addr(), len(logs))
	}); err != nil {
		return err
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("witness: %w", err)
	}
	return nil
}

// witnessFlags are the receipt and audit flags that involve witnesses.
type witnessFlags struct {
	urls     []string
	keyFiles []string
	required int
}

// addURLs registers --witness URL (receipt export, audit verify of a job).
func (f *witnessFlags) addURLs(c *cobra.Command) {
	c.Flags().StringArrayVar(&f.urls, "witness", nil, "have this witness (tlog-witness URL) cosign the log's checkpoint for the receipt (repeatable)")
}

// addAudit registers --witnesses N and --witness-key FILE (audit verify).
func (f *witnessFlags) addAudit(c *cobra.Command) {
	c.Flags().IntVar(&f.required, "witnesses", 0, "require this many valid cosignatures from trusted witnesses (--witness-key)")
	c.Flags().StringArrayVar(&f.keyFiles, "witness-key", nil, "file of trusted witness verifier keys, one vkey line each (accord witness key prints one; repeatable)")
}

// witness attaches cosignatures from --witness URLs to a receipt just built.
func (f *witnessFlags) witness(ctx context.Context, r *provenance.Receipt, l tlog.Log) error {
	return r.Witness(ctx, l, f.urls)
}

// options fills the witness part of VerifyOptions from the flags.
func (f *witnessFlags) options(o provenance.VerifyOptions) (provenance.VerifyOptions, error) {
	if f.required < 0 {
		return o, cli.Usagef("--witnesses must be 0 or more")
	}
	o.Witnesses = f.required
	for _, path := range f.keyFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			return o, cli.InputErr(fmt.Errorf("--witness-key: %w", err))
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if _, err := witness.NewCosignatureVerifier(line); err != nil {
				return o, cli.Usagef("--witness-key %s: %v", path, err)
			}
			o.WitnessKeys = append(o.WitnessKeys, line)
		}
	}
	if o.Witnesses > 0 && len(o.WitnessKeys) == 0 {
		return o, cli.Usagef("--witnesses %d needs trusted witness keys: --witness-key FILE", o.Witnesses)
	}
	return o, nil
}
