package market

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/accordmesh/accord/settlement/money"
	"github.com/accordmesh/accord/specs"
)

// Round is one offer in alternating-offers bargaining, or one move of
// stacked alternating offers.
type Round struct {
	// Provider is the bargain's provider (alternating offers) or the
	// provider that moves (stacked; empty for the buyer's moves).
	Provider string `json:"provider"`
	Round    int    `json:"round"`
	By       string `json:"by"` // "buyer" or "provider"
	// Price is the offer (alternating offers); in stacked alternating
	// offers the standing offer's total after the move, or for a
	// walk-away the price the standing offer gave the provider's groups.
	Price    int64 `json:"price_minor"`
	Accepted bool  `json:"accepted,omitempty"`
	// Kind is the stacked move: MoveOffer, MoveAccept or MoveWalkAway
	// (empty in bilateral alternating offers).
	Kind string `json:"kind,omitempty"`
	// Shares are what a stacked offer sets: the buyer's offers allocate
	// every co-location group with its price and limit; a provider's
	// counter-offer re-prices only its own groups, the rest of the standing
	// offer unchanged.
	Shares []Share `json:"shares,omitempty"`
}

// Concession tactics (Faratin, Sierra and Jennings 1998): at round t of T an
// agent offers IP + (RP − IP)·(t/T)^(1/β), from its initial price IP to its
// reservation price RP. Boulware (β < 1) holds firm until the deadline,
// a conceder (β > 1) gives ground early, linear is β = 1.
const (
	BetaBoulware = 0.2
	BetaLinear   = 1.0
	BetaConceder = 5.0
)

func concession(name string) (float64, error) {
	switch name {
	case "", "linear":
		return BetaLinear, nil
	case "boulware":
		return BetaBoulware, nil
	case "conceder":
		return BetaConceder, nil
	}
	return 0, fmt.Errorf("unknown concession tactic %q (boulware, linear, conceder)", name)
}

// Defaults of the bargaining protocol when the plan leaves them out. The
// buyer's are the spec's (specs.DefaultRoundsAO, specs.DefaultDiscountAO:
// a compiled spec always carries them); DefaultDiscount is a seller's
// when its strategy names none.
const (
	DefaultRounds        = specs.DefaultRoundsAO
	DefaultBuyerDiscount = specs.DefaultDiscountAO
	DefaultDiscount      = 0.95
	// DefaultBuyerOpening is the buyer's opening offer as a share of its
	// budget when negotiation.reserve is not set.
	DefaultBuyerOpening = 0.5
)

// Agent is one side of a bilateral bargain.
type Agent struct {
	Initial  int64   `json:"initial_minor"` // opening price
	Reserve  int64   `json:"reserve_minor"` // walk-away price
	Beta     float64 `json:"beta"`          // concession exponent
	Discount float64 `json:"discount"`      // per-round discount factor δ in (0, 1]
	Buyer    bool    `json:"buyer,omitempty"`
}

// offer is the agent's price at round t of a bargain with deadline T.
func (a Agent) offer(t, T int) int64 {
	f := 1.0
	if T > 0 {
		f = math.Pow(math.Min(1, float64(t)/float64(T)), 1/a.Beta)
	}
	p := float64(a.Initial) + float64(a.Reserve-a.Initial)*f
	if a.Buyer {
		return int64(math.Floor(p))
	}
	return int64(math.Ceil(p))
}

// utility of an agreement at price in round t: the surplus over the
// reservation price, discounted by δ^t (Rubinstein's time preference).
func (a Agent) utility(price int64, t int) float64 {
	s := float64(price - a.Reserve)
	if a.Buyer {
		s = -s
	}
	return s * math.Pow(a.Discount, float64(t))
}

// accepts applies the AC-next rule: take the counterpart's offer if it is
// worth at least what the agent's own next offer would be worth one round
// later, and never beyond the reservation price.
func (a Agent) accepts(price int64, t, T int) bool {
	if (a.Buyer && price > a.Reserve) || (!a.Buyer && price < a.Reserve) {
		return false
	}
	if t >= T {
		return true // deadline: any price within the reservation beats no deal
	}
	return a.utility(price, t) >= a.utility(a.offer(t+1, T), t+1)
}

// Bargain runs alternating offers between buyer and seller, the buyer
// proposing first, for at most T rounds (the deadline). It returns the
// offers made and the agreed price, or ok false at the deadline.
func Bargain(provider string, buyer, seller Agent, T int) (rounds []Round, price int64, ok bool) {
	for t := 0; t <= T; t++ {
		proposer, responder, by := buyer, seller, "buyer"
		if t%2 == 1 {
			proposer, responder, by = seller, buyer, "provider"
		}
		p := proposer.offer(t, T)
		r := Round{Provider: provider, Round: t, By: by, Price: p}
		if responder.accepts(p, t, T) {
			r.Accepted = true
			rounds = append(rounds, r)
			return rounds, p, true
		}
		rounds = append(rounds, r)
	}
	return rounds, 0, false
}

// bargain runs alternating offers for a job with every eligible provider
// and takes the cheapest agreement (ties: higher reputation). The object of
// the bargain is the whole job on one provider: a single task, or every task
// of a multi-task job (gang placement, co-location trivially kept).
func bargain(ctx context.Context, b *Buyer, providers []Provider) (*Result, error) {
	profs, err := profiles(ctx, providers)
	if err != nil {
		return nil, err
	}
	res := &Result{Protocol: ProtocolAlternating, Currency: b.Currency, Jobs: []string{b.Job}, Offers: []Offer{},
		Bids: []BidRecord{}, Winners: []int{}, Awards: []Award{}, Diagnostics: []Diagnostic{}, Optimal: true}
	buyer, T := buyerOf(b)
	type deal struct {
		offer int
		price int64
		rep   float64
	}
	var deals []deal
	for pi := range profs {
		p := &profs[pi]
		res.Providers = append(res.Providers, p.Name)
		if d := eligible(b, p); len(d) > 0 {
			res.Diagnostics = append(res.Diagnostics, d...)
			continue
		}
		seller, hw, d, err := sellerOf(b, p)
		if err != nil {
			return nil, err
		}
		if len(d) > 0 {
			res.Diagnostics = append(res.Diagnostics, d...)
			continue
		}
		reserve := seller.Reserve
		res.Offers = append(res.Offers, Offer{Provider: p.Name, Jobs: []string{b.Job}, Hardware: hw, Ask: reserve})
		rounds, price, ok := Bargain(p.Name, buyer, seller, T)
		res.Rounds = append(res.Rounds, rounds...)
		if !ok {
			res.Diagnostics = append(res.Diagnostics, Diagnostic{Provider: p.Name, Job: b.Job, Constraint: "deadline",
				Detail: fmt.Sprintf("no agreement within %d rounds (provider reserve %d, budget %d)", T, reserve, b.Budget)})
			continue
		}
		deals = append(deals, deal{len(res.Offers) - 1, price, p.Reputation})
	}
	if len(res.Offers) == 0 {
		return res, fmt.Errorf("%w: %d provider(s) excluded; see diagnostics", ErrNoOffers, len(profs))
	}
	if len(deals) == 0 {
		return res, fmt.Errorf("%w: bargaining reached the deadline with every provider", ErrNoAgreement)
	}
	sort.SliceStable(deals, func(i, j int) bool {
		if deals[i].price != deals[j].price {
			return deals[i].price < deals[j].price
		}
		return deals[i].rep > deals[j].rep
	})
	d := deals[0]
	o := res.Offers[d.offer]
	res.Bids = append(res.Bids, BidRecord{Index: 0, Bidder: o.Provider, Providers: []string{o.Provider}, Jobs: o.Jobs,
		Goods: []int{0}, Offers: []int{d.offer}, Ask: d.price, Surplus: b.Budget - d.price})
	res.Winners = []int{0}
	res.Welfare = b.Budget - o.Ask
	res.Awards = []Award{{Job: b.Job, Provider: o.Provider, Hardware: o.Hardware, Ask: o.Ask, Price: d.price,
		Pricing: ProtocolAlternating, Basis: BasisAgreement,
		Explanation: fmt.Sprintf("paid %s: the price agreed with %s in round %d of alternating offers",
			money.Format(d.price, b.Currency), o.Provider, agreedRound(res.Rounds, o.Provider))}}
	withSLA(res.Awards, []*Buyer{b}, profs)
	return res, nil
}

// buyerOf is the buyer's agent for a bargain over the whole job, and the
// bargain's deadline T: it opens at negotiation.reserve (default
// DefaultBuyerOpening of the budget), walks away above the budget, and
// concedes the faster the more it values speed.
func buyerOf(b *Buyer) (Agent, int) {
	T := b.Negotiation.Rounds
	if T <= 0 {
		T = DefaultRounds
	}
	disc := b.Negotiation.Discount
	if disc <= 0 || disc > 1 {
		disc = DefaultBuyerDiscount
	}
	open := b.Negotiation.Reserve
	if open <= 0 || open > b.Budget {
		open = int64(float64(b.Budget) * DefaultBuyerOpening)
	}
	// Preference: a buyer that values speed (→1) concedes faster.
	beta := BetaBoulware + (BetaConceder-BetaBoulware)*b.Preference
	return Agent{Initial: open, Reserve: b.Budget, Beta: beta, Discount: disc, Buyer: true}, T
}

// sellerOf is provider p's seller agent for the buyer's whole job: the
// hardware it would use, its reservation price (its ask for that hardware)
// and its concession strategy. Diagnostics say why p cannot sell.
func sellerOf(b *Buyer, p *Profile) (Agent, []Hardware, []Diagnostic, error) {
	return sellerFor(b, p, taskNames(b))
}

// sellerFor is sellerOf for some of the job's tasks.
func sellerFor(b *Buyer, p *Profile, tasks []string) (Agent, []Hardware, []Diagnostic, error) {
	free := p.Free.clone()
	hw, d := fit(b, p, tasks, &free)
	if len(d) > 0 {
		return Agent{}, nil, d, nil
	}
	reserve, err := ask(p, hw, durations(b))
	if err != nil {
		return Agent{}, nil, nil, err
	}
	sb, _ := concession(p.Strategy.Concession)
	opening := p.Strategy.Opening
	if !(opening >= 1) { // also NaN
		opening = 2
	}
	sd := p.Strategy.Discount
	if !(sd > 0 && sd <= 1) {
		sd = DefaultDiscount
	}
	// An opening multiple too large for int64 opens at MaxMoney (or the
	// reserve, when that is above it).
	initial := reserve
	if v := math.Ceil(float64(reserve) * opening); v < MaxMoney {
		initial = max(reserve, int64(v))
	} else {
		initial = max(reserve, MaxMoney)
	}
	return Agent{Initial: initial, Reserve: reserve, Beta: sb, Discount: sd}, hw, nil, nil
}

// agreedRound is the round in which the bargain with provider ended in
// agreement.
func agreedRound(rounds []Round, provider string) int {
	for _, r := range rounds {
		if r.Provider == provider && r.Accepted {
			return r.Round
		}
	}
	return 0
}
