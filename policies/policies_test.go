package policies

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/specs"
)

const guardrails = `policy: guardrails
version: 2
rules:
  - name: max-eight-gpus
    on: admission
    expr: spec.tasks.all(t, t.resources.gpu.count <= 8)
    message: at most 8 GPUs per task
  - name: within-spend-quota
    on: admission
    expr: tenant.spend_remaining < 0 || plan.max_cost <= tenant.spend_remaining
    message: budget exceeds the remaining spend quota
  - name: pinned-images
    on: admission
    expr: images.all(i, i.contains("@sha256:") || i.startsWith("oci-archive:"))
  - name: eu-only-for-eu-residency
    on: placement
    expr: '!has(spec.placement.residency) || !("EU" in spec.placement.residency) || provider.region.startsWith("eu-")'
    message: EU data must stay in EU regions
  - name: tee-when-asked
    on: placement
    expr: '!has(spec.placement.tee) || has(provider.tee)'
  - name: all-stages-logged
    on: audit
    expr: '["spec","admission","negotiation","placement","execution","verification","settlement"].all(s, s in stages)'
`

func mustParse(t *testing.T, src string) *Set {
	t.Helper()
	p, err := Parse("guardrails.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return &Set{Policies: []*Policy{p}}
}

func plan(tenant string, gpus int, cost int64, image string, residency []string, tee string) *specs.Plan {
	task := specs.Task{Name: "train", Image: image, Resources: specs.Resources{MilliCPU: 1000, MemoryBytes: 1 << 30,
		GPU: specs.GPU{Count: gpus}, MaxDuration: time.Hour}}
	sp := &specs.Spec{Name: "job", Version: "1.0.0", Tenant: tenant, Tasks: []specs.Task{task},
		Placement: specs.Placement{Residency: residency, TEE: tee},
		Budget:    specs.Budget{MaxPrice: cost, Currency: "USD"}}
	return &specs.Plan{Name: "job", Tenant: tenant, Tasks: []specs.PlanTask{{Task: task}}, MaxCost: cost, Currency: "USD", Spec: sp}
}

const digestImage = "registry.local/trainer@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestDecisionTable checks admission and placement decisions on a table of
// specs × providers.
func TestDecisionTable(t *testing.T) {
	set := mustParse(t, guardrails)
	unlimited := TenantView{Name: "ml", SpendRemaining: -1, GPUHoursRemaining: -1, Currency: "USD"}
	admission := []struct {
		name   string
		plan   *specs.Plan
		tenant TenantView
		denied []string
	}{
		{"ok", plan("ml", 2, 500, digestImage, nil, ""), unlimited, nil},
		{"too many gpus", plan("ml", 9, 500, digestImage, nil, ""), unlimited, []string{"max-eight-gpus"}},
		{"over quota", plan("ml", 1, 500, digestImage, nil, ""), TenantView{Name: "ml", SpendRemaining: 499}, []string{"within-spend-quota"}},
		{"exactly quota", plan("ml", 1, 500, digestImage, nil, ""), TenantView{Name: "ml", SpendRemaining: 500}, nil},
		{"unpinned image", plan("ml", 1, 5, "docker.io/library/python:3", nil, ""), unlimited, []string{"pinned-images"}},
		{"archive image", plan("ml", 1, 5, "oci-archive:images/trainer.tar", nil, ""), unlimited, nil},
		{"two failures", plan("ml", 12, 5, "python:3", nil, ""), unlimited, []string{"max-eight-gpus", "pinned-images"}},
	}
	for _, tc := range admission {
		t.Run("admission/"+tc.name, func(t *testing.T) {
			res := set.Evaluate(StageAdmission, "ml", AdmissionInput(tc.plan, tc.tenant, Signer{}))
			var denied []string
			for _, d := range res.Decisions {
				if d.Policy != "guardrails" || d.Version != 2 || !strings.HasPrefix(d.Digest, "sha256:") || !strings.HasPrefix(d.InputDigest, "sha256:") {
					t.Errorf("decision lacks provenance: %+v", d)
				}
				if !d.Allowed {
					denied = append(denied, d.Rule)
				}
			}
			if len(res.Decisions) != 3 {
				t.Errorf("got %d admission decisions, want 3", len(res.Decisions))
			}
			if fmt.Sprint(denied) != fmt.Sprint(tc.denied) || res.Allowed != (len(tc.denied) == 0) {
				t.Errorf("denied %v (allowed %v), want %v", denied, res.Allowed, tc.denied)
			}
		})
	}

	providers := []ProviderView{
		{Name: "eu-pool", Region: "eu-west-1"},
		{Name: "us-pool", Region: "us-east-1"},
		{Name: "us-tee", Region: "us-east-1", TEE: "sev-snp"},
	}
	specsTable := []struct {
		name  string
		spec  *specs.Spec
		allow []string // providers allowed
	}{
		{"anywhere", plan("ml", 1, 5, digestImage, nil, "").Spec, []string{"eu-pool", "us-pool", "us-tee"}},
		{"eu residency", plan("ml", 1, 5, digestImage, []string{"EU"}, "").Spec, []string{"eu-pool"}},
		{"tee", plan("ml", 1, 5, digestImage, nil, "sev-snp").Spec, []string{"us-tee"}},
		{"eu and tee", plan("ml", 1, 5, digestImage, []string{"EU"}, "any").Spec, nil},
	}
	for _, tc := range specsTable {
		t.Run("placement/"+tc.name, func(t *testing.T) {
			filter := set.PlacementFilter(tc.spec)
			var allowed []string
			for _, p := range providers {
				ok, reason := filter(p)
				if ok {
					allowed = append(allowed, p.Name)
				} else if reason == "" {
					t.Errorf("%s denied without a reason", p.Name)
				}
			}
			if fmt.Sprint(allowed) != fmt.Sprint(tc.allow) {
				t.Errorf("allowed %v, want %v", allowed, tc.allow)
			}
		})
	}

	all := []AttestationView{}
	for _, s := range []string{"spec", "admission", "negotiation", "placement", "execution", "verification", "settlement"} {
		all = append(all, AttestationView{Stage: s})
	}
	if res := set.Evaluate(StageAudit, "ml", AuditInput("job-1", "ml", "sha256:00", all)); !res.Allowed {
		t.Errorf("complete chain not compliant: %v", res.Reasons())
	}
	if res := set.Evaluate(StageAudit, "ml", AuditInput("job-1", "ml", "sha256:00", all[:6])); res.Allowed {
		t.Error("chain without settlement counted as compliant")
	}
}

func TestTenantScopedPolicies(t *testing.T) {
	a, err := Parse("a.yaml", []byte("policy: only-a\nversion: 1\ntenant: a\nrules:\n  - name: never\n    on: admission\n    expr: 'false'\n"))
	if err != nil {
		t.Fatal(err)
	}
	set := &Set{Policies: []*Policy{a}}
	in := AdmissionInput(plan("b", 0, 1, digestImage, nil, ""), TenantView{}, Signer{})
	if res := set.Evaluate(StageAdmission, "b", in); !res.Allowed || len(res.Decisions) != 0 {
		t.Errorf("tenant a's policy applied to tenant b: %+v", res)
	}
	if res := set.Evaluate(StageAdmission, "a", in); res.Allowed {
		t.Error("tenant a's policy not applied to tenant a")
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"syntax", "policy: p\nversion: 1\nrules:\n  - name: r\n    on: admission\n    expr: spec.tasks.all(t,\n",
			"p.yaml:6:"},
		{"undeclared", "policy: p\nversion: 1\nrules:\n  - name: r\n    on: admission\n    expr: provider.region == 'x'\n",
			"p.yaml:6:11: rule \"r\": undeclared reference to 'provider'"},
		{"not bool", "policy: p\nversion: 1\nrules:\n  - name: r\n    on: admission\n    expr: '1 + 2'\n",
			"p.yaml:6:11: rule \"r\": expression is int, want bool"},
		{"bad stage", "policy: p\nversion: 1\nrules:\n  - name: r\n    on: execute\n    expr: 'true'\n",
			`p.yaml:6:11: rule "r": on must be admission, placement or audit, not "execute"`},
		{"unknown key", "policy: p\nversion: 1\nrulez: []\n", "p.yaml:3:1: line 3: field rulez not found"},
		{"no version", "policy: p\nrules: []\n", "p.yaml:1:1: missing or non-positive version"},
		{"duplicate", "policy: p\nversion: 1\nrules:\n  - {name: r, on: audit, expr: 'true'}\n  - {name: r, on: audit, expr: 'true'}\n",
			`p.yaml:5:`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src))
			if !errors.Is(err, ErrCompile) {
				t.Fatalf("err = %v, want ErrCompile", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestEvaluationErrorDenies(t *testing.T) {
	set := mustParse(t, "policy: p\nversion: 1\nrules:\n  - name: r\n    on: admission\n    expr: spec.no_such_field > 1\n")
	res := set.Evaluate(StageAdmission, "ml", AdmissionInput(plan("ml", 0, 1, digestImage, nil, ""), TenantView{}, Signer{}))
	if res.Allowed || !strings.Contains(res.Decisions[0].Reason, "evaluation error") {
		t.Errorf("an erroring rule must deny: %+v", res)
	}
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "tenants.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestQuotaExhaustionAndRelease(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.PutTenant(ctx, Tenant{Name: "ml", Currency: "USD", SpendQuota: 1000, GPUHoursQuota: 10}); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, "ml", "job-1", 600, 4); err != nil {
		t.Fatal(err)
	}
	// Idempotent: the same job again reserves nothing more.
	if err := s.Reserve(ctx, "ml", "job-1", 600, 4); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.Usage(ctx, "ml"); u.Spend != 600 || u.SpendRemaining != 400 || u.GPUHours != 4 {
		t.Fatalf("usage after one job: %+v", u)
	}
	if err := s.Reserve(ctx, "ml", "job-2", 500, 1); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over-spend reserve: %v, want ErrQuotaExceeded", err)
	}
	if err := s.Reserve(ctx, "ml", "job-2", 100, 7); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("over-GPU reserve: %v, want ErrQuotaExceeded", err)
	}
	// job-1 ran cheaper than its cap: consuming frees the rest.
	if err := s.Consume(ctx, "job-1", 250, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Reserve(ctx, "ml", "job-2", 500, 7); err != nil {
		t.Fatalf("after consume: %v", err)
	}
	// Refund of job-2 releases it, twice is harmless.
	for range 2 {
		if err := s.Release(ctx, "job-2"); err != nil {
			t.Fatal(err)
		}
	}
	if u, _ := s.Usage(ctx, "ml"); u.Spend != 250 || u.GPUHours != 1 {
		t.Fatalf("usage after release: %+v", u)
	}
	// A new period starts from zero.
	s.now = func() time.Time { return time.Now().AddDate(0, 2, 0) }
	if u, _ := s.Usage(ctx, "ml"); u.Spend != 0 || u.SpendRemaining != 1000 {
		t.Fatalf("usage in a new period: %+v", u)
	}
}

func TestAdmitter(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	set := mustParse(t, guardrails)
	trusted := []string{"k1", "k3"} // the trust store's keys for tenant ml
	verify := func(_ context.Context, ss SignedSpec) (string, error) {
		// The fake signature is "signed-by:<key>:<doc>".
		doc := ss.Document
		if ss.Now.IsZero() || ss.Tenant != "ml" {
			return "", fmt.Errorf("verifier called without the admission time or tenant: %+v", ss)
		}
		rest, ok := strings.CutPrefix(string(ss.Signature), "signed-by:")
		if !ok {
			return "", errors.New("malformed signature")
		}
		key, body, _ := strings.Cut(rest, ":")
		if body != string(doc) {
			return "", errors.New("signature does not match the document")
		}
		for _, k := range trusted {
			if k == key {
				return key, nil
			}
		}
		return "", fmt.Errorf("key %s is not trusted", key)
	}
	a := &Admitter{Policies: set, Store: s, Verify: verify}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutTenant(ctx, Tenant{Name: "ml", Currency: "USD", SpendQuota: 1000, RequireSigned: true, Signers: []string{"k1"}}))
	doc := []byte("# spec\n")
	p := plan("ml", 1, 400, digestImage, nil, "")

	cases := []struct {
		name string
		doc  []byte
		sig  string
		want error
	}{
		{"unsigned", doc, "", ErrUnsigned},
		{"untrusted key", doc, "signed-by:k2:# spec\n", ErrUnsigned},
		{"trusted but not the tenant's signer", doc, "signed-by:k3:# spec\n", ErrUnsigned},
		{"modified after signing", []byte("# spec, edited\n"), "signed-by:k1:# spec\n", ErrUnsigned},
		{"signed", doc, "signed-by:k1:# spec\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ad, err := a.Admit(ctx, AdmitRequest{JobID: "job-" + tc.name, Plan: p, Document: tc.doc, Signature: []byte(tc.sig)})
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if ad.Allowed || ad.Reason == "" {
					t.Errorf("denied admission lacks a reason: %+v", ad)
				}
				if u, _ := s.Usage(ctx, "ml"); u.Spend != 0 {
					t.Errorf("a rejected spec reserved quota: %+v", u)
				}
				return
			}
			if !ad.Allowed || ad.Signer.KeyID != "k1" || ad.Reserved != 400 {
				t.Errorf("admission: %+v", ad)
			}
		})
	}
	// Retrying the admitted job reserves nothing more; a second job does not fit.
	if _, err := a.Admit(ctx, AdmitRequest{JobID: "job-signed", Plan: p, Document: doc, Signature: []byte("signed-by:k1:# spec\n")}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Admit(ctx, AdmitRequest{JobID: "job-next", Plan: plan("ml", 1, 700, digestImage, nil, ""), Document: doc, Signature: []byte("signed-by:k1:# spec\n")}); !errors.Is(err, ErrDenied) {
		t.Fatalf("second job over quota: %v, want the CEL quota rule to deny", err)
	}
	// Unknown tenants are rejected unless AutoCreate.
	if ad, err := a.Admit(ctx, AdmitRequest{JobID: "job-x", Plan: plan("nobody", 0, 1, digestImage, nil, "")}); !errors.Is(err, ErrUnknownTenant) ||
		ad.Allowed || !strings.Contains(err.Error(), "accord tenant put nobody") {
		t.Fatalf("unknown tenant: %+v %v, want a denial saying how to create it", ad, err)
	}
	if _, err := s.Tenant(ctx, "nobody"); !errors.Is(err, ErrUnknownTenant) {
		t.Fatalf("a denied job created its tenant: %v", err)
	}
	a.AutoCreate = true
	if _, err := a.Admit(ctx, AdmitRequest{JobID: "job-x", Plan: plan("nobody", 0, 1, digestImage, nil, "")}); err != nil {
		t.Fatalf("auto-created tenant: %v", err)
	}
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if err := s.PutTenant(ctx, Tenant{Name: "ml", Currency: "USD"}); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, Principal{Tenant: "ml", Role: RoleTenant, Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Authenticate(ctx, tok)
	if err != nil || p.Tenant != "ml" || p.Role != RoleTenant {
		t.Fatalf("authenticate: %+v %v", p, err)
	}
	for _, bad := range []string{"", "acc_", tok + "x", strings.ToUpper(tok)} {
		if _, err := s.Authenticate(ctx, bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", bad, err)
		}
	}
	if _, err := s.CreateToken(ctx, Principal{Tenant: "ghost", Role: RoleTenant}); !errors.Is(err, ErrUnknownTenant) {
		t.Errorf("token for unknown tenant: %v", err)
	}
	if !p.CanWrite("ml") || p.CanRead("other") {
		t.Error("tenant principal scope wrong")
	}
	aud := Principal{Tenant: "*", Role: RoleAuditor}
	if !aud.CanRead("ml") || aud.CanWrite("ml") {
		t.Error("auditor must read everything and write nothing")
	}
}
