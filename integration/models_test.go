package integration

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/exchange"
	"github.com/accordmesh/accord/models/registry"
	"github.com/accordmesh/accord/models/registry/registrytest"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// cliJSON runs the CLI with --json and decodes its last stdout line.
func cliJSON(t *testing.T, home string, v any, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(accordBinary(t), append(args, "--json", "--home", home)...)
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if v != nil && code == 0 {
		if err := json.Unmarshal([]byte(last), v); err != nil {
			t.Fatalf("accord %v: %v\n%s", args, err, out)
		}
	}
	return code, last
}

// trainBase trains a base model on the host with the trainer's own code;
// its README names the model, so no two test models share a blob.
func trainBase(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "run", "./examples/images/trainer", "train", "--samples", "500", "--epochs", "30", "--seed", "3", "--out", dir)
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("train base model: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# "+name+"\n\nA logistic-regression classifier.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// publisher is an exchange that signs with a tenant's own key, trusted for
// spec:<tenant> in the home's trust store.
func publisher(t *testing.T, home string, x *exchange.Exchange, tenant string) (*exchange.Exchange, *provenance.Key) {
	t.Helper()
	key, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	path := provenance.DefaultTrustPath(home)
	ts, err := provenance.LoadTrustStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Add(key.PublicPEM(), tenant, provenance.ScopeSpecPrefix+tenant); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(path); err != nil {
		t.Fatal(err)
	}
	return &exchange.Exchange{Registry: x.Registry, Log: x.Log, Key: key, Trust: x.Trust, CacheDir: t.TempDir()}, key
}

func baseManifest(t *testing.T, dir, name, owner string) *models.Manifest {
	t.Helper()
	files, err := models.ScanDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return &models.Manifest{
		SchemaVersion: models.SchemaVersion, Name: name, Version: "1.0.0", Owner: owner, Change: "behaviour",
		Description: "Spanish legal text classifier, the base of the exchange test.", License: "Apache-2.0",
		Tags:      []models.Tag{{Tag: "task:text-classification", AuthorConfidence: 1}, {Tag: "lang:es", AuthorConfidence: 0.9}},
		Economics: models.Economics{Currency: "USD", PerInference: 40, PerFineTune: 300},
		Files:     files,
	}
}

// TestModelExchange is the model exchange end to end on real components: a
// docker-registry on loopback, the embedded Temporal stack with containerd,
// the embedded transparency log and the ledger. A base model is pushed and
// found by search; one job fine-tunes it and publishes the child; a third
// job uses the child, and the base's owner receives its royalty.
func TestModelExchange(t *testing.T) {
	image := needStack(t)
	srv := registrytest.StartServer(t)
	home := newHome(t)
	for _, tenant := range []string{"ann", "bob"} {
		fund(t, home, tenant, 5000)
	}
	ctx := context.Background()
	st, err := stack.Start(ctx, stack.Options{Home: home, Local: local.Options{
		AutoCreateTenants: true, HostInputs: hostInputs(), Registry: srv.Addr, RegistryPlainHTTP: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()
	x := st.Local.Activities.Models.(activities.Exchange).X
	rex, _ := publisher(t, home, x, "rex")

	// Push the base model, signed by its owner's key.
	base := trainBase(t, "rex/base-classifier")
	pushed, err := rex.Push(ctx, base, baseManifest(t, base, "rex/base-classifier", "rex"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pushed %s %s (signature at log index %d)", pushed.Ref, pushed.Digest, pushed.Signature.LogIndex)

	// Search finds it, ranked with reasons.
	reg := []string{"--registry", srv.Addr, "--registry-plain-http"}
	var found struct {
		Results []struct {
			Ref     string   `json:"ref"`
			Reasons []string `json:"reasons"`
		} `json:"results"`
	}
	if code, line := cliJSON(t, home, &found, append([]string{"model", "search", "task:text-classification lang:es legal"}, reg...)...); code != 0 ||
		len(found.Results) == 0 || found.Results[0].Ref != "rex/base-classifier@1.0.0" {
		t.Fatalf("search: exit %d %s", code, line)
	}
	if !strings.Contains(strings.Join(found.Results[0].Reasons, "\n"), "signed and logged") {
		t.Errorf("search reasons do not show the verified provenance: %q", found.Results[0].Reasons)
	}

	// ann fine-tunes the base and publishes the child.
	tune := writeSpec(t, t.TempDir(), specDoc{Name: "tune", Tenant: "ann", MaxPrice: 1000, Tasks: trainerTask("tune", image,
		[]string{"trainer", "train", "--init", "/models/base/model.json", "--samples", "500", "--epochs", "20", "--seed", "4", "--out", "/out/model"},
		"  models: [{name: rex/base-classifier, version: \"^1.0\", as: /models/base}]\n"+
			"  outputs: [model/model.json, model/metrics.json]\n"+
			"  publish:\n    - {output: model/, name: ann/tuned-classifier, version: 1.0.0, license: MIT, tags: [task:text-classification, lang:es],\n"+
			"       prices: {currency: USD, per_inference: 100}, royalty_basis_points: 2000}\n"+
			"  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n")})
	tuned := runJob(t, st, tune)
	if len(tuned.Published) != 1 || tuned.Published[0].Ref != "ann/tuned-classifier@1.0.0" {
		t.Fatalf("published %+v", tuned.Published)
	}
	recordHistory(t, st.Client, tuned.JobID, "job_publish")

	// bob uses the child: its price goes 80 % to ann, 20 % up to rex.
	use := writeSpec(t, t.TempDir(), specDoc{Name: "use", Tenant: "bob", MaxPrice: 1000, Tasks: trainerTask("use", image,
		[]string{"trainer", "train", "--init", "/models/clf/model.json", "--samples", "200", "--epochs", "1", "--seed", "5"},
		"  models: [{name: ann/tuned-classifier, version: \"1.0.0\", as: /models/clf}]\n"+
			"  outputs: [model.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n")})
	runJob(t, st, use)

	l := ledgerCheck(t, home)
	for acct, want := range map[string]int64{"owner:rex": 300 + 20, "owner:ann": 80} {
		if got, err := l.Balance(ctx, acct, "USD"); err != nil || got != want {
			t.Errorf("%s: balance %d (%v), want %d", acct, got, err, want)
		}
	}
	stmt, err := l.Statement(ctx, settlement.TenantAccount("bob"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(stmt)
	if !strings.Contains(string(b), "royalty rex/base-classifier@1.0.0") {
		t.Errorf("bob's statement does not show the royalty split: %s", b)
	}

	// The child's lineage names its parent, the royalty and the training job.
	var tree exchange.Node
	if code, line := cliJSON(t, home, &tree, append([]string{"model", "lineage", "ann/tuned-classifier@1.0.0"}, reg...)...); code != 0 ||
		len(tree.Parents) != 1 || tree.Parents[0].Ref != "rex/base-classifier@1.0.0" || tree.Parents[0].RoyaltyBP != 2000 ||
		tree.Receipt == nil || tree.Receipt.JobID != tuned.JobID {
		t.Fatalf("lineage: exit %d %s", code, line)
	}
	if code, line := cliJSON(t, home, nil, append([]string{"model", "verify", "ann/tuned-classifier@1.0.0"}, reg...)...); code != 0 {
		t.Fatalf("verify the published child: exit %d %s", code, line)
	}
	modelVerifyFailures(t, home, srv, rex, x, reg)
}

// runJob submits a spec and waits for it to settle.
func runJob(t *testing.T, st *stack.Stack, spec string) workflows.JobResult {
	t.Helper()
	sub, err := jobclient.Submit(context.Background(), st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, st.Client, sub.JobID, 5*time.Minute)
	if res.Status != workflows.StatusSettled {
		t.Fatalf("job %s %s: %s %s", sub.JobID, res.Status, res.Class, res.Error)
	}
	return res
}

// modelVerifyFailures: `accord model verify` fails (exit 7) on a flipped
// byte in a file, a signer not trusted for the owner, and a signature the
// log does not have.
func modelVerifyFailures(t *testing.T, home string, srv *registrytest.Server, rex, x *exchange.Exchange, reg []string) {
	ctx := context.Background()
	verify := func(ref, want string) {
		t.Helper()
		code, line := cliJSON(t, home, nil, append([]string{"model", "verify", ref}, reg...)...)
		if code != 7 || !strings.Contains(line, want) {
			t.Errorf("verify %s: exit %d %s, want exit 7 mentioning %q", ref, code, line, want)
		}
	}
	// A flipped byte in the registry's copy of a file.
	flipped := trainBase(t, "rex/flipped")
	p, err := rex.Push(ctx, flipped, baseManifest(t, flipped, "rex/flipped", "rex"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := x.Registry.Inspect(ctx, p.Ref)
	if err != nil {
		t.Fatal(err)
	}
	hex := strings.TrimPrefix(string(m.Layers[0].Digest), "sha256:")
	blob := filepath.Join(srv.Dir, "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	verify(p.Ref, "does not match")
	dir := trainBase(t, "rex/others")

	// A signer trusted for another tenant publishing rex's model.
	mallory, _ := publisher(t, home, x, "mallory")
	if _, err := mallory.Push(ctx, dir, baseManifest(t, dir, "rex/impostor", "rex")); err != nil {
		t.Fatal(err)
	}
	verify("rex/impostor@1.0.0", "untrusted")

	// Statements attached with a log entry the log does not have.
	mf := baseManifest(t, dir, "rex/unlogged", "rex")
	pushed, err := x.Registry.Push(ctx, dir, mf)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := models.Sign(ctx, rex.Key, mf)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := models.SignPublication(ctx, rex.Key, mf, pushed.Digest)
	if err != nil {
		t.Fatal(err)
	}
	for typ, env := range map[string][]byte{exchange.TypeSignature: sig, exchange.TypePublication: pub} {
		data, _ := json.Marshal(exchange.Logged{Envelope: env, UUID: strings.Repeat("ab", 32), LogIndex: 999999})
		if err := x.Registry.Attach(ctx, mf.Name, pushed.Digest, registry.Attachment{ArtifactType: typ, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	verify("rex/unlogged@1.0.0", "log entry")
}
