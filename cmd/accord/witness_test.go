package main

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
	"github.com/accordmesh/accord/provenance/witness"
)

// TestAuditVerifyWitnesses: `accord audit verify --witnesses N` passes with
// one trusted cosignature for N=1 and fails (exit 7) for N=2, naming the
// stage "log", the count and the witness.
func TestAuditVerifyWitnesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	l, err := embedded.Open(ctx, filepath.Join(dir, "tlog"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	store, key := tlogtest.RecordJob(t, l, "job-cli-witness")
	r, err := provenance.BuildReceipt(ctx, "job-cli-witness", store, l)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := l.PublicKey(ctx)
	info, _ := l.Info(ctx)
	origin := strings.SplitN(info.SignedCheckpoint, "\n", 2)[0]
	vkeys := make([]string, 2)
	var url string
	for i, name := range []string{"w1.test/witness", "w2.test/witness"} {
		skey, err := witness.GenerateKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := witness.NewSigner(skey)
		vkeys[i] = filepath.Join(dir, name[:2]+".vkey")
		if err := os.WriteFile(vkeys[i], []byte("# "+name+"\n"+s.VerifierKey()+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			w, err := witness.New(s, filepath.Join(dir, "state"), witness.Log{Origin: origin, Key: pub})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(w.Handler())
			defer func() { srv.Close(); w.Close() }()
			url = srv.URL
		}
	}
	if err := r.Witness(ctx, l, []string{url}); err != nil {
		t.Fatal(err)
	}
	receipt := filepath.Join(dir, "receipt.json")
	if err := r.WriteFile(receipt); err != nil {
		t.Fatal(err)
	}
	trust := provenance.NewTrustStore()
	trust.Add(key.PublicPEM(), "worker", provenance.ScopeStage)
	trust.Add(pub, "log", provenance.ScopeLog)
	trustFile := filepath.Join(dir, "trust.json")
	if err := trust.Save(trustFile); err != nil {
		t.Fatal(err)
	}
	args := []string{"audit", "verify", receipt, "--trust", trustFile, "--witness-key", vkeys[0], "--witness-key", vkeys[1], "--json"}

	if res := run(t, "", append(args, "--witnesses", "1")...); res.code != 0 || !strings.Contains(res.lastLine(), `"witness":"w1.test/witness"`) {
		t.Fatalf("--witnesses 1: exit %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	res := run(t, "", append(args, "--witnesses", "2")...)
	want := `{"stage":"log","check":"witness","message":"1 valid cosignatures from trusted witnesses (w1.test/witness), 2 required`
	if res.code != 7 || !strings.Contains(res.stdout, want) {
		t.Fatalf("--witnesses 2: exit %d, want 7 and %q\n%s%s", res.code, want, res.stdout, res.stderr)
	}
	if res := run(t, "", "audit", "verify", receipt, "--trust", trustFile, "--witnesses", "1"); res.code != 2 {
		t.Fatalf("--witnesses without --witness-key: exit %d, want 2 (usage)", res.code)
	}
}
