package provenance_test

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
)

// BenchmarkVerifyReceipt is the offline audit of a seven-stage receipt
// (target: under 20 ms per receipt).
func BenchmarkVerifyReceipt(b *testing.B) {
	e := newEnv(b)
	e.recordJob(b, "job-bench", nil)
	r := e.receipt(b, "job-bench")
	raw, _ := json.Marshal(r)
	ctx := context.Background()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		// Parse included: an auditor starts from the file's bytes.
		rr, err := provenance.ParseReceipt(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := provenance.Verify(ctx, rr, e.trust, provenance.VerifyOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	// CPU time per receipt: on a shared, loaded machine wall time mostly
	// measures waiting for a core.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// FuzzVerifyReceipt: arbitrary receipts are rejected with an error, never a
// panic, and never verify.
func FuzzVerifyReceipt(f *testing.F) {
	e := newEnv(f)
	e.recordJob(f, "job-fuzz", nil)
	r := e.receipt(f, "job-fuzz")
	raw, _ := json.Marshal(r)
	f.Add(raw)
	f.Add([]byte(`{"version":"https://accord.dev/receipt/v1","job_id":"j","attestations":[{}]}`))
	f.Add([]byte(`{}`))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, b []byte) {
		rr, err := provenance.ParseReceipt(b)
		if err != nil {
			return
		}
		rep, err := provenance.Verify(ctx, rr, e.trust, provenance.VerifyOptions{})
		if err == nil && string(b) != string(raw) {
			// A different byte string may still decode to the same receipt
			// (JSON whitespace, key order); then it must really be intact.
			again, _ := json.Marshal(rr)
			if string(again) != string(raw) {
				t.Fatalf("altered receipt verified: %+v", rep)
			}
		}
	})
}

// FuzzBuildStatement: arbitrary predicates either build a valid statement
// that parses back with the same header, or fail cleanly.
func FuzzBuildStatement(f *testing.F) {
	f.Add("job-1", "spec", "", []byte(`{"document_digest":"sha256:aa"}`))
	f.Add("job-1", "admission", provenance.Digest([]byte("x")), []byte(`{"allowed":true}`))
	f.Add("", "settlement", "x", []byte(`[`))
	f.Fuzz(func(t *testing.T, job, stage, prev string, pred []byte) {
		h := provenance.Header{JobID: job, Stage: stage, Previous: prev}
		b, err := provenance.BuildStatement(h, nil, pred)
		if err != nil {
			return
		}
		st, err := provenance.ParseStatement(b)
		if err != nil {
			t.Fatalf("built statement does not parse: %v", err)
		}
		got, err := st.Header()
		if err != nil || got.JobID != job || got.Stage != stage || got.Previous != prev {
			t.Fatalf("header %+v, want %+v (%v)", got, h, err)
		}
	})
}
