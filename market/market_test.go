package market

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/accordmesh/accord/specs"
)

const gib = int64(1) << 30

func plan(name string, budget int64, tasks ...specs.Task) *specs.Plan {
	s := &specs.Spec{Name: name, Tasks: tasks, Budget: specs.Budget{MaxPrice: budget, Currency: "EUR"}}
	p := &specs.Plan{Name: name, Spec: s, Currency: "EUR"}
	for _, t := range tasks {
		p.Tasks = append(p.Tasks, specs.PlanTask{Task: t})
	}
	return p
}

func task(name string, cpu int64, mem int64, gpus int, model string) specs.Task {
	return specs.Task{Name: name, Resources: specs.Resources{MilliCPU: cpu, MemoryBytes: mem,
		GPU: specs.GPU{Count: gpus, Model: model}, MaxDuration: time.Hour}}
}

func provider(name string, cpuHour int64, gpus int) *Static {
	p := Profile{Name: name, Region: "eu-west", Jurisdictions: []string{"EU"}, Reputation: 0.9,
		Free:    Capacity{MilliCPU: 16000, MemoryBytes: 64 * gib, GPUs: []GPUPool{{Model: "h100", MemoryBytes: 80 * gib, Count: gpus}}},
		Pricing: Pricing{Currency: "EUR", CPUHour: cpuHour, MemoryGiBHour: 1, GPUHour: map[string]int64{"h100": 200}}}
	return &Static{P: p}
}

func TestNegotiateAuctionSecondPrice(t *testing.T) {
	ctx := context.Background()
	pl := plan("train", 10000, task("train", 4000, 8*gib, 1, "h100"))
	provs := []Provider{provider("a", 100, 2), provider("b", 50, 2), provider("c", 80, 2)}
	res, err := Negotiate(ctx, pl, provs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// ask = 4 cores·rate + 8 GiB·1 + 1 GPU·200 for one hour.
	askA, askB, askC := int64(4*100+8+200), int64(4*50+8+200), int64(4*80+8+200)
	if len(res.Awards) != 1 || res.Awards[0].Provider != "b" || res.Awards[0].Ask != askB {
		t.Fatalf("awards %+v", res.Awards)
	}
	// A single job: VCG pays the winner the second-lowest ask.
	if got, want := res.Awards[0].Price, min(askA, askC); got != want {
		t.Fatalf("price %d, want second price %d", got, want)
	}
	if a := res.Awards[0]; a.Basis != BasisNextBest || a.Reserve != 5000 || a.Explanation != "paid 5.28 EUR: the next-best offer, by c" {
		t.Fatalf("basis %q reserve %d explanation %q", a.Basis, a.Reserve, a.Explanation)
	}
	// The buyer values the job at its reserve (default: half the budget) + 1.
	if !res.Optimal || res.Welfare != 5000+1-askB {
		t.Fatalf("optimal %v welfare %d", res.Optimal, res.Welfare)
	}
	hw := res.Awards[0].Hardware
	if len(hw) != 1 || hw[0].GPUModel != "h100" || hw[0].GPUMemoryBytes != 80*gib || hw[0].GPUs != 1 {
		t.Fatalf("hardware %+v", hw)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Fatal(err)
	}
}

func TestNoOfferDiagnostics(t *testing.T) {
	ctx := context.Background()
	pl := plan("job", 1000, task("t", 4000, 8*gib, 4, "h100"))
	pl.Spec.Placement = specs.Placement{Regions: []string{"eu-west"}, TEE: "sev-snp", DenyProviders: []string{"denied"}}
	far := provider("far", 10, 8)
	far.P.Region = "us-east"
	far.P.TEE = []string{"sev-snp"}
	small := provider("small", 10, 2)
	small.P.TEE = []string{"sev-snp"}
	plain := provider("plain", 10, 8)
	denied := provider("denied", 10, 8)
	denied.P.TEE = []string{"sev-snp"}
	dear := provider("dear", 100000, 8)
	dear.P.TEE = []string{"sev-snp"}
	res, err := Negotiate(ctx, pl, []Provider{far, small, plain, denied, dear}, Options{})
	if !errors.Is(err, ErrNoOffers) {
		t.Fatalf("err %v, want ErrNoOffers", err)
	}
	want := map[string]string{"far": "region", "small": "gpu", "plain": "tee", "denied": "deny", "dear": "budget"}
	got := map[string]string{}
	for _, d := range res.Diagnostics {
		got[d.Provider] = d.Constraint
	}
	for p, c := range want {
		if got[p] != c {
			t.Errorf("provider %s: constraint %q, want %q (all: %+v)", p, got[p], c, res.Diagnostics)
		}
	}
}

func TestClearBatchRespectsCapacity(t *testing.T) {
	ctx := context.Background()
	// Three jobs of 4 GPUs each; provider x has 8 GPUs, y has 4.
	var plans []*specs.Plan
	for _, n := range []string{"j1", "j2", "j3"} {
		plans = append(plans, plan(n, 5000, task("t", 2000, 4*gib, 4, "h100")))
	}
	x, y := provider("x", 10, 8), provider("y", 20, 4)
	res, err := Clear(ctx, plans, nil, []Provider{x, y}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]int{}
	jobs := map[string]bool{}
	for _, a := range res.Awards {
		for _, h := range a.Hardware {
			used[a.Provider] += h.GPUs
		}
		if jobs[a.Job] {
			t.Fatalf("job %s placed twice", a.Job)
		}
		jobs[a.Job] = true
		if a.Price < a.Ask || a.Price > 5000 {
			t.Fatalf("award %+v: price outside [ask, budget]", a)
		}
	}
	if used["x"] > 8 || used["y"] > 4 {
		t.Fatalf("capacity oversold: %v", used)
	}
	if len(jobs) != 3 {
		t.Fatalf("placed %d jobs, want all 3 (x hosts two, y one): %+v", len(jobs), res.Awards)
	}
}

func TestSplitPlacementOfColocationGroups(t *testing.T) {
	ctx := context.Background()
	a, b := task("a", 1000, gib, 8, "h100"), task("b", 1000, gib, 8, "h100")
	a.Group, b.Group = "ga", "gb"
	pl := plan("big", 100000, a, b)
	res, err := Negotiate(ctx, pl, []Provider{provider("p1", 10, 8), provider("p2", 10, 8)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Awards) != 2 || res.Awards[0].Provider == res.Awards[1].Provider {
		t.Fatalf("want both groups on distinct providers: %+v", res.Awards)
	}
	var total int64
	for _, aw := range res.Awards {
		total += aw.Price
	}
	if total > 100000 {
		t.Fatalf("job pays %d over its budget", total)
	}
	// A job workflow's negotiation places jobs whole: no provider hosts
	// both groups, so nothing trades, and the diagnostics say why.
	res, err = Negotiate(ctx, pl, []Provider{provider("p1", 10, 8), provider("p2", 10, 8)}, Options{WholeJobs: true})
	if !errors.Is(err, ErrNoOffers) || res == nil || len(res.Awards) != 0 || len(res.Diagnostics) == 0 {
		t.Fatalf("whole jobs only: err %v, result %+v; want ErrNoOffers with diagnostics", err, res)
	}
	// Co-located tasks are never split.
	b.Group = "ga"
	pl = plan("big", 100000, a, b)
	if _, err := Negotiate(ctx, pl, []Provider{provider("p1", 10, 8), provider("p2", 10, 8)}, Options{}); !errors.Is(err, ErrNoOffers) {
		t.Fatalf("co-located 16-GPU job on 8-GPU providers: err %v, want ErrNoOffers", err)
	}
}

func TestAlternatingOffers(t *testing.T) {
	ctx := context.Background()
	pl := plan("solo", 2000, task("t", 4000, 8*gib, 1, "h100"))
	pl.Spec.Negotiation = specs.Negotiation{Protocol: ProtocolAlternating, Rounds: 12, Discount: 0.9}
	res, err := Negotiate(ctx, pl, []Provider{provider("a", 100, 1), provider("b", 50, 1)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	aw := res.Awards[0]
	if aw.Price < aw.Ask || aw.Price > 2000 {
		t.Fatalf("agreement %d outside [reserve %d, budget 2000]", aw.Price, aw.Ask)
	}
	if len(res.Rounds) == 0 || !res.Rounds[len(res.Rounds)-1].Accepted {
		t.Fatalf("rounds %+v", res.Rounds)
	}
	// A multi-task job bargains for the whole job on one provider.
	pl2 := plan("two", 2000, task("a", 1000, gib, 0, ""), task("b", 1000, gib, 0, ""))
	pl2.Spec.Negotiation.Protocol = ProtocolAlternating
	res2, err := Negotiate(ctx, pl2, []Provider{provider("a", 100, 1)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Awards) != 1 || len(res2.Awards[0].Hardware) != 2 {
		t.Fatalf("whole-job bargain: %+v", res2.Awards)
	}
}

func TestBargainConvergesAndDeadline(t *testing.T) {
	for _, tc := range []struct {
		name         string
		seller, buyr float64
	}{{"linear", BetaLinear, BetaLinear}, {"boulware", BetaBoulware, BetaLinear}, {"conceder", BetaConceder, BetaConceder}} {
		b := Agent{Initial: 500, Reserve: 1000, Beta: tc.buyr, Discount: 0.95, Buyer: true}
		s := Agent{Initial: 1600, Reserve: 800, Beta: tc.seller, Discount: 0.95}
		rounds, price, ok := Bargain("p", b, s, 20)
		if !ok || price < 800 || price > 1000 {
			t.Fatalf("%s: ok %v price %d, want agreement in [800, 1000]", tc.name, ok, price)
		}
		if len(rounds) > 21 {
			t.Fatalf("%s: %d rounds past the deadline", tc.name, len(rounds))
		}
	}
	// No zone of agreement: the deadline passes without a deal.
	b := Agent{Initial: 100, Reserve: 700, Beta: 1, Discount: 0.9, Buyer: true}
	s := Agent{Initial: 1600, Reserve: 800, Beta: 1, Discount: 0.9}
	if rounds, _, ok := Bargain("p", b, s, 10); ok || len(rounds) != 11 {
		t.Fatalf("want no agreement after 11 offers, got ok %v with %d", ok, len(rounds))
	}
	// A Boulware seller gets a better price than a conceding one.
	b = Agent{Initial: 500, Reserve: 1000, Beta: 1, Discount: 0.95, Buyer: true}
	_, hard, ok1 := Bargain("p", b, Agent{Initial: 1600, Reserve: 800, Beta: BetaBoulware, Discount: 0.95}, 20)
	_, soft, ok2 := Bargain("p", b, Agent{Initial: 1600, Reserve: 800, Beta: BetaConceder, Discount: 0.95}, 20)
	if !ok1 || !ok2 || hard <= soft {
		t.Fatalf("boulware %d (ok %v) should beat conceder %d (ok %v)", hard, ok1, soft, ok2)
	}
}

// loadYAML writes yml to a providers file and loads it.
func loadYAML(t *testing.T, yml string) ([]Provider, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	return LoadProviders(path)
}

func TestLoadProviders(t *testing.T) {
	ps, err := loadYAML(t, `providers:
  - name: gpu-eu
    region: eu-west
    jurisdictions: [EU]
    tee: [sev-snp]
    reputation: 0.8
    start_delay: 90s
    free: {cpu_millis: 8000, memory_bytes: 34359738368, gpus: [{model: h100, memory_bytes: 85899345920, count: 2}]}
    pricing: {currency: EUR, cpu_hour: 10, memory_gib_hour: 1, gpu_hour: {h100: 250}, surge: 0.5, reserve: 20}
    strategy: {name: markup, markup: 0.1, concession: boulware}
    sla: {max_refund_percent: 50, max_slash_percent: 25, stake: 2000, slash_on_tests: true, min_deadline: 10m}
`)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ps[0].Profile(context.Background())
	if p.Name != "gpu-eu" || p.StartDelay != 90*time.Second || p.Free.GPUs[0].Count != 2 || p.Pricing.GPUHour["h100"] != 250 {
		t.Fatalf("profile %+v", p)
	}
	if want := (SLAOffer{MaxRefundPercent: 50, MaxSlashPercent: 25, Stake: 2000, SlashOnTests: true, MinDeadline: 10 * time.Minute}); p.SLA != want {
		t.Fatalf("sla %+v, want %+v", p.SLA, want)
	}
	if _, err := loadYAML(t, "providers:\n  - name: x\n    reputaton: 2\n"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("typo in a field: err %v, want ErrInvalid", err)
	}
}

func TestAskSurgeAndReserve(t *testing.T) {
	p := provider("p", 100, 4).P
	p.Total = Capacity{MilliCPU: 16000, MemoryBytes: 64 * gib, GPUs: []GPUPool{{Model: "h100", Count: 4}}}
	hw := []Hardware{{Task: "t", MilliCPU: 1000, GPUs: 4, GPUModel: "h100"}}
	dur := map[string]time.Duration{"t": 30 * time.Minute}
	base, err := ask(&p, hw, dur)
	if err != nil || base != (100+4*200)/2 {
		t.Fatalf("ask %d %v", base, err)
	}
	p.Pricing.Surge = 1 // full utilisation after placing 4 of 4 GPUs doubles the price
	if a, _ := ask(&p, hw, dur); a != 2*base {
		t.Fatalf("surge ask %d, want %d", a, 2*base)
	}
	p.Pricing.Reserve = 10 * base
	if a, _ := ask(&p, hw, dur); a != 10*base {
		t.Fatalf("reserve ask %d", a)
	}
	if _, ok := hourCost(1<<62, 1<<62, 1, time.Hour); ok {
		t.Fatal("overflow not detected")
	}
}
