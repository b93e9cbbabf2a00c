package market

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/specs"
)

// stackedPlan is a job of CPU-only tasks (millicores each, one hour),
// every task its own co-location group, bargained by stacked alternating
// offers with deadline rounds; preference 0 makes the buyer Boulware.
func stackedPlan(budget int64, rounds int, discount float64, cpus ...int64) *specs.Plan {
	var tasks []specs.Task
	for i, c := range cpus {
		tasks = append(tasks, specs.Task{Name: string(rune('a' + i)), Resources: specs.Resources{MilliCPU: c, MaxDuration: time.Hour}})
	}
	p := plan("job", budget, tasks...)
	p.Spec.Negotiation = specs.Negotiation{Protocol: ProtocolStacked, Rounds: rounds, Discount: discount}
	return p
}

// cpuSeller sells up to capMilli millicores at cpuHour per core-hour; its
// alternating-offers opening is opening × its ask, it concedes linearly and
// does not discount.
func cpuSeller(name string, capMilli, cpuHour int64, opening float64) *Static {
	return &Static{P: Profile{Name: name, Region: "eu-west", Reputation: 0.5,
		Free:     Capacity{MilliCPU: capMilli, MemoryBytes: 64 * gib},
		Pricing:  Pricing{Currency: "EUR", CPUHour: cpuHour},
		Strategy: Strategy{Opening: opening, Discount: 1}}}
}

type move struct {
	round      int
	party      string // "" the buyer
	kind       string
	totalMinor int64
}

func movesOf(res *Result) []move {
	var out []move
	for _, r := range res.Rounds {
		out = append(out, move{r.Round, r.Provider, r.Kind, r.Price})
	}
	return out
}

// TestStackedOneProviderConcedes is the bilateral case worked by hand:
// budget 1000, buyer opening 500 (half), Boulware buyer (β 0.2) offering
// ⌊500 + 500·(t/4)^5⌋ = 500, 500, 515, 618, 1000; a linear seller with ask
// 400 opening at 800, asking ⌈800 − 100·t⌉; no discounting on either side.
// Round 0: the buyer offers 500, below the seller's next ask 700: it
// counters 800. Round 1: 800 is worse for the buyer than its next offer
// 515 (AC-next): it offers min(800, 500) = 500; the seller counters 700.
// Round 2: the buyer offers 515, at least the seller's next ask 500: it
// accepts.
func TestStackedOneProviderConcedes(t *testing.T) {
	res, err := Negotiate(context.Background(), stackedPlan(1000, 4, 1, 1000), []Provider{cpuSeller("s", 8000, 400, 2)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []move{{0, "", MoveOffer, 500}, {0, "s", MoveOffer, 800}, {1, "", MoveOffer, 500}, {1, "s", MoveOffer, 700},
		{2, "", MoveOffer, 515}, {2, "s", MoveAccept, 515}}
	if got := movesOf(res); !slices.Equal(got, want) {
		t.Fatalf("moves %v, want %v", got, want)
	}
	if len(res.Awards) != 1 {
		t.Fatalf("awards %+v", res.Awards)
	}
	a := res.Awards[0]
	if a.Provider != "s" || a.Price != 515 || a.Ask != 400 || a.Pricing != ProtocolStacked || a.Basis != BasisAgreement ||
		a.Explanation != "paid 5.15 EUR: the price agreed with s for tasks a in round 2 of stacked alternating offers" {
		t.Fatalf("award %+v", a)
	}
	if l := res.Rounds[0].Shares[0].Limit; l != 1000 {
		t.Fatalf("a lone group's limit %d, want the whole budget", l)
	}
	if res.Protocol != ProtocolStacked || res.Welfare != 1000-400 || res.Bids[0].Ask != 515 || len(res.Winners) != 1 {
		t.Fatalf("result %+v", res)
	}
}

// TestStackedWalkAwayReallocates: group a fits only A (ask 400, quote
// 800); group b fits A alone but not with a, D (ask 420, opening ×1: quote
// 420) and E (ask 350, quote 700). The buyer gives b to D, the cheapest
// quote; its limit for b is 1000 − ⌊1000·800/1220⌋ = 345 < 420, so D walks away at
// its first move, and b goes to E: limits 1000·800/1500 = 533 and 466, both
// above the asks, and the two agree.
func TestStackedWalkAwayReallocates(t *testing.T) {
	provs := []Provider{cpuSeller("A", 4000, 100, 2), cpuSeller("D", 1000, 420, 1), cpuSeller("E", 1000, 350, 2)}
	res, err := Negotiate(context.Background(), stackedPlan(1000, 6, 1, 4000, 1000), provs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := res.Rounds[0]
	if first.Kind != MoveOffer || len(first.Shares) != 2 || first.Shares[1].Provider != "D" || first.Shares[1].Limit != 345 {
		t.Fatalf("opening offer %+v", first)
	}
	var walk, reoffer Round
	for i, r := range res.Rounds {
		if r.Kind == MoveWalkAway {
			walk, reoffer = r, res.Rounds[i+1]
			break
		}
	}
	if walk.Provider != "D" || walk.Round != 0 {
		t.Fatalf("walk-away %+v", walk)
	}
	if reoffer.Provider != "" || reoffer.Kind != MoveOffer || reoffer.Round != 0 || reoffer.Shares[1].Provider != "E" ||
		reoffer.Shares[0].Limit != 533 || reoffer.Shares[1].Limit != 467 {
		t.Fatalf("re-allocating offer %+v", reoffer)
	}
	got := map[string]Award{}
	for _, a := range res.Awards {
		got[a.Provider] = a
	}
	if len(res.Awards) != 2 || got["A"].Hardware[0].Task != "a" || got["E"].Hardware[0].Task != "b" {
		t.Fatalf("awards %+v", res.Awards)
	}
	if got["A"].Price < 400 || got["E"].Price < 350 || got["A"].Price+got["E"].Price > 1000 {
		t.Fatalf("prices %d + %d outside the asks and the budget", got["A"].Price, got["E"].Price)
	}
	if !hasDiagnostic(res, "D", "walk-away") {
		t.Fatalf("diagnostics %+v", res.Diagnostics)
	}
}

func hasDiagnostic(res *Result, provider, constraint string) bool {
	for _, d := range res.Diagnostics {
		if d.Provider == provider && d.Constraint == constraint {
			return true
		}
	}
	return false
}

// TestStackedDeadline: with one round to go after the first (rounds: 1),
// group b's cheapest quote D walks away in round 0, its replacement F
// (listed earlier, so it first moves in round 1) walks away in round 1, and
// E, seated in round 1 after its turn, never moves: A accepts the buyer's
// last offer, and the deadline passes.
func TestStackedDeadline(t *testing.T) {
	provs := []Provider{cpuSeller("E", 1000, 350, 2), cpuSeller("F", 1000, 450, 1.2), cpuSeller("A", 4000, 100, 2),
		cpuSeller("D", 1000, 420, 1)}
	res, err := Negotiate(context.Background(), stackedPlan(1000, 1, 1, 4000, 1000), provs, Options{})
	if !errors.Is(err, ErrNoAgreement) {
		t.Fatalf("err %v, want ErrNoAgreement", err)
	}
	if len(res.Awards) != 0 || !hasDiagnostic(res, "D", "walk-away") || !hasDiagnostic(res, "F", "walk-away") ||
		!hasDiagnostic(res, "A", "deadline") || !hasDiagnostic(res, "E", "deadline") {
		t.Fatalf("awards %+v diagnostics %+v", res.Awards, res.Diagnostics)
	}
	n := len(res.Rounds)
	if offer, last := res.Rounds[n-2], res.Rounds[n-1]; offer.Round != 1 || offer.Provider != "" || offer.Shares[1].Provider != "E" ||
		last.Round != 1 || last.Provider != "A" || last.Kind != MoveAccept {
		t.Fatalf("last moves %+v %+v, want the buyer's offer to E in round 1 and A's acceptance", offer, last)
	}
	// Without E, b's hosts walk away but A, which holds a and has no room
	// for b as well: no agreement either.
	res, err = Negotiate(context.Background(), stackedPlan(1000, 5, 1, 4000, 1000), provs[1:], Options{})
	if !errors.Is(err, ErrNoAgreement) || !hasDiagnostic(res, "", "capacity") {
		t.Fatalf("err %v diagnostics %+v", err, res.Diagnostics)
	}
	// b's hosts both walk away (asks 900 and 920 above the limit 818), and
	// X cannot host b: every host of b walked away.
	res, err = Negotiate(context.Background(), stackedPlan(1000, 5, 1, 1000, 2000),
		[]Provider{cpuSeller("X", 1000, 100, 2), cpuSeller("Y1", 2000, 450, 1), cpuSeller("Y2", 2000, 460, 1)}, Options{})
	if !errors.Is(err, ErrNoAgreement) || !hasDiagnostic(res, "", "walk-away") || !hasDiagnostic(res, "Y1", "walk-away") ||
		!hasDiagnostic(res, "Y2", "walk-away") {
		t.Fatalf("err %v diagnostics %+v", err, res.Diagnostics)
	}
	// A seller whose ask exceeds the whole budget takes no part: no offers.
	res, err = Negotiate(context.Background(), stackedPlan(1000, 5, 1, 1000), []Provider{cpuSeller("hi", 1000, 1200, 1)}, Options{})
	if !errors.Is(err, ErrNoOffers) || !hasDiagnostic(res, "hi", "budget") {
		t.Fatalf("err %v diagnostics %+v", err, res.Diagnostics)
	}
	// A group nobody can host is no offer at all.
	_, err = Negotiate(context.Background(), stackedPlan(1000, 5, 1, 4000, 9000), provs, Options{})
	if !errors.Is(err, ErrNoOffers) {
		t.Fatalf("err %v, want ErrNoOffers", err)
	}
}

// TestStackedSplitsOverTwoProviders: x can host only group a, y only group
// b (their capacities), so the job is split: one award each, with only its
// own tasks' hardware, and each provider's offer names its group.
func TestStackedSplitsOverTwoProviders(t *testing.T) {
	provs := []Provider{cpuSeller("x", 4000, 100, 2), cpuSeller("y", 2000, 120, 2)}
	res, err := Negotiate(context.Background(), stackedPlan(2000, 6, 0.9, 4000, 2000), provs, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Awards) != 2 || res.Awards[0].Provider != "x" || res.Awards[1].Provider != "y" {
		t.Fatalf("awards %+v", res.Awards)
	}
	var total int64
	for _, a := range res.Awards {
		if len(a.Hardware) != 1 || a.Price < a.Ask || !strings.Contains(a.Explanation, "over 2 providers") {
			t.Fatalf("award %+v", a)
		}
		total += a.Price
	}
	if total > 2000 || res.Bids[0].Ask != total || len(res.Bids[0].Providers) != 2 {
		t.Fatalf("total %d, bid %+v", total, res.Bids[0])
	}
	if len(res.Groups) != 2 || !slices.Equal(res.Offers[0].Group, []string{"a"}) || !slices.Equal(res.Offers[1].Group, []string{"b"}) {
		t.Fatalf("groups %v offers %+v", res.Groups, res.Offers)
	}
	// Given room for both, one provider hosts the whole job: one award.
	res, err = Negotiate(context.Background(), stackedPlan(2000, 6, 0.9, 4000, 2000), []Provider{cpuSeller("x", 8000, 100, 2)}, Options{})
	if err != nil || len(res.Awards) != 1 || len(res.Awards[0].Hardware) != 2 || res.Offers[0].Group != nil {
		t.Fatalf("err %v awards %+v", err, res.Awards)
	}
	// A job workflow's negotiation (WholeJobs) allocates the job whole:
	// neither x nor y hosts both groups, so nobody can take it.
	_, err = Negotiate(context.Background(), stackedPlan(2000, 6, 0.9, 4000, 2000), provs, Options{WholeJobs: true})
	if !errors.Is(err, ErrNoOffers) {
		t.Fatalf("whole jobs over providers that host one group each: %v, want ErrNoOffers", err)
	}
	both := []Provider{cpuSeller("x", 4000, 100, 2), cpuSeller("y", 8000, 120, 2)}
	res, err = Negotiate(context.Background(), stackedPlan(2000, 6, 0.9, 4000, 2000), both, Options{WholeJobs: true})
	if err != nil || len(res.Awards) != 1 || res.Awards[0].Provider != "y" || len(res.Awards[0].Hardware) != 2 {
		t.Fatalf("whole job: err %v awards %+v", err, res.Awards)
	}
}

// TestStackedDeterministic: the same plan and profiles give the same
// record, byte for byte.
func TestStackedDeterministic(t *testing.T) {
	run := func() []byte {
		provs := []Provider{cpuSeller("E", 1000, 350, 2), cpuSeller("A", 4000, 100, 2), cpuSeller("D", 1000, 420, 1),
			cpuSeller("G", 6000, 130, 3)}
		res, err := Negotiate(context.Background(), stackedPlan(3000, 12, 0.95, 4000, 1000, 1000), provs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := run()
	for range 5 {
		if again := run(); !bytes.Equal(first, again) {
			t.Fatalf("records differ:\n%s\n%s", first, again)
		}
	}
}

// TestStackedExtremeOpenings: openings of NaN, +Inf and 1e300 times the
// ask stay within int64 (NaN is the default 2×) and keep the invariants.
func TestStackedExtremeOpenings(t *testing.T) {
	for _, open := range []float64{math.NaN(), math.Inf(1), 1e300} {
		s := []*Static{cpuSeller("p", 4000, 100, open), cpuSeller("q", 2000, 150, 2)}
		checkStacked(t, stackedCase{budget: 2000, rounds: 5, discount: 0.9, cpus: []int64{3000, 2000}, sellers: s})
		a, _, _, err := sellerOf(&Buyer{Tasks: []specs.Task{{Name: "a", Resources: specs.Resources{MilliCPU: 1000, MaxDuration: time.Hour}}}}, &s[0].P)
		if err != nil || a.Initial < a.Reserve || a.Initial > MaxMoney {
			t.Fatalf("opening %v: agent %+v, %v", open, a, err)
		}
	}
}

func TestStackedTooManyGroups(t *testing.T) {
	cpus := make([]int64, MaxStackedGroups+1)
	for i := range cpus {
		cpus[i] = 100
	}
	_, err := Negotiate(context.Background(), stackedPlan(1000, 5, 1, cpus...), []Provider{cpuSeller("x", 64000, 1, 2)}, Options{})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
}

// stackedCase is one small negotiation of the exhaustive test.
type stackedCase struct {
	budget   int64
	rounds   int
	discount float64
	pref     float64
	cpus     []int64
	sellers  []*Static
}

func (c stackedCase) String() string {
	var s []string
	for _, p := range c.sellers {
		s = append(s, fmt.Sprintf("%s(cap %d, rate %d, open %.1f, %s)", p.P.Name, p.P.Free.MilliCPU, p.P.Pricing.CPUHour,
			p.P.Strategy.Opening, p.P.Strategy.Concession))
	}
	return fmt.Sprintf("budget %d rounds %d δ %v pref %v tasks %v sellers %s", c.budget, c.rounds, c.discount, c.pref, c.cpus, strings.Join(s, " "))
}

// checkStacked runs c and checks the protocol's invariants: an agreement
// pays every provider at least its ask and all of them together at most
// the budget, places every task exactly once with one award per provider,
// and ends with every party but the proposer accepting; no agreement is
// ErrNoOffers or ErrNoAgreement with diagnostics, and comes only after a
// walk-away (a provider within its limit always agrees by the deadline).
func checkStacked(t *testing.T, c stackedCase) {
	t.Helper()
	pl := stackedPlan(c.budget, c.rounds, c.discount, c.cpus...)
	pl.Spec.Budget.Preference = c.pref
	provs := make([]Provider, len(c.sellers))
	for i, s := range c.sellers {
		provs[i] = s
	}
	res, err := Negotiate(context.Background(), pl, provs, Options{})
	if err != nil {
		switch {
		case errors.Is(err, ErrNoOffers):
		case errors.Is(err, ErrNoAgreement):
			if !slices.ContainsFunc(res.Rounds, func(r Round) bool { return r.Kind == MoveWalkAway }) {
				t.Fatalf("%v: no agreement without a walk-away: %v", c, err)
			}
		default:
			t.Fatalf("%v: %v", c, err)
		}
		if res == nil || len(res.Diagnostics) == 0 || len(res.Awards) != 0 {
			t.Fatalf("%v: %v without diagnostics or with awards: %+v", c, err, res)
		}
		return
	}
	var total int64
	placed := map[string]int{}
	seen := map[string]bool{}
	for _, a := range res.Awards {
		if a.Price < a.Ask || a.Price > c.budget {
			t.Fatalf("%v: %s paid %d, ask %d, budget %d", c, a.Provider, a.Price, a.Ask, c.budget)
		}
		if seen[a.Provider] {
			t.Fatalf("%v: two awards for %s", c, a.Provider)
		}
		seen[a.Provider] = true
		total += a.Price
		for _, h := range a.Hardware {
			placed[h.Task]++
		}
	}
	if total > c.budget {
		t.Fatalf("%v: total %d above the budget", c, total)
	}
	if len(placed) != len(c.cpus) {
		t.Fatalf("%v: placed %v", c, placed)
	}
	for task, n := range placed {
		if n != 1 {
			t.Fatalf("%v: task %s placed %d times", c, task, n)
		}
	}
	checkAgreementMoves(t, c, res)
}

// checkAgreementMoves replays the record: after the last offer every other
// party accepted it, and the agreed total is that offer's.
func checkAgreementMoves(t *testing.T, c stackedCase, res *Result) {
	t.Helper()
	last := -1
	for i, r := range res.Rounds {
		if r.Kind != MoveAccept {
			last = i
		}
	}
	offer := res.Rounds[last]
	accepted := map[string]bool{}
	for _, r := range res.Rounds[last+1:] {
		if r.Price != offer.Price {
			t.Fatalf("%v: accepted %d, offered %d", c, r.Price, offer.Price)
		}
		accepted[r.Provider] = true
	}
	parties := map[string]bool{"": true}
	for _, a := range res.Awards {
		parties[a.Provider] = true
	}
	delete(parties, offer.Provider)
	if len(accepted) != len(parties) || offer.Kind != MoveOffer || res.Bids[0].Ask != offer.Price {
		t.Fatalf("%v: offer %+v accepted by %v, parties %v", c, offer, accepted, parties)
	}
}

// TestStackedExhaustive runs every combination of a small grid: one to
// three tasks, three sellers drawn from capacities, rates, openings and
// tactics, budgets, deadlines, discounts and buyer preferences.
func TestStackedExhaustive(t *testing.T) {
	type seller struct {
		capMilli, rate int64
		opening        float64
		tactic         string
	}
	var sellers []seller
	for _, capMilli := range []int64{1000, 3000} {
		for _, rate := range []int64{150, 400} {
			for _, opening := range []float64{1, 2.5} {
				for _, tactic := range []string{"boulware", "conceder"} {
					sellers = append(sellers, seller{capMilli, rate, opening, tactic})
				}
			}
		}
	}
	jobs := [][]int64{{1000}, {1000, 2000}, {1000, 1000, 1000}}
	n := 0
	for _, cpus := range jobs {
		for i := 0; i < len(sellers); i += 3 {
			for j := 1; j < len(sellers); j += 5 {
				for k := 2; k < len(sellers); k += 7 {
					for _, budget := range []int64{300, 900, 2000} {
						for _, rounds := range []int{1, 3, 10} {
							for _, disc := range []float64{0.8, 1} {
								for _, pref := range []float64{0, 1} {
									var st []*Static
									for x, s := range []seller{sellers[i], sellers[j], sellers[k]} {
										p := cpuSeller(fmt.Sprintf("p%d", x), s.capMilli, s.rate, s.opening)
										p.P.Strategy.Concession, p.P.Strategy.Discount = s.tactic, disc
										st = append(st, p)
									}
									checkStacked(t, stackedCase{budget, rounds, disc, pref, cpus, st})
									n++
								}
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d negotiations checked", n)
}

// FuzzStacked checks the same invariants on drawn negotiations.
func FuzzStacked(f *testing.F) {
	f.Add(int64(1000), uint8(4), uint8(2), uint16(1000), uint16(3000), uint16(400), uint16(150), uint8(20), uint8(10), uint8(3))
	f.Add(int64(900), uint8(1), uint8(3), uint16(4000), uint16(1000), uint16(100), uint16(420), uint8(20), uint8(10), uint8(0))
	f.Fuzz(func(t *testing.T, budget int64, rounds, ntasks uint8, capA, capB, rateA, rateB uint16, openA, openB, mix uint8) {
		if budget <= 0 || budget > 1_000_000 {
			return
		}
		cpus := make([]int64, 1+int(ntasks)%4)
		for i := range cpus {
			cpus[i] = 500 * int64(1+(int(mix)+i)%4)
		}
		var st []*Static
		for x, s := range []struct {
			capMilli, rate uint16
			open           uint8
		}{{capA, rateA, openA}, {capB, rateB, openB}, {capA / 2, rateA + rateB, openA + openB}} {
			p := cpuSeller(fmt.Sprintf("p%d", x), int64(s.capMilli)+500, int64(s.rate), 1+float64(s.open%40)/10)
			p.P.Strategy.Concession = []string{"boulware", "linear", "conceder"}[(int(mix)+x)%3]
			st = append(st, p)
		}
		checkStacked(t, stackedCase{budget, 1 + int(rounds)%30, 0.5 + float64(mix%6)/10, float64(mix%3) / 2, cpus, st})
	})
}
