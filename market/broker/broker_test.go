package broker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/specs"
)

func quickstartPlan(t *testing.T) *specs.Plan {
	t.Helper()
	s, err := specs.Load("../../examples/quickstart.md")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := specs.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func localProvider(cpu int64) *market.Static {
	return &market.Static{P: market.Profile{
		Name: "local", Region: "local", Reputation: 1,
		Free:    market.Capacity{MilliCPU: cpu, MemoryBytes: 8 << 30, DiskBytes: 64 << 30},
		Pricing: market.Pricing{Currency: "USD", CPUHour: 4, MemoryGiBHour: 1},
		SLA:     market.SLAOffer{MaxRefundPercent: 100, MaxSlashPercent: 100, Stake: 300},
	}}
}

func sellers(ps ...market.Provider) func(context.Context) ([]market.Provider, error) {
	return func(context.Context) ([]market.Provider, error) { return ps, nil }
}

func TestNegotiate(t *testing.T) {
	plan := quickstartPlan(t)
	b := Broker{Providers: sellers(localProvider(4000)), DefaultRuntime: "containerd"}
	aw, err := b.Negotiate(context.Background(), "job-1", plan)
	if err != nil {
		t.Fatal(err)
	}
	if aw.Provider != "local" || aw.Runtime != "containerd" || aw.Price <= 0 || aw.Price > plan.Spec.Budget.MaxPrice ||
		aw.Currency != "USD" || aw.Result == nil || len(aw.Result.Awards) != 1 {
		t.Errorf("award %+v", aw)
	}
	// A provider too small for the task cannot bid: no offers, with the reason.
	b.Providers = sellers(localProvider(100))
	_, err = b.Negotiate(context.Background(), "job-1", plan)
	if !errors.Is(err, market.ErrNoOffers) || !strings.Contains(err.Error(), "local") {
		t.Errorf("small provider: %v, want ErrNoOffers naming local", err)
	}
}

// The award carries the agreed SLA terms; a spec asking for terms no
// provider accepts (issue 19's bond-draining SLA) gets no offer, and the
// error names the sla constraint.
func TestNegotiateSLATerms(t *testing.T) {
	plan := quickstartPlan(t)
	b := Broker{Providers: sellers(localProvider(4000)), DefaultRuntime: "containerd"}
	aw, err := b.Negotiate(context.Background(), "job-1", plan)
	if err != nil {
		t.Fatal(err)
	}
	req := plan.Spec.Settlement.SLA
	if aw.SLA == nil || aw.SLA.RefundPercent != req.RefundPercent || aw.SLA.SlashPercent != req.SlashPercent || aw.SLA.Stake != 300 {
		t.Fatalf("agreed terms %+v for request %+v", aw.SLA, req)
	}
	plan.Spec.Settlement.SLA.SlashPercent = 100
	strict := localProvider(4000)
	strict.P.SLA.MaxSlashPercent = 50
	b.Providers = sellers(strict)
	_, err = b.Negotiate(context.Background(), "job-1", plan)
	if !errors.Is(err, market.ErrNoOffers) || !strings.Contains(err.Error(), "(sla)") {
		t.Fatalf("slash above the offer: %v, want ErrNoOffers naming sla", err)
	}
}

// The runtime kind comes from Runtime, then RuntimeFor, then the default;
// Assign's devices reach the award, and its failure fails the negotiation.
func TestNegotiateRuntimeAndDevices(t *testing.T) {
	plan := quickstartPlan(t)
	b := Broker{
		Providers:      sellers(localProvider(4000)),
		DefaultRuntime: "containerd",
		RuntimeFor:     func(p string) string { return "pool:" + p },
		Assign: func(_ context.Context, provider string, plan *specs.Plan) ([]TaskDevices, error) {
			return []TaskDevices{{Task: plan.Tasks[0].Name, Node: provider + "-n1", GPUDevices: []string{"g0"}}}, nil
		},
	}
	aw, err := b.Negotiate(context.Background(), "job-1", plan)
	if err != nil {
		t.Fatal(err)
	}
	if aw.Runtime != "pool:local" || len(aw.Devices) != 1 || aw.Devices[0].Node != "local-n1" || aw.Devices[0].Task != plan.Tasks[0].Name {
		t.Errorf("award %+v", aw)
	}
	b.Runtime = map[string]string{"local": "containerd-2"}
	if aw, err = b.Negotiate(context.Background(), "job-1", plan); err != nil || aw.Runtime != "containerd-2" {
		t.Errorf("runtime %q, %v; want containerd-2 from Runtime", aw.Runtime, err)
	}
	boom := errors.New("inventory unreachable")
	b.Assign = func(context.Context, string, *specs.Plan) ([]TaskDevices, error) { return nil, boom }
	if _, err := b.Negotiate(context.Background(), "job-1", plan); !errors.Is(err, boom) {
		t.Errorf("assign failure: %v", err)
	}
}

// The tenant's placement rules run on every provider before the market:
// an excluded provider is a "policy" diagnostic naming the rule, and when
// every provider is excluded the job has no offers and says which rule.
func TestNegotiatePlacementPolicy(t *testing.T) {
	plan := quickstartPlan(t)
	pol, err := policies.Parse("deny-local.yaml", []byte(`policy: deny-local
version: 1
rules:
  - name: not-local
    on: placement
    expr: provider.name != "local"
    message: the local pool may not run this tenant's jobs
`))
	if err != nil {
		t.Fatal(err)
	}
	set := &policies.Set{Policies: []*policies.Policy{pol}}
	other := localProvider(4000)
	other.P.Name, other.P.Region = "remote", "eu-west-1"
	b := Broker{Providers: sellers(localProvider(4000), other), DefaultRuntime: "containerd", Placement: set.PlacementFilter}
	aw, err := b.Negotiate(context.Background(), "job-1", plan)
	if err != nil {
		t.Fatal(err)
	}
	if aw.Provider != "remote" {
		t.Fatalf("award went to %s, want remote", aw.Provider)
	}
	var found bool
	for _, d := range aw.Result.Diagnostics {
		if d.Provider == "local" && d.Constraint == "policy" && strings.Contains(d.Detail, "deny-local/not-local") {
			found = true
		}
	}
	if !found {
		t.Errorf("no policy diagnostic for local: %+v", aw.Result.Diagnostics)
	}
	// Only the local pool: excluded, no offers, the reason names the rule.
	b.Providers = sellers(localProvider(4000))
	_, err = b.Negotiate(context.Background(), "job-1", plan)
	if !errors.Is(err, market.ErrNoOffers) || !strings.Contains(err.Error(), "deny-local/not-local") || !strings.Contains(err.Error(), "local") {
		t.Errorf("all excluded: %v", err)
	}
}

func TestProviderView(t *testing.T) {
	v := ProviderView(market.Profile{Name: "p", Region: "eu-west-1", TEE: []string{"sev-snp"}, Reputation: 0.5,
		Free: market.Capacity{GPUs: []market.GPUPool{{Model: "H100", MemoryBytes: 80 << 30, Count: 2}}}})
	if v.Name != "p" || v.Region != "eu-west-1" || v.TEE != "sev-snp" || v.Reputation != 0.5 || len(v.GPUs) != 2 || v.GPUs[1].Model != "H100" {
		t.Errorf("view %+v", v)
	}
}

// A failover renegotiates without the lost provider: the other wins, and
// with nobody else left the error names the exclusion.
func TestNegotiateExcluding(t *testing.T) {
	plan := quickstartPlan(t)
	a, b2 := localProvider(4000), localProvider(4000)
	a.P.Name, b2.P.Name = "gpu-a", "gpu-b"
	b2.P.Pricing.CPUHour = 40 // dearer: gpu-a wins unless excluded
	b := Broker{Providers: sellers(a, b2), DefaultRuntime: "containerd"}
	aw, err := b.Negotiate(context.Background(), "job-1", plan)
	if err != nil || aw.Provider != "gpu-a" {
		t.Fatalf("award %+v %v, want gpu-a", aw, err)
	}
	aw, err = b.NegotiateExcluding(context.Background(), "job-1", plan, map[string]string{"gpu-a": "lost mid-task"})
	if err != nil || aw.Provider != "gpu-b" {
		t.Fatalf("award without gpu-a %+v %v, want gpu-b", aw, err)
	}
	_, err = b.NegotiateExcluding(context.Background(), "job-1", plan, map[string]string{"gpu-a": "lost", "gpu-b": "ran the job"})
	if !errors.Is(err, market.ErrNoOffers) || !strings.Contains(err.Error(), "(excluded)") {
		t.Errorf("everyone excluded: %v, want ErrNoOffers naming the exclusion", err)
	}
}

// A bargain with an agent buyer takes its sellers among the providers the
// placement policies allow; the excluded are diagnostics, and none left is
// no offers with the rule's reason. Awarded gives the winner's runtime.
func TestSnapshotPlacementPolicy(t *testing.T) {
	plan := quickstartPlan(t)
	plan.Spec.Negotiation = specs.Negotiation{Protocol: market.ProtocolAlternating, Rounds: 10, Buyer: specs.BuyerAgent}
	pol, err := policies.Parse("deny-local.yaml", []byte("policy: deny-local\nversion: 1\nrules:\n  - name: not-local\n    on: placement\n    expr: provider.name != \"local\"\n    message: no\n"))
	if err != nil {
		t.Fatal(err)
	}
	set := &policies.Set{Policies: []*policies.Policy{pol}}
	other := localProvider(4000)
	other.P.Name, other.P.Region = "remote", "eu-west-1"
	b := Broker{Providers: sellers(localProvider(4000), other), Runtime: map[string]string{"remote": "nomad"}, DefaultRuntime: "containerd", Placement: set.PlacementFilter}
	s, err := b.Snapshot(context.Background(), "job-1", plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Sellers) != 1 || s.Sellers[0].Provider != "remote" || len(s.Diagnostics) != 1 || s.Diagnostics[0].Constraint != "policy" {
		t.Fatalf("sellers %+v diagnostics %+v", s.Sellers, s.Diagnostics)
	}
	p, err := s.Play([]market.Move{{Accept: "remote"}})
	if err != nil {
		t.Fatal(err)
	}
	aw, err := b.Awarded(context.Background(), plan, p.Result)
	if err != nil || aw.Provider != "remote" || aw.Runtime != "nomad" || aw.Price != s.Sellers[0].Agent.Initial {
		t.Fatalf("awarded %+v: %v", aw, err)
	}
	b.Providers = sellers(localProvider(4000))
	if _, err := b.Snapshot(context.Background(), "job-1", plan); !errors.Is(err, market.ErrNoOffers) || !strings.Contains(err.Error(), "deny-local/not-local") {
		t.Errorf("all excluded: %v", err)
	}
}

// A result placing one job on several providers is refused: the job
// workflow runs a job on one provider, and taking the first award alone
// would run every task there at that provider's share of the price.
func TestAwardedRefusesSplit(t *testing.T) {
	res := &market.Result{Currency: "USD", Awards: []market.Award{
		{Job: "j", Provider: "a", Price: 100}, {Job: "j", Provider: "b", Price: 200},
	}}
	_, err := Broker{}.Awarded(context.Background(), nil, res)
	if !errors.Is(err, market.ErrNoOffers) || !strings.Contains(err.Error(), "split the job over 2 providers") {
		t.Fatalf("split result: err %v", err)
	}
}

// splitPlan is a two-task DAG (a → b) whose spec lets the market split it.
func splitPlan(t *testing.T, split bool) *specs.Plan {
	t.Helper()
	doc := "---\naccord: v1\nname: pipe\nversion: 1.0.0\ntenant: demo\n---\n\n## Tasks\n\n```yaml\n" +
		"a:\n  image: oci-archive:x.tar\n  command: [x]\n  outputs: [out.txt]\n  resources: {cpu: 1, memory: 256MiB, max_duration: 5m}\n" +
		"b:\n  image: oci-archive:x.tar\n  command: [x]\n  depends_on: [a]\n  inputs:\n    - {name: in.txt, from: a:out.txt}\n  resources: {cpu: 1, memory: 256MiB, max_duration: 5m}\n```\n\n" +
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\n```\n\n## Placement\n\n```yaml\nsplit: " + strconv.FormatBool(split) + "\n```\n"
	s, err := specs.Parse("pipe.md", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := specs.Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// A job whose spec splits it, on two providers with room for one task
// each, is awarded in two parts that run each task once; the same job
// without split finds no provider that fits it whole.
func TestNegotiateSplit(t *testing.T) {
	a, c := localProvider(1000), localProvider(1000)
	a.P.Name, c.P.Name = "prov-a", "prov-c"
	b := Broker{Providers: sellers(a, c), Runtime: map[string]string{"prov-c": "nomad"}, DefaultRuntime: "containerd"}
	aw, err := b.Negotiate(context.Background(), "job-1", splitPlan(t, true))
	if err != nil {
		t.Fatal(err)
	}
	if len(aw.Parts) != 2 || aw.Provider != aw.Parts[0].Provider || aw.Price != aw.Parts[0].Price+aw.Parts[1].Price {
		t.Fatalf("award %+v", aw)
	}
	got := map[string]string{}
	for _, p := range aw.Parts {
		if len(p.Tasks) != 1 || p.SLA == nil || p.Runtime != b.runtime(p.Provider) {
			t.Errorf("part %+v", p)
		}
		got[p.Tasks[0]] = p.Provider
	}
	if len(got) != 2 || got["a"] == got["b"] {
		t.Errorf("tasks %v, want a and b on different providers", got)
	}
	if _, err := b.Negotiate(context.Background(), "job-1", splitPlan(t, false)); !errors.Is(err, market.ErrNoOffers) && !errors.Is(err, market.ErrNoAgreement) {
		t.Errorf("whole job on one-task providers: %v, want no offers", err)
	}
}

// A split result that runs a task twice, or none, is refused.
func TestAwardedSplitCoverage(t *testing.T) {
	plan := splitPlan(t, true)
	hw := func(ts ...string) []market.Hardware {
		var out []market.Hardware
		for _, t := range ts {
			out = append(out, market.Hardware{Task: t})
		}
		return out
	}
	for name, awards := range map[string][]market.Award{
		"twice":   {{Provider: "x", Hardware: hw("a", "b")}, {Provider: "y", Hardware: hw("b")}},
		"missing": {{Provider: "x", Hardware: hw("a")}, {Provider: "y"}},
		"same":    {{Provider: "x", Hardware: hw("a")}, {Provider: "x", Hardware: hw("b")}},
	} {
		if _, err := (Broker{}).Awarded(context.Background(), plan, &market.Result{Currency: "USD", Awards: awards}); err == nil {
			t.Errorf("%s: split award accepted", name)
		}
	}
}
