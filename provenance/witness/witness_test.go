package witness_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/rekor/pkg/util"
	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/provenance/tlog/tlogtest"
	"github.com/accordmesh/accord/provenance/witness"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newSigner(t testing.TB, name string) *witness.Signer {
	t.Helper()
	skey, err := witness.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := witness.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifierOf(t testing.TB, s *witness.Signer) *witness.CosignatureVerifier {
	t.Helper()
	v, err := witness.NewCosignatureVerifier(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// testLog is an embedded log with its directory (for its private key).
type testLog struct {
	*embedded.Log
	dir    string
	origin string
}

func openLog(t *testing.T) *testLog {
	t.Helper()
	dir := t.TempDir()
	l, err := embedded.Open(context.Background(), dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	tl := &testLog{Log: l, dir: dir}
	tl.origin = strings.SplitN(tl.info(t).SignedCheckpoint, "\n", 2)[0]
	return tl
}

func (l *testLog) grow(t *testing.T, n int) {
	t.Helper()
	for range n {
		f := tlogtest.NewFixture(t, nil)
		if _, err := l.Upload(ctxT(t), f.Envelope, f.Key.PublicPEM()); err != nil {
			t.Fatal(err)
		}
	}
}

func (l *testLog) info(t *testing.T) *tlog.Info {
	t.Helper()
	info, err := l.Info(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// sign signs a checkpoint of any size and root with the log's own key: what
// a misbehaving log operator can do.
func (l *testLog) sign(t *testing.T, size uint64, root []byte) []byte {
	t.Helper()
	key, err := provenance.LoadKey(filepath.Join(l.dir, "log.key"))
	if err != nil {
		t.Fatal(err)
	}
	host, treeID, _ := strings.Cut(l.origin, " - ")
	var id int64
	fmt.Sscan(treeID, &id)
	cp, err := util.CreateAndSignCheckpoint(context.Background(), host, id, size, root, key.Signer())
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func (l *testLog) config(t *testing.T) witness.Log {
	pub, err := l.PublicKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return witness.Log{Origin: l.origin, Key: pub}
}

func startWitness(t *testing.T, s *witness.Signer, dir string, logs ...witness.Log) (*witness.Witness, string) {
	t.Helper()
	w, err := witness.New(s, dir, logs...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(func() { srv.Close(); w.Close() })
	return w, srv.URL
}

func tally(t *testing.T, checkpoint []byte, sigs []witness.Signature, trusted ...*witness.CosignatureVerifier) witness.Tally {
	t.Helper()
	n, err := witness.ParseNote(witness.AppendSignatures(checkpoint, sigs))
	if err != nil {
		t.Fatal(err)
	}
	return witness.VerifyCosignatures(n, trusted, n.Sigs[0].Hash)
}

// TestCosignatureMatchesSpec checks the format against the C2SP text
// (tlog-cosignature v1) computed by hand here, and against the independent
// implementation in github.com/transparency-dev/formats/note, both ways.
func TestCosignatureMatchesSpec(t *testing.T) {
	skey, err := witness.GenerateKey(rand.Reader, "witness.example/w1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := witness.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	body := "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
	sig := s.Cosign(body)

	// By hand: key ID = SHA-256(name || "\n" || 0x04 || pub)[:4]; signature =
	// u64 BE timestamp || Ed25519("cosignature/v1\ntime <t>\n" || body).
	vk := strings.SplitN(s.VerifierKey(), "+", 3)
	raw, _ := base64.StdEncoding.DecodeString(vk[2])
	if raw[0] != 0x04 || len(raw) != 33 {
		t.Fatalf("vkey type byte %#x length %d, want 0x04 and 33", raw[0], len(raw))
	}
	pub := ed25519.PublicKey(raw[1:])
	h := sha256.Sum256(append([]byte("witness.example/w1\n\x04"), pub...))
	if got, want := sig.Hash, binary.BigEndian.Uint32(h[:4]); got != want {
		t.Fatalf("key ID %08x, want %08x", got, want)
	}
	if vk[1] != fmt.Sprintf("%08x", sig.Hash) {
		t.Fatalf("vkey hash %s, key ID %08x", vk[1], sig.Hash)
	}
	if len(sig.Sig) != 8+64 {
		t.Fatalf("signature is %d bytes, want 72", len(sig.Sig))
	}
	ts := binary.BigEndian.Uint64(sig.Sig)
	if d := time.Since(time.Unix(int64(ts), 0)); d < 0 || d > time.Minute {
		t.Fatalf("timestamp %d is not now", ts)
	}
	msg := fmt.Sprintf("cosignature/v1\ntime %d\n%s", ts, body)
	if !ed25519.Verify(pub, []byte(msg), sig.Sig[8:]) {
		t.Fatal("signature does not verify over the spec's message")
	}
	line := sig.Line()
	if !strings.HasPrefix(line, "— witness.example/w1 ") || !strings.HasSuffix(line, "\n") {
		t.Fatalf("signature line %q", line)
	}

	// The other implementation accepts ours...
	fv, err := fnote.NewVerifierForCosignatureV1(s.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	signed := []byte(body + "\n" + line)
	if _, err := note.Open(signed, note.VerifierList(fv)); err != nil {
		t.Fatalf("formats/note rejects our cosignature: %v", err)
	}
	// ...and ours accepts theirs.
	fs, err := fnote.NewSignerForCosignatureV1(skey)
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := note.Sign(&note.Note{Text: body}, fs)
	if err != nil {
		t.Fatal(err)
	}
	n, err := witness.ParseNote(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if got := witness.VerifyCosignatures(n, []*witness.CosignatureVerifier{verifierOf(t, s)}, 0); len(got.Valid) != 1 {
		t.Fatalf("formats/note's cosignature not counted: %+v", got)
	}
}

// TestWitnessFollowsEmbeddedLog: the witness cosigns a real embedded log's
// checkpoints as it grows, refuses rollbacks and forks, and keeps its state
// across a restart.
func TestWitnessFollowsEmbeddedLog(t *testing.T) {
	ctx := ctxT(t)
	l := openLog(t)
	l.grow(t, 2)
	s := newSigner(t, "witness.test/w1")
	v := verifierOf(t, s)
	stateDir := t.TempDir()
	w, url := startWitness(t, s, stateDir, l.config(t))

	// First sight: old 0, empty proof.
	sigs, info1, err := witness.Update(ctx, url, l, nil, 0)
	if err != nil {
		t.Fatalf("first cosigning: %v", err)
	}
	if tl := tally(t, []byte(info1.SignedCheckpoint), sigs, v); len(tl.Valid) != 1 || tl.Valid[0].Witness != "witness.test/w1" {
		t.Fatalf("cosignature of size %d not valid: %+v", info1.TreeSize, tl)
	}

	// The log grows; the client does not know the witness's size (old 0):
	// the witness answers 409 with its size and Update retries with a proof.
	l.grow(t, 3)
	sigs, info2, err := witness.Update(ctx, url, l, nil, 0)
	if err != nil {
		t.Fatalf("cosigning after growth: %v", err)
	}
	if info2.TreeSize != info1.TreeSize+3 {
		t.Fatalf("cosigned size %d, want %d", info2.TreeSize, info1.TreeSize+3)
	}
	if tl := tally(t, []byte(info2.SignedCheckpoint), sigs, v); len(tl.Valid) != 1 {
		t.Fatalf("cosignature of size %d not valid: %+v", info2.TreeSize, tl)
	}
	if st, _ := w.Latest(l.origin); st.Size != uint64(info2.TreeSize) {
		t.Fatalf("witness state size %d, want %d", st.Size, info2.TreeSize)
	}
	size2 := uint64(info2.TreeSize)

	// Rollback: the old, smaller checkpoint, from old size 0 → 409 with the
	// witness's size; from the witness's size → 400 (old beyond the checkpoint).
	_, err = witness.Cosign(ctx, url, []byte(info1.SignedCheckpoint), nil, 0)
	var conflict *witness.ConflictError
	if !errors.As(err, &conflict) || conflict.Size != size2 {
		t.Fatalf("rollback with old 0: %v, want 409 with size %d", err, size2)
	}
	if _, err = witness.Cosign(ctx, url, []byte(info1.SignedCheckpoint), nil, size2); !errors.Is(err, witness.ErrMalformed) {
		t.Fatalf("rollback with old %d: %v, want 400", size2, err)
	}

	// Fork at the same size: another root, signed by the log's key → 409.
	root2, _ := base64.StdEncoding.DecodeString(strings.Split(info2.SignedCheckpoint, "\n")[2])
	other := bytes.Repeat([]byte{0xab}, 32)
	if _, err = witness.Cosign(ctx, url, l.sign(t, size2, other), nil, size2); !errors.As(err, &conflict) || conflict.Size != size2 {
		t.Fatalf("fork at the same size: %v, want 409", err)
	}
	// Fork at a larger size: the log's real proof does not reach a fake root → 422.
	l.grow(t, 2)
	info3 := l.info(t)
	hexProof, err := l.ConsistencyProof(ctx, int64(size2), info3.TreeSize)
	if err != nil {
		t.Fatal(err)
	}
	proof := decodeHex(t, hexProof)
	if _, err = witness.Cosign(ctx, url, l.sign(t, uint64(info3.TreeSize), other), proof, size2); !errors.Is(err, witness.ErrProof) {
		t.Fatalf("fork at a larger size: %v, want 422", err)
	}
	// An altered proof for the real checkpoint → 422 too.
	bad := decodeHex(t, hexProof)
	bad[0][0] ^= 1
	if _, err = witness.Cosign(ctx, url, []byte(info3.SignedCheckpoint), bad, size2); !errors.Is(err, witness.ErrProof) {
		t.Fatalf("altered proof: %v, want 422", err)
	}
	if st, _ := w.Latest(l.origin); st.Size != size2 || !bytes.Equal(st.Root, root2) {
		t.Fatalf("refused requests changed the state: size %d", st.Size)
	}

	// A second witness on the same state directory is refused.
	if _, err := witness.New(s, stateDir, l.config(t)); !errors.Is(err, witness.ErrLocked) {
		t.Fatalf("second witness on one state dir: %v, want ErrLocked", err)
	}

	// Restart: the new witness remembers size2 and still refuses the rollback.
	w.Close()
	w2, url2 := startWitness(t, s, stateDir, l.config(t))
	if st, ok := w2.Latest(l.origin); !ok || st.Size != size2 {
		t.Fatalf("restarted witness has size %d, want %d", st.Size, size2)
	}
	if _, err = witness.Cosign(ctx, url2, []byte(info1.SignedCheckpoint), nil, 0); !errors.As(err, &conflict) || conflict.Size != size2 {
		t.Fatalf("rollback after restart: %v, want 409 with size %d", err, size2)
	}
	if _, err = witness.Cosign(ctx, url2, l.sign(t, size2, other), nil, size2); !errors.As(err, &conflict) {
		t.Fatalf("fork after restart: %v, want 409", err)
	}
	if _, _, err := witness.Update(ctx, url2, l, info3, size2); err != nil {
		t.Fatalf("restarted witness refuses the real growth: %v", err)
	}
}

func decodeHex(t *testing.T, hs []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(hs))
	for i, h := range hs {
		b := make([]byte, len(h)/2)
		if _, err := fmt.Sscanf(h, "%x", &b); err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// TestWitnessRefusals: unknown origins (404), checkpoints not signed by the
// log (403), malformed and oversized requests (400, 413).
func TestWitnessRefusals(t *testing.T) {
	ctx := ctxT(t)
	l := openLog(t)
	l.grow(t, 1)
	_, url := startWitness(t, newSigner(t, "w.test"), t.TempDir(), l.config(t))
	info := l.info(t)

	other := openLog(t) // same origin host, another tree ID and key
	if _, err := witness.Cosign(ctx, url, []byte(other.info(t).SignedCheckpoint), nil, 0); !errors.Is(err, witness.ErrUnknownLog) {
		t.Fatalf("unknown origin: %v, want 404", err)
	}
	// The right origin signed by another key.
	key, _ := provenance.GenerateKey("")
	host, treeID, _ := strings.Cut(l.origin, " - ")
	var id int64
	fmt.Sscan(treeID, &id)
	root, _ := base64.StdEncoding.DecodeString(strings.Split(info.SignedCheckpoint, "\n")[2])
	forged, _ := util.CreateAndSignCheckpoint(ctx, host, id, uint64(info.TreeSize), root, key.Signer())
	if _, err := witness.Cosign(ctx, url, forged, nil, 0); !errors.Is(err, witness.ErrLogSignature) {
		t.Fatalf("checkpoint signed by another key: %v, want 403", err)
	}
	for name, body := range map[string]string{
		"no old line":    "\n" + info.SignedCheckpoint,
		"leading zero":   "old 01\n\n" + info.SignedCheckpoint,
		"bad proof line": "old 0\nnot-base64!\n\n" + info.SignedCheckpoint,
		"no blank line":  "old 0\n",
		"proof from 0":   "old 0\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n\n" + info.SignedCheckpoint,
		"unsigned":       "old 0\n\n" + strings.SplitN(info.SignedCheckpoint, "\n\n", 2)[0] + "\n",
	} {
		resp, err := http.Post(url+"/add-checkpoint", "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", name, resp.StatusCode)
		}
	}
	resp, err := http.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(make([]byte, witness.MaxRequestSize+1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: HTTP %d, want 413", resp.StatusCode)
	}
}

// TestForgedCosignaturesNotCounted: a cosignature with an altered signature
// and one by an untrusted key (same witness name) are not counted.
func TestForgedCosignaturesNotCounted(t *testing.T) {
	ctx := ctxT(t)
	l := openLog(t)
	l.grow(t, 1)
	good, impostor := newSigner(t, "witness.test/w1"), newSigner(t, "witness.test/w1")
	_, url := startWitness(t, good, t.TempDir(), l.config(t))
	sigs, info, err := witness.Update(ctx, url, l, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	cp := []byte(info.SignedCheckpoint)
	text := strings.SplitN(info.SignedCheckpoint, "\n\n", 2)[0] + "\n"
	forged := sigs[0]
	forged.Sig = append([]byte(nil), forged.Sig...)
	forged.Sig[20] ^= 0x01
	wrongKey := impostor.Cosign(text)
	v := verifierOf(t, good)

	if tl := tally(t, cp, []witness.Signature{forged, wrongKey}, v); len(tl.Valid) != 0 || len(tl.Rejected) != 2 {
		t.Fatalf("forged and wrong-key cosignatures: %+v, want 0 valid, 2 rejected", tl)
	}
	if tl := tally(t, cp, []witness.Signature{forged, wrongKey, sigs[0], sigs[0]}, v); len(tl.Valid) != 1 {
		t.Fatalf("with the real cosignature twice: %+v, want 1 valid", tl)
	}
	// Another checkpoint's cosignature does not carry over.
	l.grow(t, 1)
	info2 := l.info(t)
	if tl := tally(t, []byte(info2.SignedCheckpoint), sigs, v); len(tl.Valid) != 0 {
		t.Fatalf("cosignature moved to another checkpoint counted: %+v", tl)
	}
}
