package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/accordmesh/accord/internal/bounded"
	"github.com/accordmesh/accord/internal/cli"
	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/exchange"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/models/search"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/workers/local"
)

func init() {
	root.AddCommand(modelCmd())
	cli.RegisterNotFound(registry.ErrNotFound)
}

// maxManifestFile bounds a --manifest file.
const maxManifestFile = 4 << 20

func modelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "model",
		Short: "Publish, find, fetch and verify models in the model exchange (an OCI registry)",
		Example: `  accord model push ./clf --name acme/legal-es-classifier --version 1.2.0 --owner acme --license Apache-2.0 --registry 127.0.0.1:5000 --registry-plain-http
  accord model search 'task:text-classification lang:es f1>=0.90' --registry 127.0.0.1:5000 --registry-plain-http
  accord model verify acme/legal-es-classifier@1.2.0 --registry 127.0.0.1:5000 --registry-plain-http`,
	}
	c.AddCommand(modelPushCmd(), modelPullCmd(), modelInspectCmd(), modelVerifyCmd(), modelLineageCmd(), modelSearchCmd())
	return c
}

// modelFlags are what every model command needs: the registry, the log the
// signatures are in, and (to publish) a key.
type modelFlags struct {
	reg     registryFlags
	log     logFlags
	keyPath string
}

func (f *modelFlags) add(c *cobra.Command, publish bool) {
	f.reg.add(c)
	f.log.add(c)
	if publish {
		c.Flags().StringVar(&f.keyPath, "key", "", "publisher's private key (PEM), trusted for spec:<owner> (default: this home's worker key, trusted for stage)")
	}
}

// open opens the exchange; close releases the log.
func (f *modelFlags) open(ctx context.Context, write bool) (*exchange.Exchange, func(), error) {
	if f.reg.addr == "" {
		return nil, nil, cli.Usagef("--registry (or $ACCORD_REGISTRY) is required")
	}
	loc, err := f.log.open(ctx, write)
	if err != nil {
		return nil, nil, err
	}
	home, err := cli.HomePath()
	if err != nil {
		loc.Close(ctx)
		return nil, nil, err
	}
	var key *provenance.Key
	if write {
		path := f.keyPath
		if path == "" {
			path = provenance.WorkerKeyPath(home)
		}
		if key, err = provenance.LoadKey(path); err != nil {
			loc.Close(ctx)
			return nil, nil, cli.InputErr(fmt.Errorf("publisher key: %w", err))
		}
	}
	o := local.Options{Home: home}
	f.reg.apply(&o)
	x, err := local.OpenExchange(o, loc.Log, key)
	if err != nil {
		loc.Close(ctx)
		return nil, nil, err
	}
	return x, func() { loc.Close(ctx) }, nil
}

func modelPushCmd() *cobra.Command {
	var f modelFlags
	var m models.Manifest
	var manifestPath, change string
	var tags, parents, datasets, royalties []string
	c := &cobra.Command{
		Use:   "push DIR",
		Short: "Publish DIR's files as a signed, logged model version",
		Long: "push signs DIR's files (OpenSSF model-signing v1.0) and the version's terms (owner, lineage,\n" +
			"licence, prices, royalties), logs both signatures, and pushes the model as a CNCF ModelPack\n" +
			"artifact with both attached. The terms come from --manifest (an Accord manifest, JSON, without\n" +
			"files) and the flags, which override it. A new version is checked against the previous one: a\n" +
			"changed dataset is a data change whatever --change says. Pushing the same content again is a no-op.",
		Example: `  accord model push ./base --name acme/base-es --version 2.0.1 --owner acme --license Apache-2.0 \
      --tag task:text-classification --tag lang:es --price-inference 1 --price-fine-tune 2000 --currency USD
  accord model push ./clf --name acme/clf --version 1.0.0 --owner ann --license MIT \
      --parent acme/base-es@2.0.1=sha256:…:finetune --royalty acme/base-es@2.0.1=1500 --key ann.key --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			if manifestPath != "" {
				b, err := bounded.ReadFile(manifestPath, maxManifestFile)
				if err != nil {
					return cli.InputErr(err)
				}
				var base models.Manifest
				if err := json.Unmarshal(b, &base); err != nil {
					return cli.InputErr(fmt.Errorf("%s: %w", manifestPath, err))
				}
				mergeManifest(&base, &m)
				m = base
			}
			if err := applyModelLists(&m, change, tags, parents, datasets, royalties); err != nil {
				return cli.Usage(err)
			}
			if m.SchemaVersion == "" {
				m.SchemaVersion = models.SchemaVersion
			}
			files, err := models.ScanDir(args[0])
			if err != nil {
				return cli.InputErr(err)
			}
			m.Files = files
			if err := m.Validate(); err != nil {
				return cli.InputErr(err)
			}
			x, done, err := f.open(ctx, true)
			if err != nil {
				return err
			}
			defer done()
			p, err := x.Push(ctx, args[0], &m)
			if err != nil {
				return err
			}
			return cli.Print(cmd, p, func(w cli.Writer) {
				w.Printf("published %s (%s), %d files, owner %s\n", p.Ref, p.Digest, len(m.Files), m.Owner)
				w.Printf("signature logged at index %d, publication at index %d\n", p.Signature.LogIndex, p.Publication.LogIndex)
			})
		},
	}
	f.add(c, true)
	fl := c.Flags()
	fl.StringVar(&manifestPath, "manifest", "", "Accord manifest (JSON) giving the terms; flags override its fields")
	fl.StringVar(&m.Name, "name", "", "model name (lowercase DNS labels joined by /)")
	fl.StringVar(&m.Version, "version", "", "MAJOR.MINOR.PATCH")
	fl.StringVar(&change, "change", "", "change class from the previous version: patch, behaviour (default) or data")
	fl.StringVar(&m.Owner, "owner", "", "tenant that owns the model and is paid its prices and royalties")
	fl.StringVar(&m.License, "license", "", "SPDX licence expression")
	fl.StringVar(&m.Description, "description", "", "what the model does")
	fl.StringVar(&m.Economics.Currency, "currency", "", "ISO 4217 currency of the prices (default USD)")
	fl.Int64Var(&m.Economics.PerInference, "price-inference", 0, "price per inference run, minor units")
	fl.Int64Var(&m.Economics.PerFineTune, "price-fine-tune", 0, "price per fine-tune, minor units")
	fl.Int64Var(&m.Economics.PerDeployment, "price-deployment", 0, "price per deployment, minor units")
	fl.StringArrayVar(&tags, "tag", nil, "semantic tag key:value (repeatable; see docs/models.md)")
	fl.StringArrayVar(&parents, "parent", nil, "lineage parent NAME@VERSION=sha256:HEX:RELATION (repeatable)")
	fl.StringArrayVar(&datasets, "dataset", nil, "training dataset digest sha256:HEX (repeatable)")
	fl.StringArrayVar(&royalties, "royalty", nil, "royalty owed to a parent, NAME@VERSION=BASIS_POINTS (repeatable)")
	return c
}

// mergeManifest copies the fields set by flags (over) onto base.
func mergeManifest(base, over *models.Manifest) {
	for _, p := range []struct{ dst, src *string }{
		{&base.Name, &over.Name}, {&base.Version, &over.Version}, {&base.Owner, &over.Owner},
		{&base.License, &over.License}, {&base.Description, &over.Description}, {&base.Economics.Currency, &over.Economics.Currency},
	} {
		if *p.src != "" {
			*p.dst = *p.src
		}
	}
	for _, p := range []struct{ dst, src *int64 }{
		{&base.Economics.PerInference, &over.Economics.PerInference}, {&base.Economics.PerFineTune, &over.Economics.PerFineTune},
		{&base.Economics.PerDeployment, &over.Economics.PerDeployment},
	} {
		if *p.src != 0 {
			*p.dst = *p.src
		}
	}
}

// applyModelLists parses the repeatable flags into m.
func applyModelLists(m *models.Manifest, change string, tags, parents, datasets, royalties []string) error {
	switch {
	case change != "":
		m.Change = models.ChangeClass(change)
	case m.Change == "":
		m.Change = "behaviour"
	}
	if m.Economics.Currency == "" {
		m.Economics.Currency = "USD"
	}
	for _, t := range tags {
		m.Tags = append(m.Tags, models.Tag{Tag: t, AuthorConfidence: 1})
	}
	for _, p := range parents {
		ref, rest, ok := strings.Cut(p, "=")
		i := strings.LastIndex(rest, ":")
		if !ok || i < 0 {
			return fmt.Errorf("--parent %q: want NAME@VERSION=sha256:HEX:RELATION", p)
		}
		m.Lineage.Parents = append(m.Lineage.Parents, models.Parent{Ref: ref, Digest: rest[:i], Relation: models.Relation(rest[i+1:])})
	}
	m.Lineage.Datasets = append(m.Lineage.Datasets, datasets...)
	for _, r := range royalties {
		ref, bp, ok := strings.Cut(r, "=")
		n, err := strconv.Atoi(bp)
		if !ok || err != nil {
			return fmt.Errorf("--royalty %q: want NAME@VERSION=BASIS_POINTS", r)
		}
		m.Economics.Royalties = append(m.Economics.Royalties, models.Royalty{Parent: ref, BasisPoints: n})
	}
	return nil
}

func modelPullCmd() *cobra.Command {
	var f modelFlags
	c := &cobra.Command{
		Use:   "pull REF DIR",
		Short: "Download a model version into an empty DIR and verify it",
		Example: `  accord model pull acme/legal-es-classifier@1.2.0 ./clf
  accord model pull acme/legal-es-classifier@sha256:… ./clf --json`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			x, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			if _, err := x.Registry.Pull(ctx, args[0], args[1]); err != nil {
				return err
			}
			v, err := x.VerifyDir(ctx, args[0], args[1])
			if err != nil {
				return verifyErr(err)
			}
			return cli.Print(cmd, v, func(w cli.Writer) {
				w.Printf("pulled %s (%s) into %s: %d files, signatures and log entries verified\n", v.Ref, v.Digest, args[1], len(v.Manifest.Files))
			})
		},
	}
	f.add(c, false)
	return c
}

func modelInspectCmd() *cobra.Command {
	var f modelFlags
	c := &cobra.Command{
		Use:   "inspect REF",
		Short: "Show a model version's manifest, files and attachments",
		Example: `  accord model inspect acme/legal-es-classifier@1.2.0
  accord model inspect acme/legal-es-classifier@1.2.0 --json | jq .manifest.economics`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			x, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			m, err := x.Registry.Inspect(ctx, args[0])
			if err != nil {
				return err
			}
			var types []string
			for _, a := range m.Attachments {
				types = append(types, a.ArtifactType)
			}
			res := map[string]any{"ref": m.Ref, "digest": m.Digest, "manifest": m.Manifest, "attachments": types}
			return cli.Print(cmd, res, func(w cli.Writer) {
				mf := m.Manifest
				w.Printf("%s (%s), owner %s, licence %s, change %s\n", m.Ref, m.Digest, mf.Owner, mf.License, mf.Change)
				if mf.Description != "" {
					w.Printf("  %s\n", mf.Description)
				}
				e := mf.Economics
				w.Printf("  prices: inference %s, fine-tune %s, deployment %s\n", formatMoney(e.PerInference, e.Currency), formatMoney(e.PerFineTune, e.Currency), formatMoney(e.PerDeployment, e.Currency))
				for _, p := range mf.Lineage.Parents {
					w.Printf("  parent %s (%s) %s\n", p.Ref, p.Digest, p.Relation)
				}
				for _, t := range mf.Tags {
					w.Printf("  tag %s\n", t.Tag)
				}
				for _, fl := range mf.Files {
					w.Printf("  file %s %d bytes %s\n", fl.Path, fl.Size, fl.Digest)
				}
				w.Printf("  attachments: %s\n", strings.Join(types, ", "))
			})
		},
	}
	f.add(c, false)
	return c
}

func modelVerifyCmd() *cobra.Command {
	var f modelFlags
	var dir string
	c := &cobra.Command{
		Use:   "verify REF",
		Short: "Verify a model version: signatures, log inclusion, file digests",
		Long: "verify downloads every file of REF (or reads --dir instead) and checks the model-signing and publication signatures against the trust store (the\n" +
			"publisher must be trusted for spec:<owner>, operator or stage), both transparency-log entries\n" +
			"(inclusion proof and signed entry timestamp from a log trusted for scope log), that the signed\n" +
			"files are the artifact's layers, and with --dir that DIR holds exactly those files. It exits 7\n" +
			"when the model does not verify.",
		Example: `  accord model verify acme/legal-es-classifier@1.2.0
  accord model verify acme/legal-es-classifier@1.2.0 --dir ./clf --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			x, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			if dir == "" {
				// Every file is downloaded and hashed: a flipped byte in
				// the registry's copy is found, not assumed away.
				if err := os.MkdirAll(x.CacheDir, 0o755); err != nil {
					return err
				}
				tmp, err := os.MkdirTemp(x.CacheDir, ".verify-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = filepath.Join(tmp, "m")
				if _, err := x.Registry.Pull(ctx, args[0], dir); err != nil {
					return verifyErr(err)
				}
			}
			v, err := x.VerifyDir(ctx, args[0], dir)
			if err != nil {
				return verifyErr(err)
			}
			return cli.Print(cmd, v, func(w cli.Writer) {
				w.Printf("verified %s (%s): files signed by %s (log index %d), terms by %s (log index %d)", v.Ref, v.Digest, v.Signer, v.SignatureIndex, v.Publisher, v.PublicationIndex)
				if v.Files {
					w.Printf(", %d files on disk match", len(v.Manifest.Files))
				}
				w.Printf("\n")
			})
		},
	}
	f.add(c, false)
	c.Flags().StringVar(&dir, "dir", "", "also check that DIR holds exactly the signed files")
	return c
}

// verifyErr exits 7 for a model that does not verify; a model that does
// not exist stays not_found and a registry that cannot be reached an error.
func verifyErr(err error) error {
	if errors.Is(err, exchange.ErrUnverified) || errors.Is(err, models.ErrVerify) {
		return cli.WithCode(cli.ExitVerification, err)
	}
	return err
}

func modelLineageCmd() *cobra.Command {
	var f modelFlags
	c := &cobra.Command{
		Use:   "lineage REF",
		Short: "Show a model's derivation tree with the royalties each ancestor receives",
		Example: `  accord model lineage acme/legal-es-tuned@1.0.0
  accord model lineage acme/legal-es-tuned@1.0.0 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			x, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			n, err := x.Lineage(ctx, args[0])
			if err != nil {
				return err
			}
			return cli.Print(cmd, n, func(w cli.Writer) { printLineage(w, n, "") })
		},
	}
	f.add(c, false)
	return c
}

func printLineage(w cli.Writer, n *exchange.Node, indent string) {
	w.Printf("%s%s (owner %s)", indent, n.Ref, n.Owner)
	if n.Relation != "" {
		w.Printf(" %s, royalty %d.%02d%% of its child's income", n.Relation, n.RoyaltyBP/100, n.RoyaltyBP%100)
	}
	if n.Receipt != nil {
		w.Printf(", trained by job %s (log index %d)", n.Receipt.JobID, n.Receipt.LogIndex)
	}
	w.Printf("\n")
	for _, p := range n.Parents {
		printLineage(w, p, indent+"  ")
	}
}

func modelSearchCmd() *cobra.Command {
	var f modelFlags
	var limit int
	var all bool
	c := &cobra.Command{
		Use:   "search QUERY",
		Short: "Find models by tags, benchmark bounds and free text, ranked with reasons",
		Long: "search ranks every model version in the registry against QUERY: key:value tags from the\n" +
			"vocabulary (task:, lang:, domain:, license:, modality:, framework:), benchmark bounds such as\n" +
			"f1>=0.90, and free words matched in names and descriptions. Each result says why it ranked\n" +
			"where it did. Versions are verified (signatures and log entries) once and remembered by\n" +
			"digest under the home directory.",
		Example: `  accord model search 'task:text-classification lang:es domain:legal f1>=0.90 license:open-weights'
  accord model search legal classifier --limit 5 --json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmdContext(cmd)
			q, err := search.ParseQuery(strings.Join(args, " "))
			if err != nil {
				return cli.Usage(err)
			}
			q.AllVersions = all
			x, done, err := f.open(ctx, false)
			if err != nil {
				return err
			}
			defer done()
			ix, err := searchIndex(ctx, x)
			if err != nil {
				return err
			}
			res := ix.Search(q, limit)
			return cli.Print(cmd, map[string]any{"query": q.String(), "results": res}, func(w cli.Writer) {
				if len(res) == 0 {
					w.Printf("no model matches %s\n", q.String())
				}
				for i, r := range res {
					w.Printf("%d. %s  score %.2f  %s\n", i+1, r.Ref, r.Score, r.Digest)
					for _, why := range r.Reasons {
						w.Printf("     %s\n", why)
					}
				}
			})
		},
	}
	f.add(c, false)
	c.Flags().IntVar(&limit, "limit", 10, "at most this many results (0: all)")
	c.Flags().BoolVar(&all, "all-versions", false, "rank every matching version, not only each name's highest")
	return c
}

// searchCache remembers verified versions by digest; a digest's content
// never changes, so an entry stays valid.
func searchCachePath() (string, error) {
	home, err := cli.HomePath()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, "models", "search-index.json"), nil
}

// searchIndex builds the index of every version in the registry, verifying
// the ones not seen before. A version that does not verify is listed
// unsigned, so that search says so rather than hiding it.
func searchIndex(ctx context.Context, x *exchange.Exchange) (*search.Index, error) {
	path, err := searchCachePath()
	if err != nil {
		return nil, err
	}
	known := map[string]search.Entry{}
	if f, err := os.Open(path); err == nil {
		if old, err := search.Load(f, 256<<20); err == nil {
			for _, e := range old.Entries() {
				known[e.Digest] = e
			}
		}
		f.Close()
	}
	names, err := x.Registry.Names(ctx)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	ix := search.NewIndex()
	for _, name := range names {
		vs, err := x.Registry.Versions(ctx, name)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			e, err := indexEntry(ctx, x, name+"@"+v.String(), known)
			if err != nil {
				return nil, err
			}
			if err := ix.Add(e); err != nil {
				return nil, err
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err == nil {
		if f, err := os.CreateTemp(filepath.Dir(path), ".index-"); err == nil {
			if ix.Save(f) == nil && f.Close() == nil {
				os.Rename(f.Name(), path)
			}
			os.Remove(f.Name())
		}
	}
	return ix, nil
}

func indexEntry(ctx context.Context, x *exchange.Exchange, ref string, known map[string]search.Entry) (search.Entry, error) {
	m, err := x.Registry.Inspect(ctx, ref)
	if err != nil {
		return search.Entry{}, err
	}
	if e, ok := known[m.Digest]; ok && e.Signed {
		return e, nil
	}
	e := search.Entry{Manifest: m.Manifest, Digest: m.Digest}
	if v, err := x.Verify(ctx, ref); err == nil {
		e.Manifest, e.Signed, e.Logged = v.Manifest, true, true
	}
	return e, nil
}
