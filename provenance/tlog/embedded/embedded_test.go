package embedded_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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

// TestCrashRecovery simulates crashes around the append: an index whose
// commit record was lost (the entry is in the tree) and a pending record
// whose entry never reached the tree.
func TestCrashRecovery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := open(t, dir, embedded.Options{})
	f1, f2 := tlogtest.NewFixture(t, nil), tlogtest.NewFixture(t, nil)
	e1, err := l.Upload(ctx, f1.Envelope, f1.Key.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	e2, err := l.Upload(ctx, f2.Envelope, f2.Key.PublicPEM())
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	idxPath := filepath.Join(dir, "index.jsonl")
	raw, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if strings.Contains(line, `"op":"commit"`) {
			continue // every commit record lost
		}
		kept = append(kept, line)
	}
	// A pending upload that never reached tessera, and a torn last line.
	kept = append(kept, `{"op":"pending","uuid":"`+strings.Repeat("cd", 32)+`","time":1}`, `{"op":"pend`)
	if err := os.WriteFile(idxPath, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}

	l2 := open(t, dir, embedded.Options{})
	for _, c := range []struct {
		f tlogtest.Fixture
		e *tlog.Entry
	}{{f1, e1}, {f2, e2}} {
		g, err := l2.Get(ctx, c.e.UUID)
		if err != nil {
			t.Fatalf("Get after recovery: %v", err)
		}
		if *g.LogIndex != *c.e.LogIndex {
			t.Fatalf("index %d after recovery, want %d", *g.LogIndex, *c.e.LogIndex)
		}
		again, err := l2.Upload(ctx, c.f.Envelope, c.f.Key.PublicPEM())
		if err != nil || *again.LogIndex != *c.e.LogIndex {
			t.Fatalf("re-upload after recovery: %v", err)
		}
	}
	if _, err := l2.Get(ctx, strings.Repeat("cd", 32)); !errors.Is(err, tlog.ErrNotFound) {
		t.Fatalf("never-appended entry: %v", err)
	}
	info, err := l2.Info(ctx)
	if err != nil || info.TreeSize != 2 {
		t.Fatalf("tree size %v after recovery (%v), want 2: an entry was duplicated or lost", info, err)
	}
}
