package embedded_test

import (
	"context"
	"errors"
	"testing"

	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
)

func open(t testing.TB, dir string, o embedded.Options) *embedded.Log {
	t.Helper()
	l, err := embedded.Open(context.Background(), dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

func TestSuite(t *testing.T) {
	tlogtest.Run(t, func(t *testing.T) tlog.Log { return open(t, t.TempDir(), embedded.Options{}) })
}

func TestPersistsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, embedded.Options{})
	f := tlogtest.NewFixture(t, nil)
	e, err := l.Upload(ctx, f.Envelope, f.Key.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	pub1, _ := l.PublicKey(ctx)
	if _, err := embedded.Open(ctx, dir, embedded.Options{}); !errors.Is(err, embedded.ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	ro := open(t, dir, embedded.Options{ReadOnly: true})
	if g, err := ro.Get(ctx, e.UUID); err != nil || *g.LogIndex != *e.LogIndex {
		t.Fatalf("read-only Get: %v", err)
	}
	if _, err := ro.Upload(ctx, f.Envelope, f.Key.PublicPEM()); !errors.Is(err, embedded.ErrReadOnly) {
		t.Fatalf("read-only upload: %v", err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}

	l2 := open(t, dir, embedded.Options{})
	pub2, _ := l2.PublicKey(ctx)
	if string(pub1) != string(pub2) {
		t.Fatal("log key changed across restart")
	}
	g, err := l2.Get(ctx, e.UUID)
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	tlogtest.VerifyEntry(t, ctx, l2, g, f.Envelope)
	again, err := l2.Upload(ctx, f.Envelope, f.Key.PublicPEM())
	if err != nil || *again.LogIndex != *e.LogIndex {
		t.Fatalf("re-upload after restart: %v (index %v, want %d)", err, again, *e.LogIndex)
	}
	f2 := tlogtest.NewFixture(t, nil)
	e2, err := l2.Upload(ctx, f2.Envelope, f2.Key.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	if *e2.LogIndex != *e.LogIndex+1 {
		t.Fatalf("next index %d, want %d", *e2.LogIndex, *e.LogIndex+1)
	}
}

func BenchmarkAppend(b *testing.B) {
	l := open(b, b.TempDir(), embedded.Options{})
	tlogtest.BenchmarkAppend(b, l)
}
