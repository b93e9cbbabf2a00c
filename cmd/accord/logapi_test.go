package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/rekorv1"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

// TestDevRekorAPIIsReadOnly: the Rekor API `accord dev` serves answers
// reads but refuses uploads (405), and the log does not grow; the worker
// writes to the log directly, not through this API.
func TestDevRekorAPIIsReadOnly(t *testing.T) {
	ctx := context.Background()
	l, err := embedded.Open(ctx, t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	addr, stop, err := serveRekorAPI("127.0.0.1:0", l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c, err := rekorv1.New("http://"+addr, rekorv1.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PublicKey(ctx); err != nil {
		t.Fatalf("read through the served API: %v", err)
	}
	f := tlogtest.NewFixture(t, nil)
	if _, err := c.Upload(ctx, f.Envelope, f.Key.PublicPEM()); err == nil {
		t.Fatal("an upload through the served API was accepted")
	}
	resp, err := http.Post("http://"+addr+"/api/v1/log/entries", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /api/v1/log/entries: %d, want 405", resp.StatusCode)
	}
	if info, err := l.Info(ctx); err != nil || info.TreeSize != 0 {
		t.Fatalf("the log grew through a read-only API: %+v %v", info, err)
	}
	// The worker's own handle still writes.
	if _, err := l.Upload(ctx, f.Envelope, f.Key.PublicPEM()); err != nil {
		t.Fatalf("direct upload: %v", err)
	}
}
