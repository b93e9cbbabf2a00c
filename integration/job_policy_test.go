package integration

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// Tenant-scoped policies for TestJobPolicy: tenant "fenced" may not use the
// local pool (placement, applied to every bid); tenant "gated" may not run
// specs named forbidden-* (admission).
const (
	denyLocalPolicy = `policy: deny-local
version: 1
tenant: fenced
rules:
  - name: not-local
    on: placement
    expr: provider.name != "local"
    message: this tenant may not run on the local pool
`
	admissionPolicy = `policy: names
version: 1
tenant: gated
rules:
  - name: no-forbidden
    on: admission
    expr: '!spec.name.startsWith("forbidden")'
    message: forbidden specs are not admitted
`
)

// Policies end to end on the real stack: a placement rule that excludes
// every provider ends the job with no offers naming the rule; an admission
// rule ends it with the policy class; a tenant that requires signed specs
// rejects an unsigned one before anything is held and runs the same spec
// once it is signed by a key trusted for the tenant.
func TestJobPolicy(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	ctx := context.Background()
	if err := os.MkdirAll(filepath.Join(home, "policies"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"deny-local.yaml": denyLocalPolicy, "names.yaml": admissionPolicy} {
		if err := os.WriteFile(filepath.Join(home, "policies", name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The signing tenant and its trusted key, before the worker opens them.
	store, err := policies.OpenStore(ctx, policies.StorePath(home))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.PutTenant(ctx, policies.Tenant{Name: "signed", Currency: "USD", Period: "none", RequireSigned: true}); err != nil {
		t.Fatal(err)
	}
	store.Close()
	key, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	trustPath := provenance.DefaultTrustPath(home)
	ts, err := provenance.LoadTrustStore(trustPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Add(key.PublicPEM(), "signed's release key", provenance.ScopeSpecPrefix+"signed"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(trustPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(trustPath); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"fenced", "gated", "signed"} {
		fund(t, home, tenant, 1000)
	}
	st := startStack(t, home, 0, false)
	defer st.Stop()
	dir := t.TempDir()
	task := func(name string) string {
		return trainerTask(name, image, []string{"trainer", "train", "--samples", "200", "--epochs", "10"},
			"  outputs: [metrics.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n")
	}
	l := ledgerCheck(t, home)
	noHold := func(jobID string) {
		t.Helper()
		if tx, err := l.Transaction(ctx, settlement.Key(jobID, "hold", 1)); !errors.Is(err, settlement.ErrNotFound) || tx != nil {
			t.Errorf("job %s: hold %+v (%v), want none", jobID, tx, err)
		}
	}
	run := func(spec string) workflows.JobResult {
		t.Helper()
		sub, err := jobclient.Submit(ctx, st.Client, spec, "")
		if err != nil {
			t.Fatal(err)
		}
		return result(t, st.Client, sub.JobID, 3*time.Minute)
	}

	t.Run("placement excludes every provider", func(t *testing.T) {
		res := run(writeSpec(t, dir, specDoc{Name: "fenced-job", Tenant: "fenced", Tasks: task("train")}))
		if res.Status != workflows.StatusFailed || res.Class != workflows.ClassNoOffers || jobclient.ExitCode(res) == 0 {
			t.Fatalf("result %s/%s: %s", res.Status, res.Class, res.Error)
		}
		if !strings.Contains(res.Error, "deny-local/not-local") || !strings.Contains(res.Error, "local") {
			t.Errorf("reason does not name the rule and provider: %s", res.Error)
		}
		noHold(res.JobID)
	})
	t.Run("admission rule", func(t *testing.T) {
		res := run(writeSpec(t, dir, specDoc{Name: "forbidden-job", Tenant: "gated", Tasks: task("train")}))
		if res.Status != workflows.StatusFailed || res.Class != workflows.ClassPolicy {
			t.Fatalf("result %s/%s: %s", res.Status, res.Class, res.Error)
		}
		if !strings.Contains(res.Error, "no-forbidden") {
			t.Errorf("reason does not name the rule: %s", res.Error)
		}
		noHold(res.JobID)
	})
	spec := writeSpec(t, dir, specDoc{Name: "signed-job", Tenant: "signed", Tasks: task("train")})
	t.Run("unsigned spec rejected", func(t *testing.T) {
		res := run(spec)
		if res.Status != workflows.StatusFailed || res.Class != workflows.ClassPolicy {
			t.Fatalf("result %s/%s: %s", res.Status, res.Class, res.Error)
		}
		noHold(res.JobID)
	})
	t.Run("signed spec runs", func(t *testing.T) {
		doc, err := os.ReadFile(spec)
		if err != nil {
			t.Fatal(err)
		}
		loaded, err := specs.Load(spec)
		if err != nil {
			t.Fatal(err)
		}
		b, err := provenance.SpecBundleOf(doc, loaded.Source.Documents)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		sig, err := provenance.SignSpec(ctx, key, provenance.SpecBundlePredicate{Name: "signed-job", Tenant: "signed",
			DocumentDigest: b.DocumentDigest, SignedAt: now, NotAfter: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(spec+provenance.SpecSignatureExt, sig, 0o644); err != nil {
			t.Fatal(err)
		}
		res := run(spec)
		if res.Status != workflows.StatusSettled {
			t.Fatalf("result %s/%s: %s", res.Status, res.Class, res.Error)
		}
		if tx, err := l.Transaction(ctx, settlement.Key(res.JobID, "settle", 1)); err != nil || tx == nil {
			t.Errorf("settlement: %v", err)
		}
	})
}
