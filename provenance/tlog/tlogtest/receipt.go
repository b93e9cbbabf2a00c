package tlogtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
)

// JobProvider is the provider the jobs of RecordJob and RecordJobBy are
// awarded to: its key signs for provenance.ProviderScope(JobProvider).
const JobProvider = "p"

// RecordJob attests a consistent seven-stage job on l through a Recorder
// (store under t.TempDir) and returns the store and the stage key, which
// signs every stage (trust it for provenance.ScopeStage).
func RecordJob(t testing.TB, l tlog.Log, jobID string) (*provenance.Store, *provenance.Key) {
	t.Helper()
	key, err := provenance.GenerateKey("")
	if err != nil {
		t.Fatal(err)
	}
	return RecordJobBy(t, l, jobID, func(string) *provenance.Key { return key }), key
}

// RecordJobBy is RecordJob with each stage signed by keyFor(stage), one
// Recorder per key over one store, as a mesh's parties sign their stages.
func RecordJobBy(t testing.TB, l tlog.Log, jobID string, keyFor func(stage string) *provenance.Key) *provenance.Store {
	t.Helper()
	ctx := context.Background()
	store := provenance.NewStore(t.TempDir())
	recs := map[*provenance.Key]*provenance.Recorder{}
	out := provenance.Digest([]byte("output of " + jobID))
	hexOut := strings.TrimPrefix(out, "sha256:")
	outs := []provenance.Subject{{Name: "train:model.json", Digest: out}}
	steps := []struct {
		stage string
		subj  []provenance.Subject
		pred  string
	}{
		{provenance.StageSpec, nil, `{"name":"t","tenant":"acme","document_digest":"` + provenance.Digest([]byte(jobID)) + `","currency":"EUR"}`},
		{provenance.StageAdmission, nil, `{"allowed":true}`},
		{provenance.StageNegotiation, nil, `{"provider":"` + JobProvider + `","price":100,"currency":"EUR"}`},
		{provenance.StagePlacement, nil, `{"provider":"` + JobProvider + `","held":150,"currency":"EUR"}`},
		{provenance.StageExecution, outs, `{"tasks":{"train":{"exit_code":0,"outputs":[{"path":"model.json","sha256":"` + hexOut + `"}],"usage":{"wall_seconds":2,"cpu_seconds":1}}}}`},
		{provenance.StageVerification, outs, `{"passed":true,"tests":[{"name":"accuracy","passed":true}]}`},
		{provenance.StageSettlement, nil, `{"paid":101,"refunded":49,"currency":"EUR","usage":{"wall_ms":2000,"cpu_ms":1000,"mem_gb_ms":0,"gpu_ms":0},` +
			`"rates":{"wall_per_hour":1800,"cpu_per_hour":0,"mem_gb_per_hour":0,"gpu_per_hour":0},` +
			`"record":{"currency":"EUR","held":150,"metered":{"wall":1,"cpu":0,"mem":0,"gpu":0,"total":1},"charge":101,"sla_refund":0,"payable":101,"provider_pay":91,"platform_fee":10,"refund":49}}`},
	}
	for _, s := range steps {
		key := keyFor(s.stage)
		rec := recs[key]
		if rec == nil {
			rec = provenance.NewRecorder(l, key, store)
			recs[key] = rec
		}
		if _, err := rec.Attest(ctx, provenance.AttestRequest{JobID: jobID, Stage: s.stage, Subjects: s.subj, Predicate: json.RawMessage(s.pred)}); err != nil {
			t.Fatalf("attest %s: %v", s.stage, err)
		}
	}
	return store
}

func testReceipt(t *testing.T, l tlog.Log) {
	ctx := ctxT(t)
	job := NewFixture(t, nil).JobID // a fresh job ID
	store, key := RecordJob(t, l, job)
	r, err := provenance.BuildReceipt(ctx, job, store, l)
	if err != nil {
		t.Fatalf("BuildReceipt: %v", err)
	}
	trust := provenance.NewTrustStore()
	if _, err := trust.Add(key.PublicPEM(), "worker", provenance.ScopeStage); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add([]byte(r.Log.PublicKey), "log", provenance.ScopeLog); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := provenance.ParseReceipt(raw)
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := provenance.Verify(ctx, r2, trust, provenance.VerifyOptions{}); err != nil || !rep.Complete {
		t.Fatalf("Verify: %v", err)
	}
	// The log grows; the receipt stays consistent with it.
	upload(t, ctx, l, NewFixture(t, nil))
	if probs, err := provenance.VerifyOnline(ctx, r2, l); err != nil || len(probs) > 0 {
		t.Fatalf("VerifyOnline: %v %v", probs, err)
	}
	// Tampering is caught.
	bad, _ := provenance.ParseReceipt(raw)
	env := bad.Attestations[2].Envelope
	var m map[string]any
	_ = json.Unmarshal(env, &m)
	p, _ := base64.StdEncoding.DecodeString(m["payload"].(string))
	p[len(p)/3] ^= 1
	m["payload"] = base64.StdEncoding.EncodeToString(p)
	bad.Attestations[2].Envelope, _ = json.Marshal(m)
	bad.Attestations = append(bad.Attestations[:4:4], bad.Attestations[5:]...)
	_, err = provenance.Verify(ctx, bad, trust, provenance.VerifyOptions{})
	for _, want := range []string{"stage negotiation: signature", "stage verification: chain: stage execution missing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("tampered receipt: error %v lacks %q", err, want)
		}
	}
}
