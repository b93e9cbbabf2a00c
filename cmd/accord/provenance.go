package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	_ "github.com/accordmesh/accord/provenance/tlog/rekorv1" // --log rekor / --rekor-url
	"github.com/accordmesh/accord/specs"
)

// logFlags select the transparency log for receipt and audit commands.
type logFlags struct {
	kind     string
	rekorURL string
	insecure bool
}

func (f *logFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.kind, "log", tlog.KindEmbedded, "transparency log: embedded (under Accord's home) or rekor")
	c.Flags().StringVar(&f.rekorURL, "rekor-url", "", "Rekor v1 server URL (implies --log rekor; its key must be trusted: accord keys trust FILE --scope log)")
	c.Flags().BoolVar(&f.insecure, "insecure", false, "allow a plain http:// --rekor-url (no TLS: only a log on this machine or a test)")
}

// open opens the log and the local provenance state. Writers fall back to a
// read-only embedded log when a worker holds it.
func (f *logFlags) open(ctx context.Context, write bool) (*provenance.Local, error) {
	home, err := cli.HomePath() // a reader creates nothing
	if write {
		home, err = cli.Home()
	}
	if err != nil {
		return nil, err
	}
	cfg := tlog.Config{Kind: f.kind, Home: home, URL: f.rekorURL, ReadOnly: !write, Insecure: f.insecure}
	if f.rekorURL != "" {
		cfg.Kind = tlog.KindRekor
	}
	loc, err := provenance.OpenLocal(ctx, home, cfg)
	if write && errors.Is(err, embedded.ErrLocked) {
		cfg.ReadOnly = true
		loc, err = provenance.OpenLocal(ctx, home, cfg)
	}
	return loc, err
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

func init() {
	root.AddCommand(newKeysCmd(), newReceiptCmd(), newAuditCmd())
	specCmd.AddCommand(newSpecSignCmd())
}

func newKeysCmd() *cobra.Command {
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Signing keys and the trust store",
		Example: `  accord keys generate --trust spec:demo
  accord keys trust auditor.pub --scope log
  accord keys trust gpu-east.pub --scope provider:gpu-east --name gpu-east
  accord keys list`,
	}
	keys.AddCommand(newKeysGenerateCmd(), newKeysTrustCmd(), newKeysListCmd())
	return keys
}

func newKeysGenerateCmd() *cobra.Command {
	var alg, out string
	var force bool
	var trustScopes []string
	gen := &cobra.Command{
		Use:   "generate",
		Short: "Generate a signing key (PEM; the public half goes to FILE.pub)",
		Example: `  accord keys generate
  accord keys generate --alg ed25519 -o alice.key --trust spec:demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			home, err := cli.Home()
			if err != nil {
				return err
			}
			if out == "" {
				out = filepath.Join(home, "keys", "signing.key")
			}
			if _, err := os.Stat(out); err == nil && !force {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("%s exists (use --force to replace it)", out))
			}
			k, err := provenance.GenerateKey(alg)
			if err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			if force {
				os.Remove(out)
			}
			if err := k.WriteFiles(out); err != nil {
				return err
			}
			if len(trustScopes) > 0 {
				if err := trustKey(home, k.PublicPEM(), filepath.Base(out), trustScopes); err != nil {
					return err
				}
			}
			res := map[string]any{"id": k.ID(), "algorithm": k.Algorithm(), "private_key": out, "public_key": out + ".pub", "trusted_for": trustScopes}
			return cli.Print(cmd, res, func(w cli.Writer) {
				w.Printf("key %s (%s)\n  private: %s\n  public:  %s.pub\n", k.ID(), k.Algorithm(), out, out)
			})
		},
	}
	gen.Flags().StringVar(&alg, "alg", provenance.AlgECDSAP256, "key algorithm: ecdsa-p256 or ed25519")
	gen.Flags().StringVarP(&out, "output", "o", "", "private key file (default keys/signing.key under Accord's home)")
	gen.Flags().BoolVar(&force, "force", false, "replace an existing key file")
	gen.Flags().StringSliceVar(&trustScopes, "trust", nil, "also trust the key for these scopes ("+provenance.ScopeNames+")")
	return gen
}

func newKeysTrustCmd() *cobra.Command {
	var scopes []string
	var name string
	trust := &cobra.Command{
		Use:   "trust PUBLIC_KEY_FILE",
		Short: "Trust a public key (PEM) for scopes: " + provenance.ScopeNames,
		Long: "trust adds a public key to the trust store with the scopes it may sign for. Each party of a\n" +
			"job signs its own stages: operator (spec, admission, negotiation, settlement; also\n" +
			"verification), provider:<name> (placement acceptance and execution of jobs awarded to that\n" +
			"provider), verifier (verification). stage is the single-process Accord's one key for every\n" +
			"stage (accord audit verify --parties no longer accepts it). log: a transparency log's\n" +
			"checkpoints; spec:<tenant> or spec:*: spec signatures.",
		Example: `  accord keys trust alice.key.pub --scope spec:demo --name alice
  accord keys trust log.pub --scope log
  accord keys trust operator.pub --scope operator --name operator
  accord keys trust gpu-east.pub --scope provider:gpu-east --name gpu-east
  accord keys trust verifier.pub --scope verifier`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			home, err := cli.Home()
			if err != nil {
				return err
			}
			pemBytes, err := os.ReadFile(args[0])
			if err != nil {
				return cli.InputErr(err)
			}
			if len(scopes) == 0 {
				return cli.WithCode(cli.ExitUsage, errors.New("--scope is required"))
			}
			if err := trustKey(home, pemBytes, name, scopes); err != nil {
				return err
			}
			pub, err := provenance.ParsePublicKeyPEM(pemBytes)
			if err != nil {
				return cli.WithCode(cli.ExitUsage, err)
			}
			id, _ := provenance.Fingerprint(pub)
			return cli.Print(cmd, map[string]any{"id": id, "scopes": scopes}, func(w cli.Writer) {
				w.Printf("trusted %s for %s\n", id, strings.Join(scopes, ", "))
			})
		},
	}
	trust.Flags().StringSliceVar(&scopes, "scope", nil, "scopes the key may sign for")
	trust.Flags().StringVar(&name, "name", "", "a label for the key")
	return trust
}

func newKeysListCmd() *cobra.Command {
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the trust store",
		Example: `  accord keys list`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, path, err := loadTrust()
			if err != nil {
				return err
			}
			keys := ts.Keys()
			type row struct {
				ID     string   `json:"id"`
				Name   string   `json:"name,omitempty"`
				Scopes []string `json:"scopes"`
			}
			rows := []row{}
			for _, k := range keys {
				rows = append(rows, row{k.ID, k.Name, k.Scopes})
			}
			return cli.Print(cmd, map[string]any{"keys": rows}, func(w cli.Writer) {
				if len(rows) == 0 {
					w.Printf("no trusted keys in %s (accord keys generate --trust spec:TENANT, or accord keys trust FILE --scope ...)\n", path)
				}
				for _, r := range rows {
					w.Printf("%s  %-20s %s\n", r.ID, r.Name, strings.Join(r.Scopes, ","))
				}
			})
		},
	}
	return list
}

// loadTrust reads the home's trust store (empty when there is none yet)
// without creating anything, and returns it with its path.
func loadTrust() (*provenance.TrustStore, string, error) {
	home, err := cli.HomePath()
	if err != nil {
		return nil, "", err
	}
	path := provenance.DefaultTrustPath(home)
	ts, err := provenance.LoadTrustStore(path)
	return ts, path, err
}

func trustKey(home string, pemBytes []byte, name string, scopes []string) error {
	path := provenance.DefaultTrustPath(home)
	ts, err := provenance.LoadTrustStore(path)
	if err != nil {
		return err
	}
	if _, err := ts.Add(pemBytes, name, scopes...); err != nil {
		return cli.WithCode(cli.ExitUsage, err)
	}
	return ts.Save(path)
}

func newSpecSignCmd() *cobra.Command {
	var keyPath, out string
	var expires time.Duration
	c := &cobra.Command{
		Use:   "sign FILE",
		Short: "Sign a whole composed spec (every extends and imports file by digest) for its tenant, with an expiry; writes FILE.sig",
		Long: "sign loads and validates the spec, then signs a DSSE envelope over its tenant, the digest of\n" +
			"FILE and of every file it extends or imports (recursively, paths relative to FILE's directory),\n" +
			"the signing time and an expiry. Admission refuses the signature once any of those files\n" +
			"changes, one is added or removed, or it has expired.",
		Example: `  accord spec sign examples/quickstart.md --key alice.key
  accord spec sign examples/batch-inference.md --key alice.key --expires 168h --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return cli.WithCode(cli.ExitUsage, errors.New("--key is required"))
			}
			if expires <= 0 || expires > provenance.MaxSpecSignatureTTL {
				return cli.Usagef("--expires %s: want more than 0 and at most %s", expires, provenance.MaxSpecSignatureTTL)
			}
			s, err := specs.Load(args[0])
			if err != nil {
				return cli.InputErr(err)
			}
			doc, err := os.ReadFile(args[0])
			if err != nil {
				return cli.InputErr(err)
			}
			b, err := provenance.SpecBundleOf(doc, s.Source.Documents)
			if err != nil {
				return cli.InputErr(err)
			}
			k, err := provenance.LoadKey(keyPath)
			if err != nil {
				return cli.InputErr(err)
			}
			now := time.Now().UTC().Truncate(time.Second)
			sig, err := provenance.SignSpec(cmdContext(cmd), k, provenance.SpecBundlePredicate{
				Name: filepath.Base(args[0]), Tenant: s.Tenant, DocumentDigest: b.DocumentDigest, Files: b.Files,
				SignedAt: now, NotAfter: now.Add(expires),
			})
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0] + provenance.SpecSignatureExt
			}
			if err := os.WriteFile(out, append(sig, '\n'), 0o644); err != nil {
				return err
			}
			files := make([]string, len(b.Files))
			for i, f := range b.Files {
				files[i] = f.Path
			}
			notAfter := now.Add(expires).Format(time.RFC3339)
			res := map[string]any{"document_digest": b.DocumentDigest, "tenant": s.Tenant, "files": b.Files,
				"not_after": notAfter, "key_id": k.ID(), "signature": out}
			return cli.Print(cmd, res, func(w cli.Writer) {
				w.Printf("signed %s (%s) for tenant %s with %s, valid until %s → %s\n", args[0], b.DocumentDigest, s.Tenant, k.ID(), notAfter, out)
				if len(files) > 0 {
					w.Printf("covers also: %s\n", strings.Join(files, ", "))
				}
			})
		},
	}
	c.Flags().StringVar(&keyPath, "key", "", "private key file (PEM)")
	c.Flags().StringVarP(&out, "output", "o", "", "signature file (default FILE.sig)")
	c.Flags().DurationVar(&expires, "expires", provenance.DefaultSpecSignatureTTL, "how long the signature stays valid (at most 8784h)")
	return c
}

func newReceiptCmd() *cobra.Command {
	receipt := &cobra.Command{Use: "receipt", Short: "Job receipts: attestations with their log proofs", Example: `  accord receipt export job-20261125t200134-fb81bb43 -o receipt.json`}
	var lf logFlags
	var wf witnessFlags
	var out string
	export := &cobra.Command{
		Use:   "export JOB",
		Short: "Write a job's receipt (every envelope with its log entry, proofs and the log key)",
		Example: `  accord receipt export job-20261125t200134-fb81bb43 -o receipt.json
  accord receipt export job-20261125t200134-fb81bb43 -o receipt.json --witness http://witness-a:7380 --witness http://witness-b:7380`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return cli.Usagef("-o FILE is required (see accord receipt export --help)")
			}
			ctx := cmdContext(cmd)
			loc, err := lf.open(ctx, false)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("job %s not found: nothing has been attested in this home yet: %w", args[0], fs.ErrNotExist)
			}
			if err != nil {
				return err
			}
			defer loc.Close(ctx)
			r, err := provenance.BuildReceipt(ctx, args[0], loc.Store, loc.Log)
			if err != nil {
				return err
			}
			if err := wf.witness(ctx, r, loc.Log); err != nil {
				return err
			}
			if err := r.WriteFile(out); err != nil {
				return err
			}
			stages := make([]string, len(r.Attestations))
			for i, a := range r.Attestations {
				stages[i] = a.Stage
			}
			res := map[string]any{"job_id": r.JobID, "file": out, "stages": stages, "log": r.Log.Kind}
			return cli.Print(cmd, res, func(w cli.Writer) {
				w.Printf("receipt for %s (%d stages: %s) → %s\n", r.JobID, len(stages), strings.Join(stages, " → "), out)
			})
		},
	}
	lf.add(export)
	export.Flags().StringVarP(&out, "output", "o", "", "receipt file")
	wf.addURLs(export)
	receipt.AddCommand(export)
	return receipt
}

func newAuditCmd() *cobra.Command {
	audit := &cobra.Command{
		Use:   "audit",
		Short: "Verify receipts and search the transparency log",
		Example: `  accord audit verify receipt.json
  accord audit search --job job-20261125t200134-fb81bb43`,
	}
	audit.AddCommand(newAuditVerifyCmd(), newAuditSearchCmd())
	return audit
}

func newAuditVerifyCmd() *cobra.Command {
	var vf logFlags
	var wf witnessFlags
	var online, allowIncomplete, parties bool
	var trustPath string
	verify := &cobra.Command{
		Use:   "verify FILE|JOB",
		Short: "Verify a receipt offline (signatures, proofs, checkpoints, the stage chain, amounts)",
		Example: `  accord audit verify receipt.json
  accord audit verify job-20261125t200134-fb81bb43 --online
  accord audit verify receipt.json --trust auditor-trust.json --json
  accord audit verify receipt.json --witnesses 2 --witness-key witness-a.vkey --witness-key witness-b.vkey
  accord audit verify receipt.json --parties --trust auditor-trust.json`,
		Long: "Verify a receipt file, or the receipt of a job in Accord's home, against the trust store.\n" +
			"Offline unless --online, which also proves the receipt's checkpoints consistent with the log's\n" +
			"current one. Each stage must be signed by its party's key (operator, provider:<the awarded\n" +
			"provider>, verifier), or by a key trusted for the legacy scope stage; --parties drops the\n" +
			"legacy scope. Exit status 7 when the audit fails; each problem names its stage.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			home, err := cli.HomePath()
			if err != nil {
				return err
			}
			if trustPath == "" {
				trustPath = provenance.DefaultTrustPath(home)
			}
			trust, err := provenance.LoadTrustStore(trustPath)
			if err != nil {
				return err
			}
			opts, err := wf.options(provenance.VerifyOptions{AllowIncomplete: allowIncomplete, Parties: parties})
			if err != nil {
				return err
			}
			r, loc, err := receiptFor(ctx, &vf, args[0])
			if err != nil {
				return err
			}
			if loc != nil {
				defer loc.Close(ctx)
				if err := wf.witness(ctx, r, loc.Log); err != nil {
					return err
				}
			} else if len(wf.urls) > 0 {
				return cli.Usagef("--witness applies to a job's receipt built here; a receipt file carries its own witnessed checkpoint")
			}
			rep, _ := provenance.Verify(ctx, r, trust, opts)
			if online {
				if loc == nil {
					if loc, err = vf.open(ctx, false); err != nil {
						return err
					}
					defer loc.Close(ctx)
				}
				probs, err := provenance.VerifyOnline(ctx, r, loc.Log)
				if err != nil {
					return err
				}
				rep.Problems = append(rep.Problems, probs...)
				rep.OK = len(rep.Problems) == 0
			}
			if err := cli.Print(cmd, rep, func(w cli.Writer) {
				for _, s := range rep.Stages {
					w.Printf("%-13s %s  log#%d  %s  signer %s%s\n", s.Stage, s.Digest, s.LogIndex, s.IntegratedTime.Format(time.RFC3339), s.Signer, partyNote(s.Party))
					for _, p := range s.Parts {
						w.Printf("  part %-9s %s  signer %s%s\n", strings.Join(p.Tasks, ","), p.Digest, p.KeyID, partyNote(p.Party))
					}
				}
				for _, p := range rep.Problems {
					w.Printf("FAIL %s\n", p)
				}
				if rep.OK {
					w.Printf("OK: job %s verified (%d stages, complete=%v, log key %s)\n", rep.JobID, len(rep.Stages), rep.Complete, rep.LogKey)
				}
			}); err != nil {
				return err
			}
			return cli.WithCode(cli.ExitVerification, rep.Err())
		},
	}
	vf.add(verify)
	verify.Flags().BoolVar(&online, "online", false, "also check consistency with the log's current checkpoint")
	verify.Flags().BoolVar(&allowIncomplete, "allow-incomplete", false, "accept a chain that stops before settlement (job still running)")
	verify.Flags().BoolVar(&parties, "parties", false, "require each stage to be signed by its own party's key (operator, provider:<name>, verifier): keys trusted only for the legacy scope stage no longer count")
	verify.Flags().StringVar(&trustPath, "trust", "", "trust store file (default trust.json under Accord's home)")
	wf.addURLs(verify)
	wf.addAudit(verify)
	return verify
}

// partyNote is " (party)" for a stage signed under a party's scope.
func partyNote(party string) string {
	if party == "" {
		return ""
	}
	return " (" + party + ")"
}

func newAuditSearchCmd() *cobra.Command {
	var sf logFlags
	var q provenance.SearchQuery
	var signer, since, until string
	search := &cobra.Command{
		Use:   "search",
		Short: "Search the log by job ID, spec digest, artifact digest, signer key, time range",
		Example: `  accord audit search --job job-20261125t200134-fb81bb43
  accord audit search --spec-digest sha256:6cd22b495c60a5dfe01ce648e3976e991a905766280030395c9a41347b7ee692
  accord audit search --signer alice.key.pub --since 24h`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmdContext(cmd)
			var err error
			if q.Since, err = parseTime(since); err != nil {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("--since: %w", err))
			}
			if q.Until, err = parseTime(until); err != nil {
				return cli.WithCode(cli.ExitUsage, fmt.Errorf("--until: %w", err))
			}
			loc, err := sf.open(ctx, false)
			if err != nil {
				return err
			}
			defer loc.Close(ctx)
			if signer != "" {
				if q.SignerPEM, err = resolveSigner(loc.Trust, signer); err != nil {
					return cli.WithCode(cli.ExitUsage, err)
				}
			}
			hits, err := provenance.Search(ctx, loc.Log, q)
			if errors.Is(err, provenance.ErrEmptyQuery) {
				return cli.WithCode(cli.ExitUsage, err)
			}
			if err != nil {
				return err
			}
			return cli.Print(cmd, map[string]any{"entries": hits}, func(w cli.Writer) {
				for _, h := range hits {
					w.Printf("log#%-6d %s  %-12s %-24s %s\n", h.LogIndex, h.IntegratedTime.Format(time.RFC3339), h.Stage, h.JobID, h.UUID)
				}
				w.Printf("%d entries\n", len(hits))
			})
		},
	}
	sf.add(search)
	search.Flags().StringVar(&q.JobID, "job", "", "job ID")
	search.Flags().StringVar(&q.SpecDigest, "spec-digest", "", "spec document digest (sha256:<hex>)")
	search.Flags().StringVar(&q.Artifact, "artifact", "", "artifact (output) digest (sha256:<hex>)")
	search.Flags().StringVar(&signer, "signer", "", "signer: public key PEM file or a trusted key ID (sha256:<hex>)")
	search.Flags().StringVar(&since, "since", "", "only entries integrated at or after (RFC 3339, or a duration like 24h ago)")
	search.Flags().StringVar(&until, "until", "", "only entries integrated at or before (RFC 3339, or a duration)")
	return search
}

// receiptFor reads the receipt file arg or, when no such file exists,
// builds the receipt of job arg from the log (returning the opened log).
func receiptFor(ctx context.Context, lf *logFlags, arg string) (*provenance.Receipt, *provenance.Local, error) {
	if _, err := os.Stat(arg); err == nil {
		r, err := provenance.ReadReceipt(arg)
		if err != nil {
			return nil, nil, cli.InputErr(err)
		}
		return r, nil, nil
	}
	loc, err := lf.open(ctx, false)
	if err != nil {
		return nil, nil, err
	}
	r, err := provenance.BuildReceipt(ctx, arg, loc.Store, loc.Log)
	if err != nil {
		loc.Close(ctx)
		if errors.Is(err, provenance.ErrNotFound) {
			return nil, nil, fmt.Errorf("%s is neither a receipt file nor a job with attestations: %w", arg, err)
		}
		return nil, nil, err
	}
	return r, loc, nil
}

// parseTime accepts RFC 3339 or a Go duration meaning "that long ago".
func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(strings.TrimSuffix(strings.TrimSpace(s), " ago"))
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor a duration", s)
	}
	return time.Now().Add(-d), nil
}

// resolveSigner reads a PEM file or looks a key ID up in the trust store.
func resolveSigner(ts *provenance.TrustStore, s string) ([]byte, error) {
	if strings.HasPrefix(s, "sha256:") {
		if k, ok := ts.Lookup(s); ok {
			return []byte(k.PublicKey), nil
		}
		if _, err := os.Stat(s); err != nil {
			return nil, fmt.Errorf("signer %s is not in the trust store", s)
		}
	}
	b, err := os.ReadFile(s)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	if _, err := provenance.ParsePublicKeyPEM(b); err != nil {
		// A private key file: use its public half.
		k, kerr := provenance.ParsePrivateKeyPEM(b)
		if kerr != nil {
			return nil, fmt.Errorf("signer %s: %w", s, err)
		}
		return k.PublicPEM(), nil
	}
	return b, nil
}
