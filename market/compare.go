package market

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/accordmesh/accord/specs"
)

// Comparing protocols on the same jobs (`make bench-saop`): synthetic
// multi-task jobs (SyntheticJob, those with at least two co-location
// groups) each negotiated alone against the same synthetic providers
// (SyntheticProviders) by every protocol, so that the differences are the
// protocols'.

// Variant is one way to negotiate in a comparison: a protocol; for the
// auction whether the buyer's reserve is its whole budget (by default it is
// half, so an auction never pays more than half the budget, where the
// bargaining protocols may pay up to all of it); and the buyer's
// cost-vs-latency preference when not the spec's (in the bargains it sets
// how fast the buyer concedes).
type Variant struct {
	Name            string   `json:"name"`
	Protocol        string   `json:"protocol"`
	ReserveAtBudget bool     `json:"reserve_at_budget,omitempty"`
	Preference      *float64 `json:"preference,omitempty"`
}

var cheapest = 0.0

// DefaultVariants are the auction with its default reserve and with the
// reserve at the budget, then bilateral and stacked alternating offers with
// the synthetic jobs' default preference (balanced: the buyer concedes
// early, β 2.6) and with the cheapest (Boulware, β 0.2).
var DefaultVariants = []Variant{
	{Name: "auction (vcg, reserve ½ budget)", Protocol: ProtocolAuction},
	{Name: "auction (vcg, reserve = budget)", Protocol: ProtocolAuction, ReserveAtBudget: true},
	{Name: "alternating offers", Protocol: ProtocolAlternating},
	{Name: "stacked alternating offers", Protocol: ProtocolStacked},
	{Name: "alternating offers, cheapest", Protocol: ProtocolAlternating, Preference: &cheapest},
	{Name: "stacked alternating offers, cheapest", Protocol: ProtocolStacked, Preference: &cheapest},
}

// Outcome is one job negotiated by one variant.
type Outcome struct {
	Agreed bool `json:"agreed"`
	// Price is what the buyer pays, all awards together (minor units).
	Price int64 `json:"price_minor"`
	// Budget is the job's budget for compute (minor units).
	Budget int64 `json:"budget_minor"`
	// Providers is how many providers the job is placed on.
	Providers int `json:"providers"`
	// Rounds is how many rounds the negotiation took: 1 for a sealed-bid
	// auction; the agreement's round + 1 in the bargains (the deadline's
	// when they fail). Moves counts the offers, acceptances and
	// walk-aways recorded.
	Rounds int `json:"rounds"`
	Moves  int `json:"moves"`
}

// Comparison is the outcome of every variant on every job.
type Comparison struct {
	Seed      uint64    `json:"seed"`
	Jobs      []string  `json:"jobs"`
	Providers int       `json:"providers"`
	Variants  []Variant `json:"variants"`
	// Outcomes[v][j] is job j negotiated by variant v.
	Outcomes [][]Outcome `json:"outcomes"`
}

// MaxCompareJobs bounds a comparison's jobs.
const MaxCompareJobs = 100000

// Compare negotiates the first jobs synthetic multi-task jobs of seed, each
// alone, against providers synthetic providers with every variant.
func Compare(ctx context.Context, seed uint64, jobs, providers int, variants []Variant) (*Comparison, error) {
	if jobs <= 0 || jobs > MaxCompareJobs || providers <= 0 || len(variants) == 0 {
		return nil, fmt.Errorf("%w: compare %d jobs over %d providers with %d variants", ErrInvalid, jobs, providers, len(variants))
	}
	c := &Comparison{Seed: seed, Providers: providers, Variants: variants, Outcomes: make([][]Outcome, len(variants))}
	var provs []Provider
	for _, p := range SyntheticProviders(seed, providers) {
		provs = append(provs, &Static{P: p})
	}
	for i := 0; len(c.Jobs) < jobs; i++ {
		if i >= 20*jobs {
			return nil, fmt.Errorf("market: compare: only %d multi-group jobs among the first %d synthetic jobs", len(c.Jobs), i)
		}
		text := SyntheticJob(seed, i)
		name := fmt.Sprintf("synthetic-%d", i)
		probe, err := syntheticPlan(name, text, Variant{Protocol: ProtocolAuction})
		if err != nil {
			return nil, err
		}
		if len(groups(taskList(probe), probe.Spec.Placement.Colocate)) < 2 {
			continue
		}
		c.Jobs = append(c.Jobs, name)
		for v, variant := range variants {
			o, err := negotiateVariant(ctx, name, text, variant, provs)
			if err != nil {
				return nil, err
			}
			c.Outcomes[v] = append(c.Outcomes[v], o)
		}
	}
	return c, nil
}

func taskList(p *specs.Plan) []specs.Task {
	var out []specs.Task
	for _, t := range p.Tasks {
		out = append(out, t.Task)
	}
	return out
}

// syntheticPlan compiles a synthetic job's spec for variant.
func syntheticPlan(name, text string, v Variant) (*specs.Plan, error) {
	text = strings.Replace(text, "protocol: auction", "protocol: "+v.Protocol, 1)
	s, err := specs.Parse(name+".md", []byte(text))
	if err != nil {
		return nil, fmt.Errorf("market: compare: %s: %w", name, err)
	}
	if v.ReserveAtBudget {
		s.Negotiation.Reserve = s.Budget.MaxPrice
	}
	if v.Preference != nil {
		s.Budget.Preference = *v.Preference
	}
	p, err := specs.Compile(s)
	if err != nil {
		return nil, fmt.Errorf("market: compare: %s: %w", name, err)
	}
	return p, nil
}

// negotiateVariant negotiates one job by one variant; a negotiation
// without offers or agreement is an outcome, not an error.
func negotiateVariant(ctx context.Context, name, text string, v Variant, provs []Provider) (Outcome, error) {
	p, err := syntheticPlan(name, text, v)
	if err != nil {
		return Outcome{}, err
	}
	res, err := Negotiate(ctx, p, provs, Options{Job: name})
	if err != nil && !errors.Is(err, ErrNoOffers) && !errors.Is(err, ErrNoAgreement) {
		return Outcome{}, fmt.Errorf("market: compare: %s by %s: %w", name, v.Name, err)
	}
	o := Outcome{Budget: p.ComputeBudget(), Rounds: 1}
	if res == nil {
		return o, nil
	}
	o.Moves = len(res.Rounds)
	provsUsed := map[string]bool{}
	for _, a := range res.Awards {
		o.Price += a.Price
		provsUsed[a.Provider] = true
	}
	o.Agreed, o.Providers = len(res.Awards) > 0, len(provsUsed)
	if v.Protocol != ProtocolAuction {
		o.Rounds = bargainRounds(res, p.Spec.Negotiation.Rounds)
	}
	return o, nil
}

// bargainRounds is the round of agreement + 1, or the deadline's.
func bargainRounds(res *Result, deadline int) int {
	if len(res.Awards) == 0 {
		return deadline + 1
	}
	if res.Protocol == ProtocolStacked {
		return res.Rounds[len(res.Rounds)-1].Round + 1
	}
	return agreedRound(res.Rounds, res.Awards[0].Provider) + 1
}

// Summary is one variant's figures over a comparison's jobs.
type Summary struct {
	Variant string `json:"variant"`
	Jobs    int    `json:"jobs"`
	Agreed  int    `json:"agreed"`
	// Split counts agreements that place the job on several providers.
	Split int `json:"split"`
	// MeanPrice and MedianPrice are over the agreements (minor units);
	// MeanBudgetShare is the mean of price ÷ budget.
	MeanPrice       float64 `json:"mean_price_minor"`
	MedianPrice     float64 `json:"median_price_minor"`
	MeanBudgetShare float64 `json:"mean_budget_share"`
	MeanRounds      float64 `json:"mean_rounds"`
	MeanMoves       float64 `json:"mean_moves"`
	// Common* are over the jobs every variant agreed on, the same jobs
	// for every variant, and PriceRatio is the median, over those jobs, of
	// this variant's price ÷ the first variant's.
	Common          int     `json:"common"`
	CommonMeanPrice float64 `json:"common_mean_price_minor"`
	PriceRatio      float64 `json:"median_price_ratio"`
}

// Summaries sums up each variant.
func (c *Comparison) Summaries() []Summary {
	var common []int
	for j := range c.Jobs {
		all := true
		for v := range c.Variants {
			all = all && c.Outcomes[v][j].Agreed
		}
		if all {
			common = append(common, j)
		}
	}
	out := make([]Summary, len(c.Variants))
	for v, variant := range c.Variants {
		s := Summary{Variant: variant.Name, Jobs: len(c.Jobs), Common: len(common)}
		var prices, shares, rounds, moves []float64
		for _, o := range c.Outcomes[v] {
			rounds = append(rounds, float64(o.Rounds))
			moves = append(moves, float64(o.Moves))
			if !o.Agreed {
				continue
			}
			s.Agreed++
			if o.Providers > 1 {
				s.Split++
			}
			prices = append(prices, float64(o.Price))
			shares = append(shares, float64(o.Price)/float64(o.Budget))
		}
		s.MeanPrice, s.MedianPrice, s.MeanBudgetShare = mean(prices), median(prices), mean(shares)
		s.MeanRounds, s.MeanMoves = mean(rounds), mean(moves)
		var cp, ratios []float64
		for _, j := range common {
			cp = append(cp, float64(c.Outcomes[v][j].Price))
			ratios = append(ratios, float64(c.Outcomes[v][j].Price)/float64(max(1, c.Outcomes[0][j].Price)))
		}
		s.CommonMeanPrice, s.PriceRatio = mean(cp), median(ratios)
		out[v] = s
	}
	return out
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	y := slices.Clone(x)
	slices.Sort(y)
	n := len(y)
	if n%2 == 1 {
		return y[n/2]
	}
	return (y[n/2-1] + y[n/2]) / 2
}
