package provenance_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ita "github.com/in-toto/attestation/go/v1"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/specs"
)

// composedSpec copies the composed example (batch-inference.md extends
// base/cpu-eu.md and imports quickstart.md) into a fresh directory and
// returns the root's path.
func composedSpec(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"batch-inference.md", "quickstart.md", "base/cpu-eu.md"} {
		b, err := os.ReadFile(filepath.Join("..", "examples", f))
		if err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(dir, f), b)
	}
	return filepath.Join(dir, "batch-inference.md")
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// bundleOf loads the spec at root as the worker does and returns what a
// signature must cover.
func bundleOf(t *testing.T, root string) provenance.SpecBundle {
	t.Helper()
	s, err := specs.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := provenance.SpecBundleOf(doc, s.Source.Documents)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signBundle(t *testing.T, key *provenance.Key, b provenance.SpecBundle, tenant string, at time.Time, ttl time.Duration) []byte {
	t.Helper()
	sig, err := provenance.SignSpec(context.Background(), key, provenance.SpecBundlePredicate{
		Name: "batch-inference.md", Tenant: tenant, DocumentDigest: b.DocumentDigest, Files: b.Files,
		SignedAt: at, NotAfter: at.Add(ttl),
	})
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestSpecSignatureCoversComposedFiles(t *testing.T) {
	ctx := context.Background()
	signer, _ := provenance.GenerateKey(provenance.AlgEd25519)
	ts := provenance.NewTrustStore()
	if _, err := ts.Add(signer.PublicPEM(), "alice", "spec:acme"); err != nil {
		t.Fatal(err)
	}
	root := composedSpec(t)
	dir := filepath.Dir(root)
	signed := bundleOf(t, root)
	if len(signed.Files) != 2 || signed.Files[0].Path != "base/cpu-eu.md" || signed.Files[1].Path != "quickstart.md" {
		t.Fatalf("composed files: %+v, want base/cpu-eu.md and quickstart.md relative to the root", signed.Files)
	}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := at.Add(time.Hour)
	sig := signBundle(t, signer, signed, "acme", at, provenance.DefaultSpecSignatureTTL)

	if id, err := provenance.VerifySpecSignature(ctx, sig, bundleOf(t, root), ts, "acme", now); err != nil || id != signer.ID() {
		t.Fatalf("good bundle: %s %v", id, err)
	}
	refused := func(name string, loaded provenance.SpecBundle, want error, says ...string) {
		t.Helper()
		_, err := provenance.VerifySpecSignature(ctx, sig, loaded, ts, "acme", now)
		if !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", name, err, want)
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", name, err, s)
			}
		}
		if strings.Contains(err.Error(), dir) {
			t.Errorf("%s: error names a host path: %v", name, err)
		}
	}
	edit := func(rel, old, new string) func() {
		t.Helper()
		p := filepath.Join(dir, rel)
		orig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(orig), old) {
			t.Fatalf("%s lacks %q", rel, old)
		}
		write(t, p, []byte(strings.Replace(string(orig), old, new, 1)))
		return func() { write(t, p, orig) }
	}

	undo := edit("quickstart.md", `"50"`, `"5000"`)
	refused("imported file edited", bundleOf(t, root), provenance.ErrDigest, "quickstart.md changed", "re-sign")
	undo()
	undo = edit("base/cpu-eu.md", "\n# ", "\n<!-- prose only -->\n# ")
	refused("extended file edited", bundleOf(t, root), provenance.ErrDigest, "base/cpu-eu.md changed")
	undo()

	// A new import: the root changes and the new file is not covered.
	write(t, filepath.Join(dir, "extra.md"), []byte(strings.Replace(mustRead(t, filepath.Join(dir, "quickstart.md")), "name: quickstart", "name: extra", 1)))
	undo = edit("batch-inference.md", "  model: quickstart.md\n", "  model: quickstart.md\n  extra: extra.md\n")
	refused("import added", bundleOf(t, root), provenance.ErrDigest, "extra.md was added", "root document changed")
	undo()
	// The same set with one more file, the signed ones unchanged.
	more := signed
	more.Files = append(append([]provenance.SpecFile(nil), signed.Files...), provenance.SpecFile{Path: "lib/more.md", Digest: signed.DocumentDigest})
	refused("file added", more, provenance.ErrDigest, "lib/more.md was added")
	fewer := signed
	fewer.Files = signed.Files[:1]
	refused("file removed", fewer, provenance.ErrDigest, "quickstart.md was removed")

	if _, err := provenance.VerifySpecSignature(ctx, sig, signed, ts, "acme", at.Add(provenance.DefaultSpecSignatureTTL)); !errors.Is(err, provenance.ErrExpired) ||
		!strings.Contains(err.Error(), "accord spec sign") {
		t.Fatalf("expired: %v", err)
	}
	if _, err := provenance.VerifySpecSignature(ctx, sig, signed, ts, "acme", at.Add(-time.Hour)); !errors.Is(err, provenance.ErrBadStatement) {
		t.Fatalf("signed in the future: %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSpecSignatureTrust(t *testing.T) {
	ctx := context.Background()
	signer, _ := provenance.GenerateKey(provenance.AlgEd25519)
	outsider, _ := provenance.GenerateKey("")
	ts := provenance.NewTrustStore()
	if _, err := ts.Add(signer.PublicPEM(), "alice", "spec:acme"); err != nil {
		t.Fatal(err)
	}
	b := provenance.SpecBundle{DocumentDigest: provenance.Digest([]byte("# Train\n"))}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	now := at.Add(time.Minute)
	sig := signBundle(t, signer, b, "acme", at, time.Hour)
	if _, err := provenance.VerifySpecSignature(ctx, sig, b, ts, "globex", now); !errors.Is(err, provenance.ErrUntrusted) {
		t.Fatalf("other tenant: %v", err)
	}
	bad := signBundle(t, outsider, b, "acme", at, time.Hour)
	if _, err := provenance.VerifySpecSignature(ctx, bad, b, ts, "acme", now); !errors.Is(err, provenance.ErrSignature) {
		t.Fatalf("outsider: %v", err)
	}
	if _, err := provenance.VerifySpecSignature(ctx, []byte("{"), b, ts, "acme", now); !errors.Is(err, provenance.ErrBadEnvelope) {
		t.Fatalf("junk signature: %v", err)
	}
	// A key trusted for every tenant still cannot move a signature made for
	// one tenant to another.
	ts.Add(outsider.PublicPEM(), "ops", "spec:*")
	if _, err := provenance.VerifySpecSignature(ctx, bad, b, ts, "acme", now); err != nil {
		t.Fatalf("spec:* key: %v", err)
	}
	if _, err := provenance.VerifySpecSignature(ctx, bad, b, ts, "globex", now); !errors.Is(err, provenance.ErrUntrusted) ||
		!strings.Contains(err.Error(), `signed for tenant "acme"`) {
		t.Fatalf("signature replayed for another tenant: %v", err)
	}
	// Lifetimes are bounded at signing.
	for _, ttl := range []time.Duration{0, -time.Hour, provenance.MaxSpecSignatureTTL + time.Hour} {
		if _, err := provenance.SignSpec(ctx, signer, provenance.SpecBundlePredicate{Tenant: "acme", DocumentDigest: b.DocumentDigest,
			SignedAt: at, NotAfter: at.Add(ttl)}); !errors.Is(err, provenance.ErrBadStatement) {
			t.Errorf("ttl %s: %v", ttl, err)
		}
	}
}

// TestSpecSignatureLegacyRefused: a root-only signature of the old format
// verifies cryptographically but is refused with a hint to re-sign.
func TestSpecSignatureLegacyRefused(t *testing.T) {
	ctx := context.Background()
	signer, _ := provenance.GenerateKey(provenance.AlgEd25519)
	ts := provenance.NewTrustStore()
	if _, err := ts.Add(signer.PublicPEM(), "alice", "spec:acme"); err != nil {
		t.Fatal(err)
	}
	doc := []byte("# Train\n")
	d := provenance.Digest(doc)
	pred, _ := json.Marshal(map[string]string{"document_digest": d, "name": "train.md"})
	payload, _ := json.Marshal(provenance.Statement{
		Type:          ita.StatementTypeUri,
		Subject:       []provenance.RawSubject{{Name: "train.md", Digest: map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")}}},
		PredicateType: provenance.PredicateTypePrefix + "spec-signature/v1",
		Predicate:     pred,
	})
	sig, err := provenance.SignEnvelope(ctx, signer, provenance.PayloadTypeInToto, payload)
	if err != nil {
		t.Fatal(err)
	}
	_, err = provenance.VerifySpecSignature(ctx, sig, provenance.SpecBundle{DocumentDigest: d}, ts, "acme", time.Now())
	if !errors.Is(err, provenance.ErrLegacySpecSignature) || !strings.Contains(err.Error(), "re-sign with `accord spec sign") {
		t.Fatalf("legacy signature: %v, want a refusal that says to re-sign", err)
	}
}
