package provenance_test

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/rekor/pkg/util"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/provenance/tlog/embedded"
)

type env struct {
	dir      string
	log      *embedded.Log
	key      *provenance.Key
	store    *provenance.Store
	rec      *provenance.Recorder
	trust    *provenance.TrustStore
	logKeyID string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	l, err := embedded.Open(ctx, filepath.Join(dir, "tlog"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(context.Background()) })
	key, err := provenance.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	trust := provenance.NewTrustStore()
	if _, err := trust.Add(key.PublicPEM(), "worker", provenance.ScopeStage); err != nil {
		t.Fatal(err)
	}
	pub, _ := l.PublicKey(ctx)
	logID, err := trust.Add(pub, "embedded log", provenance.ScopeLog)
	if err != nil {
		t.Fatal(err)
	}
	store := provenance.NewStore(filepath.Join(dir, "jobs"))
	return &env{dir: dir, log: l, key: key, store: store, rec: provenance.NewRecorder(l, key, store), trust: trust, logKeyID: logID}
}

const outDigest = "4f2b1c0a8e7d6f5e4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6"

// stagePredicates is a consistent seven-stage job.
func stagePredicates(jobID string) []struct {
	stage    string
	subjects []provenance.Subject
	pred     map[string]any
} {
	out := []provenance.Subject{{Name: "train:model.json", Digest: "sha256:" + outDigest}}
	return []struct {
		stage    string
		subjects []provenance.Subject
		pred     map[string]any
	}{
		{provenance.StageSpec, []provenance.Subject{{Name: "quickstart", Digest: provenance.Digest([]byte("# spec " + jobID))}}, map[string]any{
			"name": "quickstart", "version": "1", "tenant": "acme",
			"document_digest": provenance.Digest([]byte("# spec " + jobID)), "contract_digest": provenance.Digest([]byte("contract")),
			"tasks": []string{"train"}, "max_cost": 5000, "currency": "EUR"}},
		{provenance.StageAdmission, nil, map[string]any{"allowed": true, "reason": "all policies passed"}},
		{provenance.StageNegotiation, nil, map[string]any{"provider": "prov-a", "pool": "gpu", "runtime": "containerd",
			"price": 1200, "currency": "EUR", "record": map[string]any{"offers": 3}}},
		{provenance.StagePlacement, nil, map[string]any{"provider": "prov-a", "node": "n1", "gpu_ids": []string{"GPU-0"},
			"reservation": "r1", "hold_id": "h1", "held": 1500, "currency": "EUR"}},
		{provenance.StageExecution, out, map[string]any{"provider": "prov-a", "runtime": "containerd", "tasks": map[string]any{
			"train": map[string]any{"state": "succeeded", "attempt": 1, "run_id": jobID + ".train.1", "exit_code": 0,
				"image_digest": provenance.Digest([]byte("image")), "command": []string{"/bin/trainer", "train"},
				"outputs": []map[string]any{{"path": "model.json", "sha256": outDigest, "size": 10}},
				"usage":   map[string]any{"wall_seconds": 10.5, "cpu_seconds": 8.25}}}}},
		{provenance.StageVerification, out, map[string]any{"passed": true, "tests": []map[string]any{{"name": "accuracy", "passed": true}}}},
		{provenance.StageSettlement, nil, map[string]any{"paid": 1228, "refunded": 272, "currency": "EUR",
			"usage": map[string]any{"wall_ms": 10500, "cpu_ms": 8250, "mem_gb_ms": 0, "gpu_ms": 0},
			"rates": map[string]any{"wall_per_hour": 3600, "cpu_per_hour": 7200, "mem_gb_per_hour": 0, "gpu_per_hour": 0},
			"record": map[string]any{"provider": "prov-a", "currency": "EUR", "held": 1500,
				"metered": map[string]any{"wall": 11, "cpu": 17, "mem": 0, "gpu": 0, "total": 28},
				"charge":  1228, "sla_refund": 0, "payable": 1228, "provider_pay": 1106, "platform_fee": 122,
				"refund": 272, "slashed": 0}}},
	}
}

// recordJob attests a job's stages; edit may change a stage's predicate.
func (e *env) recordJob(t testing.TB, jobID string, edit func(stage string, pred map[string]any)) {
	t.Helper()
	for _, s := range stagePredicates(jobID) {
		if edit != nil {
			edit(s.stage, s.pred)
		}
		b, _ := json.Marshal(s.pred)
		if _, err := e.rec.Attest(context.Background(), provenance.AttestRequest{JobID: jobID, Stage: s.stage, Subjects: s.subjects, Predicate: b}); err != nil {
			t.Fatalf("attest %s: %v", s.stage, err)
		}
	}
}

func (e *env) receipt(t testing.TB, jobID string) *provenance.Receipt {
	t.Helper()
	r, err := provenance.BuildReceipt(context.Background(), jobID, e.store, e.log)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func clone(t testing.TB, r *provenance.Receipt) *provenance.Receipt {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	c, err := provenance.ParseReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestReceiptVerifies(t *testing.T) {
	e := newEnv(t)
	e.recordJob(t, "job-ok", nil)
	r := e.receipt(t, "job-ok")
	if len(r.Attestations) != 7 {
		t.Fatalf("receipt has %d attestations", len(r.Attestations))
	}
	// Round-trip through a file, as an auditor would receive it.
	path := filepath.Join(t.TempDir(), "receipt.json")
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	r2, err := provenance.ReadReceipt(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := provenance.Verify(context.Background(), r2, e.trust, provenance.VerifyOptions{})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if !rep.OK || !rep.Complete || len(rep.Stages) != 7 || rep.LogKey != e.logKeyID {
		t.Fatalf("report %+v", rep)
	}
	for i, s := range rep.Stages {
		if s.Stage != provenance.Stages[i] || s.Signer != e.key.ID() {
			t.Fatalf("stage %d: %+v", i, s)
		}
	}
	probs, err := provenance.VerifyOnline(context.Background(), r2, e.log)
	if err != nil || len(probs) != 0 {
		t.Fatalf("VerifyOnline on the same tree: %v %v", probs, err)
	}
	// The log grows; the receipt's checkpoint stays consistent with it.
	e.recordJob(t, "job-later", nil)
	probs, err = provenance.VerifyOnline(context.Background(), r2, e.log)
	if err != nil || len(probs) != 0 {
		t.Fatalf("VerifyOnline after growth: %v %v", probs, err)
	}
	// Another log (another key) is not the receipt's log.
	other := newEnv(t)
	other.recordJob(t, "job-x", nil)
	probs, err = provenance.VerifyOnline(context.Background(), r2, other.log)
	if err != nil || len(probs) == 0 || !strings.Contains(probs[0].Message, "not signed by the receipt's log key") {
		t.Fatalf("VerifyOnline against another log: %v %v", probs, err)
	}
}

func envelopePayload(t testing.TB, env []byte) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestTamperRejected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.recordJob(t, "job-a", nil)
	e.recordJob(t, "job-b", nil)
	// A job whose worker (trusted key) attested inconsistent amounts.
	e.recordJob(t, "job-greedy", func(stage string, p map[string]any) {
		if stage == provenance.StageSettlement {
			p["paid"], p["refunded"] = 1400, 100
			rec := p["record"].(map[string]any)
			rec["charge"], rec["payable"], rec["provider_pay"], rec["refund"] = 1400, 1400, 1278, 100
		}
	})
	// A job whose ledger record bills an hour of wall time it never ran.
	e.recordJob(t, "job-overbilled", func(stage string, p map[string]any) {
		if stage == provenance.StageSettlement {
			// As the workflow attests it: usage and rates only in the ledger's record.
			delete(p, "usage")
			delete(p, "rates")
			rec := p["record"].(map[string]any)
			rec["usage"] = map[string]any{"wall_ms": 3_600_000, "cpu_ms": 8250, "mem_gb_ms": 0, "gpu_ms": 0}
		}
	})
	// A job that paid model fees (150) from its escrow before the charge,
	// attested as the ledger records it, and one that hid them.
	withFees := func(stage string, p map[string]any) {
		if stage == provenance.StageSettlement {
			p["paid"], p["refunded"] = 1378, 122
			rec := p["record"].(map[string]any)
			rec["refund"], rec["model_fee_total"] = 122, 150
			rec["model_fees"] = []map[string]any{{"model": "acme/clf@1.2.0", "shares": []map[string]any{
				{"account": "owner:ann", "amount": 100}, {"account": "owner:bob", "amount": 50, "model": "acme/base@2.0.1"}}}}
		}
	}
	e.recordJob(t, "job-model-fees", withFees)
	if _, err := provenance.Verify(ctx, e.receipt(t, "job-model-fees"), e.trust, provenance.VerifyOptions{}); err != nil {
		t.Fatalf("a job that paid model fees: %v", err)
	}
	e.recordJob(t, "job-hidden-fees", func(stage string, p map[string]any) {
		withFees(stage, p)
		if stage == provenance.StageSettlement {
			p["record"].(map[string]any)["model_fee_total"] = 50
		}
	})
	good := e.receipt(t, "job-a")
	other := e.receipt(t, "job-b")
	stranger, _ := provenance.GenerateKey(provenance.AlgEd25519)
	idx := func(stage string) int { return provenance.StageIndex(stage) }

	cases := []struct {
		name   string
		mutate func(r *provenance.Receipt) *provenance.Receipt
		want   []string
	}{
		{"flipped byte in envelope", func(r *provenance.Receipt) *provenance.Receipt {
			a := r.Attestations[idx(provenance.StageNegotiation)]
			m := envelopePayload(t, a.Envelope)
			p, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
			p[len(p)/2] ^= 0x01
			m["payload"] = base64.StdEncoding.EncodeToString(p)
			a.Envelope, _ = json.Marshal(m)
			return r
		}, []string{"stage negotiation: signature: envelope signature does not verify", "stage negotiation: log-entry: log entry records envelope hash"}},
		{"statement from another job spliced in", func(r *provenance.Receipt) *provenance.Receipt {
			r.Attestations[idx(provenance.StagePlacement)] = other.Attestations[idx(provenance.StagePlacement)]
			return r
		}, []string{"stage placement: job: attestation is for job job-b, receipt is for job job-a", "stage placement: chain: previous digest", "stage execution: chain: previous digest"}},
		{"stage removed", func(r *provenance.Receipt) *provenance.Receipt {
			i := idx(provenance.StagePlacement)
			r.Attestations = append(r.Attestations[:i:i], r.Attestations[i+1:]...)
			return r
		}, []string{"stage execution: chain: stage placement missing: execution follows negotiation"}},
		{"last stage removed", func(r *provenance.Receipt) *provenance.Receipt {
			r.Attestations = r.Attestations[:len(r.Attestations)-1]
			return r
		}, []string{"stage settlement: chain: stage settlement missing: receipt ends at verification"}},
		{"stages reordered", func(r *provenance.Receipt) *provenance.Receipt {
			i, j := idx(provenance.StagePlacement), idx(provenance.StageExecution)
			r.Attestations[i], r.Attestations[j] = r.Attestations[j], r.Attestations[i]
			return r
		}, []string{"stage execution: chain: stage placement missing", "stage placement: chain: stage out of order: placement after execution"}},
		{"truncated inclusion proof", func(r *provenance.Receipt) *provenance.Receipt {
			ip := r.Attestations[idx(provenance.StageExecution)].Entry.Verification.InclusionProof
			ip.Hashes = ip.Hashes[:len(ip.Hashes)-1]
			return r
		}, []string{"stage execution: inclusion-proof: entry"}},
		{"altered inclusion proof", func(r *provenance.Receipt) *provenance.Receipt {
			ip := r.Attestations[idx(provenance.StageAdmission)].Entry.Verification.InclusionProof
			b, _ := hex.DecodeString(ip.Hashes[0])
			b[0] ^= 0x80
			ip.Hashes[0] = hex.EncodeToString(b)
			return r
		}, []string{"stage admission: inclusion-proof: entry"}},
		{"checkpoint signed by another key", func(r *provenance.Receipt) *provenance.Receipt {
			ip := r.Attestations[idx(provenance.StageVerification)].Entry.Verification.InclusionProof
			sc := &util.SignedCheckpoint{}
			if err := sc.UnmarshalText([]byte(*ip.Checkpoint)); err != nil {
				t.Fatal(err)
			}
			forger, _ := provenance.GenerateKey("")
			treeID := e.log.TreeID()
			cp, err := util.CreateAndSignCheckpoint(ctx, embedded.DefaultOrigin, treeID, sc.Size, sc.Hash, forger.Signer())
			if err != nil {
				t.Fatal(err)
			}
			s := string(cp)
			ip.Checkpoint = &s
			return r
		}, []string{"stage verification: checkpoint: signature on checkpoint did not verify"}},
		{"envelope re-signed with an untrusted key", func(r *provenance.Receipt) *provenance.Receipt {
			a := r.Attestations[idx(provenance.StageSettlement)]
			_, payload, _ := provenance.ParseEnvelope(a.Envelope)
			env, err := provenance.SignEnvelope(ctx, stranger, provenance.PayloadTypeInToto, payload)
			if err != nil {
				t.Fatal(err)
			}
			// Even properly logged, the signer is not trusted.
			entry, err := e.log.Upload(ctx, env, stranger.PublicPEM())
			if err != nil {
				t.Fatal(err)
			}
			a.Envelope, a.Digest, a.SignerPublicKey, a.Entry = env, provenance.Digest(env), string(stranger.PublicPEM()), entry
			return r
		}, []string{"stage settlement: signature: envelope signed by key " + stranger.ID() + ", which is not trusted"}},
		{"amounts edited in the envelope", func(r *provenance.Receipt) *provenance.Receipt {
			a := r.Attestations[idx(provenance.StageSettlement)]
			m := envelopePayload(t, a.Envelope)
			p, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
			p = []byte(strings.Replace(string(p), `"paid":1228`, `"paid":1328`, 1))
			m["payload"] = base64.StdEncoding.EncodeToString(p)
			a.Envelope, _ = json.Marshal(m)
			return r
		}, []string{"stage settlement: signature: envelope signature does not verify"}},
		{"amounts that do not match price and usage", func(*provenance.Receipt) *provenance.Receipt {
			return e.receipt(t, "job-greedy")
		}, []string{"stage settlement: amounts: charge 1400, negotiated price 1200 + metered 28 capped at held 1500 gives 1228"}},
		{"model fees that do not add up", func(*provenance.Receipt) *provenance.Receipt {
			return e.receipt(t, "job-hidden-fees")
		}, []string{"stage settlement: amounts: model fee shares sum to 150, recorded total 50"}},
		{"usage billed that execution did not measure", func(*provenance.Receipt) *provenance.Receipt {
			return e.receipt(t, "job-overbilled")
		}, []string{"stage settlement: amounts: wall usage billed 3600000 ms, execution measured"}},
		{"log key not trusted", func(r *provenance.Receipt) *provenance.Receipt {
			impostor := newEnv(t)
			pub, _ := impostor.log.PublicKey(ctx)
			r.Log.PublicKey = string(pub)
			return r
		}, []string{"stage log: log-key: log key", "checkpoint: signature on checkpoint did not verify", "signed-entry-timestamp"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := c.mutate(clone(t, good))
			rep, err := provenance.Verify(ctx, r, e.trust, provenance.VerifyOptions{})
			if err == nil {
				t.Fatalf("tampered receipt accepted")
			}
			if !errors.Is(err, provenance.ErrAudit) || rep.OK {
				t.Fatalf("error %v is not ErrAudit", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestRecorderIdempotent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p := []byte(`{"name":"x","document_digest":"` + provenance.Digest([]byte("doc")) + `"}`)
	a1, err := e.rec.Attest(ctx, provenance.AttestRequest{JobID: "job-i", Stage: provenance.StageSpec, Predicate: p})
	if err != nil {
		t.Fatal(err)
	}
	a2, err := e.rec.Attest(ctx, provenance.AttestRequest{JobID: "job-i", Stage: provenance.StageSpec, Predicate: p})
	if err != nil {
		t.Fatal(err)
	}
	if a1.Digest != a2.Digest || *a1.Entry.LogIndex != *a2.Entry.LogIndex {
		t.Fatalf("retry gave a different attestation: %s@%d vs %s@%d", a1.Digest, *a1.Entry.LogIndex, a2.Digest, *a2.Entry.LogIndex)
	}
	// A retry whose upload had not happened (crash between sign and upload).
	a1.Entry = nil
	if err := e.store.Put(a1); err != nil {
		t.Fatal(err)
	}
	a3, err := e.rec.Attest(ctx, provenance.AttestRequest{JobID: "job-i", Stage: provenance.StageSpec, Predicate: p})
	if err != nil || a3.Digest != a2.Digest || *a3.Entry.LogIndex != *a2.Entry.LogIndex {
		t.Fatalf("retry after lost upload: %v", err)
	}
	info, _ := e.log.Info(ctx)
	if info.TreeSize != 1 {
		t.Fatalf("log has %d entries after retries, want 1", info.TreeSize)
	}
	// Chain: a stage without its predecessor is refused.
	if _, err := e.rec.Attest(ctx, provenance.AttestRequest{JobID: "job-i", Stage: provenance.StagePlacement, Predicate: []byte(`{}`)}); err == nil || !errors.Is(err, provenance.ErrNotFound) {
		t.Fatalf("placement before negotiation: %v", err)
	}
	// The next stage links the spec envelope.
	a4, err := e.rec.Attest(ctx, provenance.AttestRequest{JobID: "job-i", Stage: provenance.StageAdmission, Predicate: []byte(`{"allowed":false,"reason":"quota"}`)})
	if err != nil {
		t.Fatal(err)
	}
	_, payload, _ := provenance.ParseEnvelope(a4.Envelope)
	st, _ := provenance.ParseStatement(payload)
	h, _ := st.Header()
	if h.Previous != a1.Digest || h.SpecDigest != provenance.Digest([]byte("doc")) || h.JobID != "job-i" {
		t.Fatalf("header %+v", h)
	}
	// A denied job's chain is complete at admission.
	rep, err := provenance.Verify(ctx, e.receipt(t, "job-i"), e.trust, provenance.VerifyOptions{})
	if err != nil || !rep.Complete {
		t.Fatalf("denied job: %v %+v", err, rep)
	}
	// Bad inputs are errors, not panics.
	for _, req := range []provenance.AttestRequest{
		{JobID: "../etc", Stage: provenance.StageSpec, Predicate: p},
		{JobID: "job-j", Stage: "bogus", Predicate: p},
		{JobID: "job-j", Stage: provenance.StageSpec, Predicate: []byte(`[1,2]`)},
		{JobID: "job-j", Stage: provenance.StageSpec, Predicate: []byte(`{"document_digest":"md5:x"}`)},
		{JobID: "job-k", Stage: provenance.StageSpec, Predicate: []byte(`{"job_id":"job-other","document_digest":"` + provenance.Digest(nil) + `"}`)},
	} {
		if _, err := e.rec.Attest(ctx, req); err == nil {
			t.Errorf("Attest(%+v) accepted", req)
		}
	}
}

func TestKeysAndTrust(t *testing.T) {
	dir := t.TempDir()
	for _, alg := range []string{provenance.AlgECDSAP256, provenance.AlgEd25519} {
		path := filepath.Join(dir, alg+".key")
		k, err := provenance.LoadOrCreateKey(path, alg)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := provenance.LoadOrCreateKey(path, alg)
		if err != nil || k2.ID() != k.ID() || k.Algorithm() != alg {
			t.Fatalf("%s: reload gave %v (%v)", alg, k2, err)
		}
		pubPEM, _ := os.ReadFile(path + ".pub")
		pub, err := provenance.ParsePublicKeyPEM(pubPEM)
		if err != nil {
			t.Fatal(err)
		}
		if id, _ := provenance.Fingerprint(pub); id != k.ID() || !provenance.ValidDigest(id) {
			t.Fatalf("fingerprint %s vs %s", id, k.ID())
		}
		if err := k.WriteFiles(path); err == nil {
			t.Fatalf("WriteFiles overwrote an existing key")
		}
		env, err := provenance.SignEnvelope(context.Background(), k, "text/plain", []byte("hi"))
		if err != nil {
			t.Fatal(err)
		}
		payload, id, err := provenance.VerifyEnvelope(context.Background(), env, pub)
		if err != nil || string(payload) != "hi" || id != k.ID() {
			t.Fatalf("verify: %q %s %v", payload, id, err)
		}
	}
	if _, err := provenance.GenerateKey("rsa"); !errors.Is(err, provenance.ErrKeyAlgorithm) {
		t.Fatalf("rsa: %v", err)
	}
	if _, err := provenance.ParsePrivateKeyPEM([]byte("junk")); !errors.Is(err, provenance.ErrBadKey) {
		t.Fatalf("junk key: %v", err)
	}
	ts := provenance.NewTrustStore()
	k, _ := provenance.GenerateKey("")
	id, err := ts.Add(k.PublicPEM(), "alice", "spec:acme", provenance.ScopeStage)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Add(k.PublicPEM(), "", "root"); err == nil {
		t.Fatal("unknown scope accepted")
	}
	path := filepath.Join(dir, "trust.json")
	if err := ts.Save(path); err != nil {
		t.Fatal(err)
	}
	ts2, err := provenance.LoadTrustStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if !ts2.Allowed(id, "spec:acme") || !ts2.Allowed(id, provenance.ScopeStage) || ts2.Allowed(id, "spec:globex") || ts2.Allowed(id, provenance.ScopeLog) {
		t.Fatalf("scopes after reload: %+v", ts2.Keys())
	}
	empty, err := provenance.LoadTrustStore(filepath.Join(dir, "missing.json"))
	if err != nil || len(empty.Keys()) != 0 {
		t.Fatalf("missing trust store: %v", err)
	}
}

var _ tlog.Log = (*embedded.Log)(nil)
