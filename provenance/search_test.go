package provenance_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
)

func TestSearch(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.recordJob(t, "job-s1", nil)
	e.recordJob(t, "job-s2", nil)
	stages := func(hits []provenance.SearchHit) string {
		s := ""
		for _, h := range hits {
			s += h.JobID + "/" + h.Stage + " "
		}
		return s
	}
	hits, err := provenance.Search(ctx, e.log, provenance.SearchQuery{JobID: "job-s1"})
	if err != nil || len(hits) != 7 {
		t.Fatalf("by job: %d hits (%v): %s", len(hits), err, stages(hits))
	}
	for i, h := range hits {
		if h.JobID != "job-s1" || h.Stage != provenance.Stages[i] || h.PredicateType != provenance.PredicateType(h.Stage) {
			t.Fatalf("hit %d: %+v", i, h)
		}
	}
	spec := provenance.Digest([]byte("# spec job-s2"))
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{SpecDigest: spec}); err != nil || len(hits) != 1 || hits[0].JobID != "job-s2" || hits[0].Stage != provenance.StageSpec {
		t.Fatalf("by spec digest: %v %s", err, stages(hits))
	}
	// Both jobs produced the same output: execution and verification of each.
	art := "sha256:" + outDigest
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{Artifact: art}); err != nil || len(hits) != 4 {
		t.Fatalf("by artifact: %v %s", err, stages(hits))
	}
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{Artifact: art, JobID: "job-s2"}); err != nil || len(hits) != 2 {
		t.Fatalf("by artifact and job: %v %s", err, stages(hits))
	}
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{SignerPEM: e.key.PublicPEM()}); err != nil || len(hits) != 14 {
		t.Fatalf("by signer: %v %d", err, len(hits))
	}
	other, _ := provenance.GenerateKey("")
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{JobID: "job-s1", SignerPEM: other.PublicPEM()}); err != nil || len(hits) != 0 {
		t.Fatalf("by job and another signer: %v %s", err, stages(hits))
	}
	future := time.Now().Add(time.Hour)
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{JobID: "job-s1", Since: future}); err != nil || len(hits) != 0 {
		t.Fatalf("since the future: %v %s", err, stages(hits))
	}
	if hits, err = provenance.Search(ctx, e.log, provenance.SearchQuery{JobID: "job-s1", Since: time.Now().Add(-time.Hour), Until: future}); err != nil || len(hits) != 7 {
		t.Fatalf("within the last hour: %v %s", err, stages(hits))
	}
	if _, err := provenance.Search(ctx, e.log, provenance.SearchQuery{Since: future}); !errors.Is(err, provenance.ErrEmptyQuery) {
		t.Fatalf("time range only: %v", err)
	}
	if _, err := provenance.Search(ctx, e.log, provenance.SearchQuery{Artifact: "md5:abc"}); err == nil {
		t.Fatal("bad digest accepted")
	}
}

// flakyLog fails the first n uploads as an unreachable log would.
type flakyLog struct {
	tlog.Log
	n int
}

func (f *flakyLog) Upload(ctx context.Context, env, pub []byte) (*tlog.Entry, error) {
	if f.n > 0 {
		f.n--
		return nil, fmt.Errorf("%w: connection refused", tlog.ErrUnavailable)
	}
	return f.Log.Upload(ctx, env, pub)
}

// TestAttestSurvivesUnreachableLog: a failed upload keeps the signed
// envelope; the retry logs exactly that envelope.
func TestAttestSurvivesUnreachableLog(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	flaky := &flakyLog{Log: e.log, n: 2}
	rec := provenance.NewRecorder(flaky, e.key, e.store)
	req := provenance.AttestRequest{JobID: "job-f", Stage: provenance.StageSpec,
		Predicate: []byte(`{"document_digest":"` + provenance.Digest([]byte("d")) + `"}`)}
	var digest string
	for i := range 2 {
		_, err := rec.Attest(ctx, req)
		if !errors.Is(err, tlog.ErrUnavailable) {
			t.Fatalf("attempt %d: %v, want ErrUnavailable", i, err)
		}
		stored, err := e.store.Get("job-f", provenance.StageSpec)
		if err != nil {
			t.Fatalf("envelope not kept after a failed upload: %v", err)
		}
		if digest != "" && stored.Digest != digest {
			t.Fatalf("retry re-signed: %s then %s", digest, stored.Digest)
		}
		digest = stored.Digest
	}
	a, err := rec.Attest(ctx, req)
	if err != nil || a.Digest != digest || a.Entry == nil {
		t.Fatalf("after the log came back: %v (digest %s, want %s)", err, a.Digest, digest)
	}
}

// TestAttestConcurrentRecorders: two recorders (two worker processes) on one
// store attest the same stage at once; one envelope wins and both return it.
func TestAttestConcurrentRecorders(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	k2, _ := provenance.GenerateKey("")
	recs := []*provenance.Recorder{e.rec, provenance.NewRecorder(e.log, k2, e.store)}
	req := provenance.AttestRequest{JobID: "job-c", Stage: provenance.StageSpec,
		Predicate: []byte(`{"document_digest":"` + provenance.Digest([]byte("c")) + `"}`)}
	digests := make([]string, 2)
	errs := make([]error, 2)
	done := make(chan int)
	for i, r := range recs {
		go func() {
			a, err := r.Attest(ctx, req)
			if err == nil {
				digests[i] = a.Digest
			}
			errs[i] = err
			done <- i
		}()
	}
	<-done
	<-done
	if errs[0] != nil || errs[1] != nil || digests[0] != digests[1] {
		t.Fatalf("concurrent attest: %v %v, digests %s %s", errs[0], errs[1], digests[0], digests[1])
	}
	hits, err := provenance.Search(ctx, e.log, provenance.SearchQuery{JobID: "job-c"})
	if err != nil || len(hits) != 1 {
		t.Fatalf("log has %d entries for the stage (%v), want 1", len(hits), err)
	}
}
