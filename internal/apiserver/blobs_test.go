package apiserver

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/policies"
)

// agentFixture is the API with the provider routes, two agents' tokens
// (gpu-a ran job-a of tenant a; gpu-b ran job-b of tenant b) and their
// HTTP stores.
type agentFixture struct {
	fixture
	a, b     artifacts.HTTP
	tokGPUA  string
	plan     string // job-a's plan, granted to gpu-a
	input    string // tenant a's input, granted to gpu-a as a's
	otherJob string // job-b's plan, granted to gpu-b only
}

func setupAgents(t *testing.T, maxBlob int64) agentFixture {
	t.Helper()
	ctx := context.Background()
	f := setup(t, WithRateLimit(0, 0))
	l := f.data
	f.api = New(f.jobs, f.store, WithLogger(slog.New(slog.DiscardHandler)), WithRateLimit(0, 0), WithBlobs(l, maxBlob))
	f.srv.Config.Handler = f.api
	tok := func(name string) string {
		s, err := f.store.CreateToken(ctx, policies.Principal{Role: policies.RoleProvider, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	af := agentFixture{fixture: f, tokGPUA: tok("gpu-a")}
	af.a = artifacts.HTTP{BaseURL: f.srv.URL, Token: af.tokGPUA}
	af.b = artifacts.HTTP{BaseURL: f.srv.URL, Token: tok("gpu-b")}
	put := func(s string) string {
		d, err := l.Put(ctx, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	af.plan, af.input, af.otherJob = put(`{"plan":"a"}`), put("tenant a's weights"), put(`{"plan":"b"}`)
	if err := l.Grant("a", af.input); err != nil {
		t.Fatal(err)
	}
	for _, g := range []struct {
		job, provider, tenant, digest string
		input                         bool
	}{{"job-a", "gpu-a", "a", af.plan, false}, {"job-a", "gpu-a", "a", af.input, true}, {"job-b", "gpu-b", "b", af.otherJob, false}} {
		if err := l.AwardJob(g.job, g.provider, g.tenant); err != nil {
			t.Fatal(err)
		}
		if err := l.GrantJob(ctx, g.job, g.digest, g.input); err != nil {
			t.Fatal(err)
		}
	}
	return af
}

// An agent reads what its jobs were granted, digest-verified; another
// job's blob, or one that does not exist, is 404 (ErrNotFound) alike, and
// an input is the agent's to use only as its own tenant's.
func TestAgentBlobGrants(t *testing.T) {
	f := setupAgents(t, DefaultMaxData)
	ctx := context.Background()
	if b, err := f.a.Get(ctx, f.plan, 1<<20); err != nil || string(b) != `{"plan":"a"}` {
		t.Fatalf("own plan: %q %v", b, err)
	}
	for _, d := range []string{f.otherJob, artifacts.Digest([]byte("nothing"))} {
		if _, err := f.a.Get(ctx, d, 1<<20); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("gpu-a reading %s: %v, want ErrNotFound", d, err)
		}
	}
	if _, err := f.b.Get(ctx, f.plan, 1<<20); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("gpu-b reading job-a's plan: %v", err)
	}
	for _, c := range []struct {
		s       artifacts.HTTP
		tenant  string
		digest  string
		want    bool
		comment string
	}{
		{f.a, "a", f.input, true, "a's input on a's agent"},
		{f.a, "b", f.input, false, "a's input passed off as b's"},
		{f.a, "a", f.plan, false, "a plan is no input"},
		{f.b, "a", f.input, false, "a's input on another agent"},
	} {
		if ok, err := c.s.Owns(c.tenant, c.digest); err != nil || ok != c.want {
			t.Errorf("%s: owns %v %v, want %v", c.comment, ok, err, c.want)
		}
	}
	dir := t.TempDir()
	p, err := f.a.Materialize(ctx, f.input, dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "tenant a's weights" {
		t.Errorf("materialized %q", b)
	}
	if _, err := f.a.Get(ctx, "sha256:nothex", 10); !errors.Is(err, artifacts.ErrDigest) {
		t.Errorf("bad digest: %v", err)
	}
	if code, _ := f.call(t, f.tokGPUA, "GET", "/v1/blobs/sha256:abc", ""); code != http.StatusBadRequest {
		t.Errorf("bad digest on the wire: %d, want 400", code)
	}
}

// Only provider tokens reach the provider routes: tenants, auditors and
// admins get 403, a missing token 401.
func TestAgentRoutesProviderOnly(t *testing.T) {
	f := setupAgents(t, DefaultMaxData)
	for _, rt := range ProviderRoutes {
		p := strings.ReplaceAll(rt.Path, "{digest}", f.plan)
		for _, tok := range []string{f.tokA, f.auditor, f.admin} {
			if code, out := f.call(t, tok, rt.Method, p+"?job=job-a", "x"); code != http.StatusForbidden {
				t.Errorf("%s %s with a non-provider token: %d %s, want 403", rt.Method, rt.Path, code, out)
			}
		}
		if code, _ := f.call(t, "", rt.Method, p, "x"); code != http.StatusUnauthorized {
			t.Errorf("%s %s without a token: %d, want 401", rt.Method, rt.Path, code)
		}
	}
}

// An agent pushes outputs of its own job: they are granted to the job's
// tenant (who may use them as inputs) and readable by the agent; another
// agent's job is 404, an output over the limit 413, and a push is
// idempotent.
func TestAgentOutputs(t *testing.T) {
	f := setupAgents(t, 64)
	ctx := context.Background()
	out := filepath.Join(t.TempDir(), "model.json")
	if err := os.WriteFile(out, []byte(`{"w":[1,2,3]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	want := artifacts.Digest([]byte(`{"w":[1,2,3]}`))
	for range 2 {
		res, err := f.a.PutOutput(ctx, "job-a", out)
		if err != nil || res.Digest != want || res.Tenant != "a" || res.Size != 13 {
			t.Fatalf("push: %+v %v", res, err)
		}
	}
	if ok, err := f.data.Owns("a", want); !ok || err != nil {
		t.Errorf("tenant a does not own its job's output: %v %v", ok, err)
	}
	if ok, _ := f.data.Owns("b", want); ok {
		t.Error("tenant b owns a's output")
	}
	if b, err := f.a.Get(ctx, want, 100); err != nil || string(b) != `{"w":[1,2,3]}` {
		t.Errorf("agent reads its output back: %q %v", b, err)
	}
	if _, err := f.b.PutOutput(ctx, "job-a", out); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("gpu-b pushing for job-a: %v, want ErrNotFound", err)
	}
	if _, err := f.a.PutOutput(ctx, "job-none", out); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("push for an unknown job: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 65), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.PutOutput(ctx, "job-a", big); !errors.Is(err, artifacts.ErrTooLarge) {
		t.Errorf("oversized output: %v, want ErrTooLarge (413)", err)
	}
	d, err := f.a.Put(ctx, []byte("scratch"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Get(ctx, d, 100); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("gpu-b reads gpu-a's scratch blob: %v", err)
	}
	if ok, _ := f.data.Owns("a", d); ok {
		t.Error("a scratch blob was granted to a tenant")
	}
}

// The client verifies: a blob corrupted in the server's store is
// ErrCorrupt, one over the caller's limit ErrTooLarge, and nothing half
// written is materialized.
func TestAgentBlobVerified(t *testing.T) {
	f := setupAgents(t, DefaultMaxData)
	ctx := context.Background()
	if _, err := f.a.Get(ctx, f.plan, 5); !errors.Is(err, artifacts.ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	h := strings.TrimPrefix(f.input, "sha256:")
	p := filepath.Join(f.data.Dir, "sha256", h[:2], h)
	if err := os.WriteFile(p, []byte("tenant a's weighTs"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.Get(ctx, f.input, 1<<20); !errors.Is(err, artifacts.ErrCorrupt) {
		t.Errorf("corrupt blob: %v, want ErrCorrupt", err)
	}
	dir := t.TempDir()
	if _, err := f.a.Materialize(ctx, f.input, dir); !errors.Is(err, artifacts.ErrCorrupt) {
		t.Errorf("materialize corrupt: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "sha256")); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
}

// A tree input reaches the agent whole: the grant on a tree covers its
// files, and every file is verified as it is materialized.
func TestAgentTreeMaterialize(t *testing.T) {
	f := setupAgents(t, DefaultMaxData)
	ctx := context.Background()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("A"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "b.txt"), []byte("B"), 0o644)
	tree, err := f.data.PutTree(ctx, src, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.data.Grant("a", tree); err != nil {
		t.Fatal(err)
	}
	if err := f.data.GrantJob(ctx, "job-a", tree, true); err != nil {
		t.Fatal(err)
	}
	p, err := f.a.Materialize(ctx, tree, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(p, "sub", "b.txt")); string(b) != "B" {
		t.Errorf("tree file: %q", b)
	}
	if _, err := f.b.Materialize(ctx, tree, t.TempDir()); !errors.Is(err, artifacts.ErrNotFound) {
		t.Errorf("another agent materializing the tree: %v", err)
	}
}
