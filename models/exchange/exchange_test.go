package exchange

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/models/registry/registrytest"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	_ "github.com/accordmesh/accord/provenance/tlog/embedded"
)

// newExchange runs a real registry and an embedded log, with an owner key
// trusted for spec:acme.
func newExchange(t *testing.T) (*Exchange, *tlog.Info) {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	lg, err := tlog.Open(ctx, tlog.Config{Kind: tlog.KindEmbedded, Home: home})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tlog.Close(ctx, lg) })
	key, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	ts := provenance.NewTrustStore()
	if _, err := ts.Add(key.PublicPEM(), "acme", provenance.ScopeSpecPrefix+"acme"); err != nil {
		t.Fatal(err)
	}
	if err := provenance.TrustLog(ctx, lg, ts, ""); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registrytest.Start(t), registry.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	x := &Exchange{Registry: reg, Log: lg, Key: key, CacheDir: filepath.Join(home, "models"),
		Trust: func() (*provenance.TrustStore, error) { return ts, nil }}
	info, err := lg.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return x, info
}

func modelDir(t *testing.T) (string, *models.Manifest) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range map[string]string{"model.safetensors": "weights", "config.json": "{}", "README.md": "# clf\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files, err := models.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, &models.Manifest{SchemaVersion: models.SchemaVersion, Name: "acme/clf", Version: "1.0.0", Owner: "acme",
		Change: models.ChangeBehaviour, License: "MIT", Economics: models.Economics{Currency: "USD", PerInference: 5}, Files: files}
}

// A retried push logs nothing twice and attaches nothing twice.
func TestPushIdempotent(t *testing.T) {
	ctx := context.Background()
	x, _ := newExchange(t)
	dir, m := modelDir(t)
	first, err := x.Push(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		info, err := x.Log.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.TreeSize
	}
	before := size()
	again, err := x.Push(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	if again.Signature.UUID != first.Signature.UUID || again.Publication.UUID != first.Publication.UUID || size() != before {
		t.Fatalf("re-push logged again: %+v then %+v (log %d → %d)", first, again, before, size())
	}
	model, err := x.Registry.Inspect(ctx, first.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(model.Attachments) != 2 {
		t.Fatalf("%d attachments after two pushes, want 2", len(model.Attachments))
	}
	v, err := x.Verify(ctx, first.Ref)
	if err != nil || v.Signer != x.Key.ID() || v.Publisher != x.Key.ID() {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

// Fetch hands out a verified copy, and a copy changed on disk is fetched
// anew rather than mounted.
func TestFetchReverifiesCache(t *testing.T) {
	ctx := context.Background()
	x, _ := newExchange(t)
	dir, m := modelDir(t)
	p, err := x.Push(ctx, dir, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := x.Fetch(ctx, p.Ref, p.Digest)
	if err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(got, "model.safetensors")
	if err := os.WriteFile(w, []byte("poisoned"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := x.Fetch(ctx, p.Ref, p.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(again, "model.safetensors")); string(b) != "weights" {
		t.Fatalf("fetched %q, want the signed weights", b)
	}
	if _, err := x.Fetch(ctx, "acme/clf@9.9.9", p.Digest); !errors.Is(err, ErrUnverified) {
		t.Fatalf("fetch under another version: %v, want ErrUnverified", err)
	}
}

// Fee prices a use from the verified publication and splits it up the
// verified lineage.
func TestFeeUpTheLineage(t *testing.T) {
	ctx := context.Background()
	x, _ := newExchange(t)
	dir, base := modelDir(t)
	base.Economics.PerFineTune = 1000
	bp, err := x.Push(ctx, dir, base)
	if err != nil {
		t.Fatal(err)
	}
	child := *base
	child.Name, child.Economics = "acme/child", models.Economics{Currency: "USD", PerInference: 999,
		Royalties: []models.Royalty{{Parent: bp.Ref, BasisPoints: 2500}}}
	child.Lineage = models.Lineage{Parents: []models.Parent{{Ref: bp.Ref, Digest: bp.Digest, Relation: "finetune"}}}
	cp, err := x.Push(ctx, dir, &child)
	if err != nil {
		t.Fatal(err)
	}
	fee, err := x.Fee(ctx, cp.Ref, cp.Digest, models.UseInference)
	if err != nil {
		t.Fatal(err)
	}
	if fee.Price != 999 || len(fee.Shares) != 2 || fee.Shares[0].Amount != 750 || fee.Shares[1].Amount != 249 || fee.Shares[1].Model != bp.Ref {
		t.Fatalf("fee %+v", fee)
	}
	tree, err := x.Lineage(ctx, cp.Ref)
	if err != nil || len(tree.Parents) != 1 || tree.Parents[0].RoyaltyBP != 2500 || tree.Parents[0].Relation != "finetune" {
		t.Fatalf("lineage %+v %v", tree, err)
	}
}
