package provenance_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
	"github.com/accordmesh/accord/provenance/witness"
)

func startTestWitness(t *testing.T, name string, l *embedded.Log) (url, vkey string) {
	t.Helper()
	ctx := context.Background()
	skey, err := witness.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := witness.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	info, err := l.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := l.PublicKey(ctx)
	origin := strings.SplitN(info.SignedCheckpoint, "\n", 2)[0]
	w, err := witness.New(s, t.TempDir(), witness.Log{Origin: origin, Key: pub})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() { srv.Close(); w.Close() })
	return srv.URL, s.VerifierKey()
}

// TestAuditWitnesses: a receipt witnessed by one witness passes an audit
// requiring one trusted cosignature and fails one requiring two, with a
// "log" problem that counts them and names the witness; the entries'
// older checkpoints are proven prefixes of the witnessed one.
func TestAuditWitnesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := embedded.Open(ctx, filepath.Join(t.TempDir(), "tlog"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	job := "job-witnessed-1"
	store, key := tlogtest.RecordJob(t, l, job)
	r, err := provenance.BuildReceipt(ctx, job, store, l)
	if err != nil {
		t.Fatal(err)
	}
	trust := provenance.NewTrustStore()
	trust.Add(key.PublicPEM(), "worker", provenance.ScopeStage)
	pub, _ := l.PublicKey(ctx)
	trust.Add(pub, "log", provenance.ScopeLog)

	// Without a witnessed checkpoint: fine unless witnesses are required.
	if _, err := provenance.Verify(ctx, r, trust, provenance.VerifyOptions{}); err != nil {
		t.Fatalf("unwitnessed receipt: %v", err)
	}
	rep, err := provenance.Verify(ctx, r, trust, provenance.VerifyOptions{Witnesses: 1})
	if err == nil || !hasProblem(rep, "log", "witness", "0 valid cosignatures, 1 required") {
		t.Fatalf("unwitnessed receipt with --witnesses 1: %v", err)
	}

	// The log grows after the entries were proved: the receipt carries
	// consistency proofs to the witnessed checkpoint.
	for range 3 {
		f := tlogtest.NewFixture(t, nil)
		if _, err := l.Upload(ctx, f.Envelope, f.Key.PublicPEM()); err != nil {
			t.Fatal(err)
		}
	}
	url1, vkey1 := startTestWitness(t, "w1.test/witness", l)
	_, vkey2 := startTestWitness(t, "w2.test/witness", l) // trusted, never asked
	if err := r.Witness(ctx, l, []string{url1}); err != nil {
		t.Fatalf("Witness: %v", err)
	}
	if r.Witnessed == nil || len(r.Witnessed.Proofs) == 0 {
		t.Fatalf("witnessed checkpoint without consistency proofs: %+v", r.Witnessed)
	}
	path := filepath.Join(t.TempDir(), "receipt.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	if r, err = provenance.ReadReceipt(path); err != nil {
		t.Fatal(err)
	}
	keys := []string{vkey1, vkey2}
	rep, err = provenance.Verify(ctx, r, trust, provenance.VerifyOptions{Witnesses: 1, WitnessKeys: keys})
	if err != nil {
		t.Fatalf("--witnesses 1: %v", err)
	}
	if len(rep.Witnesses) != 1 || rep.Witnesses[0].Witness != "w1.test/witness" {
		t.Fatalf("report witnesses %+v", rep.Witnesses)
	}
	rep, err = provenance.Verify(ctx, r, trust, provenance.VerifyOptions{Witnesses: 2, WitnessKeys: keys})
	if err == nil || !hasProblem(rep, "log", "witness", "1 valid cosignatures from trusted witnesses (w1.test/witness), 2 required") {
		t.Fatalf("--witnesses 2: %v", err)
	}
	// Cosignatures of witnesses not in WitnessKeys do not count.
	if _, err := provenance.Verify(ctx, r, trust, provenance.VerifyOptions{Witnesses: 1, WitnessKeys: []string{vkey2}}); err == nil {
		t.Fatal("cosignature of an untrusted witness counted")
	}

	// A forged cosignature line (altered signature) is not counted.
	forged := *r
	w := *r.Witnessed
	lines := strings.Split(strings.TrimSuffix(w.Checkpoint, "\n"), "\n")
	// Flip a bit of the decoded signature, not of its base64 text: a
	// flipped character may not be base64 at all (a malformed line, not a
	// forged one).
	last := lines[len(lines)-1]
	cut := strings.LastIndexByte(last, ' ')
	sig, err := base64.StdEncoding.DecodeString(last[cut+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)-1] ^= 0x01
	lines[len(lines)-1] = last[:cut+1] + base64.StdEncoding.EncodeToString(sig)
	w.Checkpoint = strings.Join(lines, "\n") + "\n"
	forged.Witnessed = &w
	rep, err = provenance.Verify(ctx, &forged, trust, provenance.VerifyOptions{Witnesses: 1, WitnessKeys: keys})
	if err == nil || !hasProblem(rep, "log", "witness", "0 valid cosignatures") {
		t.Fatalf("forged cosignature: %v", err)
	}

	// A consistency proof that does not hold is a problem even with no
	// witnesses required.
	bad := *r
	w = *r.Witnessed
	w.Proofs = append([]provenance.ConsistencyProof(nil), w.Proofs...)
	w.Proofs[0].Hashes = append([]string{strings.Repeat("00", 32)}, w.Proofs[0].Hashes[1:]...)
	bad.Witnessed = &w
	if rep, err := provenance.Verify(ctx, &bad, trust, provenance.VerifyOptions{}); err == nil || !hasProblem(rep, "log", "witness", "not proven a prefix") {
		t.Fatalf("altered consistency proof: %v", err)
	}
}

func hasProblem(rep *provenance.Report, stage, check, substr string) bool {
	if rep == nil {
		return false
	}
	for _, p := range rep.Problems {
		if p.Stage == stage && p.Check == check && strings.Contains(p.Message, substr) {
			return true
		}
	}
	return false
}
