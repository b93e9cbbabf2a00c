// Package tlogtest is the conformance suite every tlog.Log backend passes:
// the embedded log runs it in its unit tests and the Rekor v1 backend runs it
// against a real rekor-server.
package tlogtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sigstore/rekor/pkg/util"
	"github.com/sigstore/rekor/pkg/verify"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
)

// Run runs the suite. newLog returns the backend under test; it may return
// the same shared log each time (entries are made unique per test run).
func Run(t *testing.T, newLog func(t *testing.T) tlog.Log) {
	t.Run("UploadVerifies", func(t *testing.T) { testUploadVerifies(t, newLog(t)) })
	t.Run("UploadIdempotent", func(t *testing.T) { testIdempotent(t, newLog(t)) })
	t.Run("GetAndGetByIndex", func(t *testing.T) { testGet(t, newLog(t)) })
	t.Run("Search", func(t *testing.T) { testSearch(t, newLog(t)) })
	t.Run("InfoAndConsistency", func(t *testing.T) { testInfo(t, newLog(t)) })
	t.Run("RejectsBadEnvelope", func(t *testing.T) { testReject(t, newLog(t)) })
	t.Run("ConcurrentUploads", func(t *testing.T) { testConcurrent(t, newLog(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newLog(t)) })
	t.Run("ReceiptAudit", func(t *testing.T) { testReceipt(t, newLog(t)) })
}

// Fixture is a signed statement ready to upload.
type Fixture struct {
	Key      *provenance.Key
	JobID    string
	Artifact string // sha256:<hex>
	Envelope []byte
}

// NewFixture signs a fresh in-toto statement with a job subject
// (provenance.JobSubject) and a random artifact subject.
func NewFixture(t testing.TB, key *provenance.Key) Fixture {
	t.Helper()
	if key == nil {
		var err error
		if key, err = provenance.GenerateKey(""); err != nil {
			t.Fatal(err)
		}
	}
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	job := "job-tlogtest-" + hex.EncodeToString(rnd[:8])
	artifact := provenance.Digest(rnd[:])
	st := map[string]any{
		"_type": "https://in-toto.io/Statement/v1",
		"subject": []map[string]any{
			provenance.JobSubject(job).AsMap(),
			{"name": "artifact", "digest": map[string]string{"sha256": strings.TrimPrefix(artifact, "sha256:")}},
		},
		"predicateType": "https://accord.dev/attestation/tlogtest/v1",
		"predicate":     map[string]any{"jobId": job},
	}
	payload, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	env, err := provenance.SignEnvelope(context.Background(), key, provenance.PayloadTypeInToto, payload)
	if err != nil {
		t.Fatal(err)
	}
	return Fixture{Key: key, JobID: job, Artifact: artifact, Envelope: env}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// VerifyEntry checks e with rekor's verify.VerifyLogEntry against the log's
// public key, and that its body is the intoto entry for envelope.
func VerifyEntry(t testing.TB, ctx context.Context, l tlog.Log, e *tlog.Entry, envelope []byte) {
	t.Helper()
	pemKey, err := l.PublicKey(ctx)
	if err != nil {
		t.Fatalf("PublicKey: %v", err)
	}
	pub, err := provenance.ParsePublicKeyPEM(pemKey)
	if err != nil {
		t.Fatalf("log public key: %v", err)
	}
	v, err := provenance.LoadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify.VerifyLogEntry(ctx, &e.LogEntryAnon, v); err != nil {
		t.Fatalf("VerifyLogEntry: %v", err)
	}
	body, err := base64.StdEncoding.DecodeString(e.Body.(string))
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	var b struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Content struct {
				Hash struct {
					Value string `json:"value"`
				} `json:"hash"`
			} `json:"content"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatalf("body json: %v", err)
	}
	if b.Kind != "intoto" || b.APIVersion != "0.0.2" {
		t.Fatalf("body kind %s/%s, want intoto/0.0.2", b.Kind, b.APIVersion)
	}
	if want := strings.TrimPrefix(provenance.Digest(envelope), "sha256:"); b.Spec.Content.Hash.Value != want {
		t.Fatalf("body envelope hash %s, want %s", b.Spec.Content.Hash.Value, want)
	}
	leaf, _ := hex.DecodeString(leafOf(e.UUID))
	if !bytes.Equal(leaf, rfc6962.DefaultHasher.HashLeaf(body)) {
		t.Fatalf("uuid %s is not the leaf hash of the body", e.UUID)
	}
}

func leafOf(uuid string) string {
	if len(uuid) == 80 {
		return uuid[16:]
	}
	return uuid
}

func upload(t *testing.T, ctx context.Context, l tlog.Log, f Fixture) *tlog.Entry {
	t.Helper()
	e, err := l.Upload(ctx, f.Envelope, f.Key.PublicPEM())
	if err != nil {
		t.Fatalf("Upload: %v", err)
	}
	return e
}

func testUploadVerifies(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	for _, alg := range []string{provenance.AlgECDSAP256, provenance.AlgEd25519} {
		k, err := provenance.GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		f := NewFixture(t, k)
		e := upload(t, ctx, l, f)
		VerifyEntry(t, ctx, l, e, f.Envelope)
		if e.IntegratedTime == nil || time.Since(time.Unix(*e.IntegratedTime, 0)) > 10*time.Minute {
			t.Fatalf("%s: integratedTime %v not recent", alg, e.IntegratedTime)
		}
		if k := l.Kind(); k != tlog.KindEmbedded && k != tlog.KindRekor {
			t.Fatalf("Kind %q", k)
		}
	}
}

func testIdempotent(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	f := NewFixture(t, nil)
	e1 := upload(t, ctx, l, f)
	e2 := upload(t, ctx, l, f)
	if leafOf(e1.UUID) != leafOf(e2.UUID) || *e1.LogIndex != *e2.LogIndex {
		t.Fatalf("second upload gave %s@%d, first %s@%d", e2.UUID, *e2.LogIndex, e1.UUID, *e1.LogIndex)
	}
	VerifyEntry(t, ctx, l, e2, f.Envelope)
}

func testGet(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	f := NewFixture(t, nil)
	e := upload(t, ctx, l, f)
	g, err := l.Get(ctx, e.UUID)
	if err != nil {
		t.Fatalf("Get(%s): %v", e.UUID, err)
	}
	VerifyEntry(t, ctx, l, g, f.Envelope)
	g2, err := l.Get(ctx, leafOf(e.UUID))
	if err != nil {
		t.Fatalf("Get(64-hex %s): %v", leafOf(e.UUID), err)
	}
	i, err := l.GetByIndex(ctx, *e.LogIndex)
	if err != nil {
		t.Fatalf("GetByIndex(%d): %v", *e.LogIndex, err)
	}
	VerifyEntry(t, ctx, l, i, f.Envelope)
	for _, x := range []*tlog.Entry{g, g2, i} {
		if x.Body != e.Body || *x.LogIndex != *e.LogIndex || *x.IntegratedTime != *e.IntegratedTime {
			t.Fatalf("entry read back differs from the uploaded one")
		}
	}
	if g.Attestation == nil || len(g.Attestation.Data) == 0 {
		t.Fatalf("Get: attestation (statement payload) not kept")
	}
	_, payload, _ := provenance.ParseEnvelope(f.Envelope)
	if !bytes.Equal(g.Attestation.Data, payload) {
		t.Fatalf("Get: attestation differs from the envelope payload")
	}
}

func searchHas(t *testing.T, ctx context.Context, l tlog.Log, q tlog.Query, uuid string) bool {
	t.Helper()
	// Rekor indexes asynchronously: poll briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := l.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		for _, u := range got {
			if leafOf(u) == leafOf(uuid) {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testSearch(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	f := NewFixture(t, nil)
	e := upload(t, ctx, l, f)
	other := NewFixture(t, nil)
	upload(t, ctx, l, other)
	for name, q := range map[string]tlog.Query{
		"job":      {Hash: provenance.JobDigest(f.JobID)},
		"artifact": {Hash: f.Artifact},
		"upper":    {Hash: strings.ToUpper(f.Artifact[:7]) + f.Artifact[7:]},
		"key":      {PublicKeyPEM: f.Key.PublicPEM()},
		"job+key":  {Hash: provenance.JobDigest(f.JobID), PublicKeyPEM: f.Key.PublicPEM()},
	} {
		if !searchHas(t, ctx, l, q, e.UUID) {
			t.Errorf("search %s: entry %s not found", name, e.UUID)
		}
	}
	got, err := l.Search(ctx, tlog.Query{Hash: provenance.JobDigest(f.JobID), PublicKeyPEM: other.Key.PublicPEM()})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("search job AND other key: got %v, want none", got)
	}
	got, err = l.Search(ctx, tlog.Query{Hash: provenance.Digest([]byte("nothing " + f.JobID))})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("search unknown digest: got %v", got)
	}
	if _, err := l.Search(ctx, tlog.Query{}); err == nil {
		t.Errorf("empty query: want error")
	}
}

func testInfo(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	f := NewFixture(t, nil)
	e := upload(t, ctx, l, f)
	upload(t, ctx, l, NewFixture(t, nil))
	info, err := l.Info(ctx)
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	if info.TreeSize <= *e.LogIndex {
		t.Fatalf("tree size %d does not cover index %d", info.TreeSize, *e.LogIndex)
	}
	pemKey, _ := l.PublicKey(ctx)
	pub, err := provenance.ParsePublicKeyPEM(pemKey)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := provenance.LoadVerifier(pub)
	sc := &util.SignedCheckpoint{}
	if err := sc.UnmarshalText([]byte(info.SignedCheckpoint)); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	if !sc.Verify(v) {
		t.Fatalf("checkpoint signature does not verify with the log key")
	}
	if int64(sc.Size) != info.TreeSize || hex.EncodeToString(sc.Hash) != info.RootHash {
		t.Fatalf("checkpoint %d/%x disagrees with info %d/%s", sc.Size, sc.Hash, info.TreeSize, info.RootHash)
	}
	if !strings.HasSuffix(sc.Origin, info.TreeID) {
		t.Fatalf("checkpoint origin %q does not name tree %s", sc.Origin, info.TreeID)
	}
	first := *e.Verification.InclusionProof.TreeSize
	hashes, err := l.ConsistencyProof(ctx, first, info.TreeSize)
	if err != nil {
		t.Fatalf("ConsistencyProof(%d,%d): %v", first, info.TreeSize, err)
	}
	var hs [][]byte
	for _, h := range hashes {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, b)
	}
	r1, _ := hex.DecodeString(*e.Verification.InclusionProof.RootHash)
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(first), uint64(info.TreeSize), hs, r1, sc.Hash); err != nil {
		t.Fatalf("consistency proof does not verify: %v", err)
	}
	if _, err := l.ConsistencyProof(ctx, info.TreeSize, info.TreeSize+100); err == nil {
		t.Fatalf("consistency proof beyond the tree: want error")
	}
}

func testReject(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	f := NewFixture(t, nil)
	other, _ := provenance.GenerateKey("")
	cases := map[string]struct{ env, key []byte }{
		"wrong key":    {f.Envelope, other.PublicPEM()},
		"not json":     {[]byte("not an envelope"), f.Key.PublicPEM()},
		"flipped byte": {flip(f.Envelope), f.Key.PublicPEM()},
		"bad key pem":  {f.Envelope, []byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")},
	}
	for name, c := range cases {
		_, err := l.Upload(ctx, c.env, c.key)
		if err == nil {
			t.Errorf("%s: upload accepted", name)
			continue
		}
		if !errors.Is(err, tlog.ErrInvalidEntry) {
			t.Errorf("%s: error %v is not ErrInvalidEntry", name, err)
		}
	}
}

// flip changes one character of the envelope's signature.
func flip(env []byte) []byte {
	var m map[string]any
	_ = json.Unmarshal(env, &m)
	sigs := m["signatures"].([]any)
	s := sigs[0].(map[string]any)
	sig := []byte(s["sig"].(string))
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	s["sig"] = string(sig)
	b, _ := json.Marshal(m)
	return b
}

func testConcurrent(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	const n = 16
	key, _ := provenance.GenerateKey("")
	fs := make([]Fixture, n)
	for i := range fs {
		fs[i] = NewFixture(t, key)
	}
	var wg sync.WaitGroup
	entries := make([]*tlog.Entry, n)
	errs := make([]error, n)
	for i := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each envelope twice, concurrently: still one entry each.
			entries[i], errs[i] = l.Upload(ctx, fs[i].Envelope, key.PublicPEM())
			if errs[i] == nil {
				var e2 *tlog.Entry
				e2, errs[i] = l.Upload(ctx, fs[i].Envelope, key.PublicPEM())
				if errs[i] == nil && *e2.LogIndex != *entries[i].LogIndex {
					errs[i] = fmt.Errorf("re-upload got index %d, want %d", *e2.LogIndex, *entries[i].LogIndex)
				}
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i, e := range entries {
		if errs[i] != nil {
			t.Fatalf("upload %d: %v", i, errs[i])
		}
		if seen[*e.LogIndex] {
			t.Fatalf("index %d given twice", *e.LogIndex)
		}
		seen[*e.LogIndex] = true
		VerifyEntry(t, ctx, l, e, fs[i].Envelope)
	}
}

func testNotFound(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	missing := strings.Repeat("ab", 32)
	if _, err := l.Get(ctx, missing); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("Get(missing): %v, want ErrNotFound", err)
	}
	if _, err := l.GetByIndex(ctx, 1<<40); !errors.Is(err, tlog.ErrNotFound) {
		t.Errorf("GetByIndex(huge): %v, want ErrNotFound", err)
	}
}

// BenchmarkAppend measures uploads per second on l with parallel clients
// (the way concurrent workflows attest); envelopes are signed beforehand.
// It reports "appends/s".
func BenchmarkAppend(b *testing.B, l tlog.Log) {
	ctx := context.Background()
	key, err := provenance.GenerateKey("")
	if err != nil {
		b.Fatal(err)
	}
	fs := make([]Fixture, b.N)
	for i := range fs {
		fs[i] = NewFixture(b, key)
	}
	pub := key.PublicPEM()
	var next atomicCounter
	b.ResetTimer()
	start := time.Now()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.inc()
			if _, err := l.Upload(ctx, fs[i].Envelope, pub); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
}

type atomicCounter struct {
	mu sync.Mutex
	n  int
}

func (c *atomicCounter) inc() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return c.n - 1
}
