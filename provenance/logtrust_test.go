package provenance_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/rekorapi"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
)

// TestRekorLogKeyIsPinned: a Rekor log whose key is not in the trust store
// is refused, by readers and writers, with the key's ID and the commands
// that trust it; nothing is trusted on the way. Once trusted for "log" the
// same log opens.
func TestRekorLogKeyIsPinned(t *testing.T) {
	ctx := context.Background()
	served, err := embedded.Open(ctx, t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { served.Close(context.Background()) })
	srv := httptest.NewServer(rekorapi.NewHandler(served))
	t.Cleanup(srv.Close)
	pem, err := served.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := provenance.ParsePublicKeyPEM(pem)
	id, _ := provenance.Fingerprint(pub)

	home := t.TempDir()
	cfg := tlog.Config{Kind: tlog.KindRekor, URL: srv.URL, Insecure: true}
	for _, readOnly := range []bool{true, false} {
		cfg.ReadOnly = readOnly
		_, err := provenance.OpenLocal(ctx, home, cfg)
		if !errors.Is(err, provenance.ErrUntrusted) {
			t.Fatalf("read-only %v: untrusted log opened: %v", readOnly, err)
		}
		for _, s := range []string{id, "accord keys trust rekor.pub --scope log", srv.URL + "/api/v1/log/publicKey"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("refusal %q does not say %q", err, s)
			}
		}
	}
	ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
	if err != nil {
		t.Fatal(err)
	}
	if ts.Allowed(id, provenance.ScopeLog) {
		t.Fatal("a refused log's key was trusted")
	}
	// A key trusted for another scope is not a log key.
	if _, err := ts.Add(pem, "not a log", provenance.ScopeStage); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(provenance.DefaultTrustPath(home)); err != nil {
		t.Fatal(err)
	}
	if _, err := provenance.OpenLocal(ctx, home, cfg); !errors.Is(err, provenance.ErrUntrusted) {
		t.Fatalf("a stage key opened as a log key: %v", err)
	}

	// `accord keys trust rekor.pub --scope log --name rekor`.
	if _, err := ts.Add(pem, "rekor", provenance.ScopeLog); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(provenance.DefaultTrustPath(home)); err != nil {
		t.Fatal(err)
	}
	loc, err := provenance.OpenLocal(ctx, home, cfg)
	if err != nil {
		t.Fatalf("trusted log: %v", err)
	}
	loc.Close(ctx)

	// Plain HTTP still needs Insecure, whatever the trust store says.
	cfg.Insecure = false
	if _, err := provenance.OpenLocal(ctx, home, cfg); !errors.Is(err, rekorv1.ErrInsecureURL) {
		t.Fatalf("http:// without Insecure: %v", err)
	}
}

// TestEmbeddedLogTrustsItsOwnKey: the embedded log's key was made with the
// log under the home, so OpenLocal records it for "log" without a prompt.
func TestEmbeddedLogTrustsItsOwnKey(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	loc, err := provenance.OpenLocal(ctx, home, tlog.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close(ctx)
	pem, err := loc.Log.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := provenance.ParsePublicKeyPEM(pem)
	id, _ := provenance.Fingerprint(pub)
	ts, err := provenance.LoadTrustStore(filepath.Join(home, provenance.TrustFile))
	if err != nil {
		t.Fatal(err)
	}
	if !ts.Allowed(id, provenance.ScopeLog) {
		t.Fatalf("embedded log key %s not trusted: %+v", id, ts.Keys())
	}
}
