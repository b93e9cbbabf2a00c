package witness_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance/witness"
)

// countCosigned parses a Keeper's note, checks the log's signature on it
// and counts the trusted cosignatures.
func countCosigned(t *testing.T, l *testLog, c witness.Cosigned, trusted ...*witness.CosignatureVerifier) witness.Tally {
	t.Helper()
	n, err := witness.ParseNote(c.Note)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := l.PublicKey(context.Background())
	v, err := witness.LogVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Verified(v) {
		t.Fatal("the log's signature on the cosigned note does not verify")
	}
	cp, err := witness.ParseCheckpoint(n.Text)
	if err != nil || int64(cp.Size) != c.Size {
		t.Fatalf("checkpoint %+v, %v; keeper says size %d", cp, err, c.Size)
	}
	return witness.VerifyCosignatures(n, trusted, v.KeyHash())
}

// TestKeeperFollowsLog: a Keeper with two witnesses gets both
// cosignatures, follows the log as it grows (consistency proofs from each
// witness's size), keeps the witness that still answers when the other goes
// down, and keeps the last good checkpoint when none answers.
func TestKeeperFollowsLog(t *testing.T) {
	ctx := ctxT(t)
	l := openLog(t)
	l.grow(t, 2)
	s1, s2 := newSigner(t, "w1.test/witness"), newSigner(t, "w2.test/witness")
	_, url1 := startWitness(t, s1, filepath.Join(t.TempDir(), "w1"), l.config(t))
	w2, err := witness.New(s2, filepath.Join(t.TempDir(), "w2"), l.config(t))
	if err != nil {
		t.Fatal(err)
	}
	srv2 := startServer(t, w2)
	k, err := witness.NewKeeper(l, []string{url1, srv2.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Latest(); ok {
		t.Fatal("Latest before any round")
	}
	trusted := []*witness.CosignatureVerifier{verifierOf(t, s1), verifierOf(t, s2)}

	c, err := k.Refresh(ctx)
	if err != nil || c.Size != 2 || len(countCosigned(t, l, c, trusted...).Valid) != 2 {
		t.Fatalf("first round: size %d, %v", c.Size, err)
	}
	l.grow(t, 3)
	c, err = k.Refresh(ctx)
	if err != nil || c.Size != 5 || len(countCosigned(t, l, c, trusted...).Valid) != 2 {
		t.Fatalf("after growth: size %d, %v", c.Size, err)
	}
	if st, ok := w2.Latest(l.origin); !ok || st.Size != 5 {
		t.Fatalf("witness 2 state %+v", st)
	}

	srv2.Close()
	l.grow(t, 1)
	c, err = k.Refresh(ctx)
	if !errors.Is(err, witness.ErrUnavailable) || c.Size != 6 {
		t.Fatalf("one witness down: size %d, %v", c.Size, err)
	}
	tl := countCosigned(t, l, c, trusted...)
	if len(tl.Valid) != 1 || tl.Valid[0].Witness != "w1.test/witness" {
		t.Fatalf("one witness down: %+v", tl)
	}
	if latest, _ := k.Latest(); latest.Size != 6 || len(latest.Witnesses) != 1 {
		t.Fatalf("Latest %+v", latest)
	}

	k2, err := witness.NewKeeper(l, []string{srv2.URL}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k2.Refresh(ctx); !errors.Is(err, witness.ErrUnavailable) {
		t.Fatalf("no witness answers: %v", err)
	}
	if _, ok := k2.Latest(); ok {
		t.Fatal("Latest set although no witness cosigned")
	}
	if _, err := witness.NewKeeper(l, []string{"ftp://x"}, nil); !errors.Is(err, witness.ErrMalformed) {
		t.Fatalf("bad URL: %v", err)
	}
}

// TestKeeperRun: Run takes new entries to the witness every interval and
// stops with its context.
func TestKeeperRun(t *testing.T) {
	l := openLog(t)
	l.grow(t, 1)
	s := newSigner(t, "w1.test/witness")
	_, url := startWitness(t, s, t.TempDir(), l.config(t))
	k, err := witness.NewKeeper(l, []string{url}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { k.Run(ctx, 50*time.Millisecond); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	waitSize := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if c, ok := k.Latest(); ok && c.Size == n {
				if tl := countCosigned(t, l, c, verifierOf(t, s)); len(tl.Valid) != 1 {
					t.Fatalf("size %d: %+v", n, tl)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no cosigned checkpoint of size %d", n)
	}
	waitSize(1)
	l.grow(t, 2)
	waitSize(3)
}

// startServer serves w on loopback; the test may Close it early.
func startServer(t *testing.T, w *witness.Witness) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() { srv.Close(); w.Close() })
	return srv
}
