package market

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/accordmesh/accord/settlement/money"
	"github.com/accordmesh/accord/settlement/sla"
	"github.com/accordmesh/accord/specs"
)

// Alternating offers with an external buyer (negotiation.buyer: agent).
// The sellers are taken once (Snapshot); the buyer's moves arrive one at a
// time from outside, and Play is a pure function of the snapshot and the
// moves so far (a workflow keeps the moves and replays them): the sellers' current offers, whether the bargain ended, and
// its Result. Sellers offer at even rounds (0: their openings), the buyer
// moves at odd rounds; the sellers' tactics are bargain.go's Agent.offer
// and Agent.accepts.

// Seller is one eligible seller in a snapshot.
type Seller struct {
	Provider   string     `json:"provider"`
	Agent      Agent      `json:"agent"`
	Hardware   []Hardware `json:"hardware"`
	Reputation float64    `json:"reputation"`
	// SLA are the money terms the seller agrees to (the spec's request
	// with the seller's stake).
	SLA *sla.Terms `json:"sla,omitempty"`
}

// Sellers is the market side of an agent-played bargain, taken once when
// negotiation starts.
type Sellers struct {
	Job      string `json:"job"`
	Currency string `json:"currency"`
	Budget   int64  `json:"budget_minor"`
	// Rounds is the bargain's deadline T (negotiation.rounds).
	Rounds      int          `json:"rounds"`
	Providers   []string     `json:"providers"`
	Sellers     []Seller     `json:"sellers"`
	Diagnostics []Diagnostic `json:"diagnostics"`
}

// Move is one buyer move: a counter-offer Price, or Accept naming the
// seller whose current offer the buyer takes.
type Move struct {
	Price  int64  `json:"price_minor,omitempty"`
	Accept string `json:"accept,omitempty"`
}

// SellerOffer is a seller's current offer.
type SellerOffer struct {
	Provider string `json:"provider"`
	Price    int64  `json:"price_minor"`
}

// Play is the state of an agent-played bargain after some moves.
type Play struct {
	// Round is the number of buyer moves made; DeadlineRound the last
	// move the deadline allows (moves are numbered from 0).
	Round         int `json:"round"`
	DeadlineRound int `json:"deadline_round"`
	// Offers are the sellers' current offers (empty once Over).
	Offers []SellerOffer `json:"offers"`
	// Over: the bargain ended, in agreement (Result has the award) or
	// at the deadline (no award).
	Over   bool    `json:"over"`
	Result *Result `json:"result"`
}

// ErrMove marks a buyer move the bargain cannot take: after its end, a
// price outside (0, budget], or an acceptance of a seller with no offer.
var ErrMove = errors.New("market: invalid buyer move")

// Snapshot takes the sellers for an agent-played bargain: every provider
// that can host the whole job, with its seller agent. Providers that cannot
// are diagnostics; none at all is ErrNoOffers.
func Snapshot(ctx context.Context, job string, plan *specs.Plan, providers []Provider) (*Sellers, error) {
	b, err := NewBuyer(job, plan)
	if err != nil {
		return nil, err
	}
	if b.Protocol != ProtocolAlternating {
		return nil, fmt.Errorf("%w: an agent buyer bargains (alternating-offers), not %s", ErrInvalid, b.Protocol)
	}
	profs, err := profiles(ctx, providers)
	if err != nil {
		return nil, err
	}
	T := b.Negotiation.Rounds
	if T <= 0 {
		T = DefaultRounds
	}
	s := &Sellers{Job: b.Job, Currency: b.Currency, Budget: b.Budget, Rounds: T, Providers: []string{},
		Sellers: []Seller{}, Diagnostics: []Diagnostic{}}
	for pi := range profs {
		p := &profs[pi]
		s.Providers = append(s.Providers, p.Name)
		if d := eligible(b, p); len(d) > 0 {
			s.Diagnostics = append(s.Diagnostics, d...)
			continue
		}
		a, hw, d, err := sellerOf(b, p)
		if err != nil {
			return nil, err
		}
		if len(d) > 0 {
			s.Diagnostics = append(s.Diagnostics, d...)
			continue
		}
		s.Sellers = append(s.Sellers, Seller{Provider: p.Name, Agent: a, Hardware: hw, Reputation: p.Reputation,
			SLA: agreedSLA(b.SLA, p.SLA)})
	}
	if len(s.Sellers) == 0 {
		return s, fmt.Errorf("%w: %d provider(s) excluded; see diagnostics", ErrNoOffers, len(profs))
	}
	return s, nil
}

// validate checks a snapshot that crossed a process boundary.
func (s *Sellers) validate() error {
	if s.Rounds <= 0 || s.Budget <= 0 || s.Budget > MaxMoney || len(s.Sellers) == 0 {
		return fmt.Errorf("%w: bargain snapshot: rounds %d, budget %d, %d sellers", ErrInvalid, s.Rounds, s.Budget, len(s.Sellers))
	}
	for _, x := range s.Sellers {
		a := x.Agent
		if a.Buyer || !(a.Beta > 0) || math.IsInf(a.Beta, 0) || a.Reserve <= 0 || a.Initial < a.Reserve || a.Initial > MaxMoney {
			return fmt.Errorf("%w: bargain snapshot: seller %s", ErrInvalid, x.Provider)
		}
	}
	return nil
}

// DeadlineRound is the last buyer move the deadline allows.
func (s *Sellers) DeadlineRound() int { return s.Rounds / 2 }

// Play replays the bargain: the sellers' openings, then each buyer move
// and the sellers' responses. A move it cannot take is ErrMove; a bargain
// that reached its deadline is Over with no award in its Result.
func (s *Sellers) Play(moves []Move) (Play, error) {
	if err := s.validate(); err != nil {
		return Play{}, err
	}
	T := s.Rounds
	pl := Play{DeadlineRound: s.DeadlineRound(), Offers: []SellerOffer{}}
	var rounds []Round
	offers := s.offers(0, &rounds)
	for i, m := range moves {
		if pl.Over {
			return Play{}, fmt.Errorf("%w: move %d after the bargain ended", ErrMove, i)
		}
		tb := 2*i + 1
		pl.Round = i + 1
		if m.Accept != "" {
			k := sellerIndex(offers, m.Accept)
			if k < 0 {
				return Play{}, fmt.Errorf("%w: %q has no current offer", ErrMove, m.Accept)
			}
			if offers[k].Price > s.Budget {
				return Play{}, fmt.Errorf("%w: %q's offer %d is above the budget %d", ErrMove, m.Accept, offers[k].Price, s.Budget)
			}
			markAccepted(rounds, m.Accept)
			pl.Over, pl.Result = true, s.result(rounds, k, offers[k].Price)
			continue
		}
		if m.Price <= 0 || m.Price > s.Budget {
			return Play{}, fmt.Errorf("%w: price %d outside (0, %d]", ErrMove, m.Price, s.Budget)
		}
		if k := s.respond(tb, m.Price, &rounds); k >= 0 {
			pl.Over, pl.Result = true, s.result(rounds, k, m.Price)
			continue
		}
		if tb+1 > T {
			pl.Over, pl.Result = true, s.result(rounds, -1, 0)
			continue
		}
		offers = s.offers(tb+1, &rounds)
	}
	if !pl.Over {
		pl.Offers = offers
		pl.Result = s.result(rounds, -1, 0)
	}
	return pl, nil
}

// offers records and returns every seller's offer at round t.
func (s *Sellers) offers(t int, rounds *[]Round) []SellerOffer {
	out := make([]SellerOffer, 0, len(s.Sellers))
	for _, x := range s.Sellers {
		p := x.Agent.offer(t, s.Rounds)
		*rounds = append(*rounds, Round{Provider: x.Provider, Round: t, By: "provider", Price: p})
		out = append(out, SellerOffer{Provider: x.Provider, Price: p})
	}
	return out
}

// respond records each seller's answer to the buyer's price at round t and
// returns the seller that gets the deal (the most reputable of those that
// accept, first listed on a tie), or -1.
func (s *Sellers) respond(t int, price int64, rounds *[]Round) int {
	best := -1
	for i, x := range s.Sellers {
		ok := x.Agent.accepts(price, t, s.Rounds)
		*rounds = append(*rounds, Round{Provider: x.Provider, Round: t, By: "buyer", Price: price, Accepted: ok})
		if ok && (best < 0 || x.Reputation > s.Sellers[best].Reputation) {
			best = i
		}
	}
	return best
}

func sellerIndex(offers []SellerOffer, provider string) int {
	for i, o := range offers {
		if o.Provider == provider {
			return i
		}
	}
	return -1
}

// markAccepted marks provider's latest offer as the one accepted.
func markAccepted(rounds []Round, provider string) {
	for i := len(rounds) - 1; i >= 0; i-- {
		if rounds[i].Provider == provider && rounds[i].By == "provider" {
			rounds[i].Accepted = true
			return
		}
	}
}

// result is the bargain's record: every seller's offer (its ask is its
// reserve), every round, and the award to seller k at price (k < 0: none
// yet, or none at all).
func (s *Sellers) result(rounds []Round, k int, price int64) *Result {
	res := &Result{Protocol: ProtocolAlternating, Currency: s.Currency, Jobs: []string{s.Job},
		Providers: append([]string{}, s.Providers...), Offers: []Offer{}, Bids: []BidRecord{}, Winners: []int{},
		Awards: []Award{}, Diagnostics: append([]Diagnostic{}, s.Diagnostics...), Optimal: true,
		Rounds: append([]Round{}, rounds...)}
	for _, x := range s.Sellers {
		res.Offers = append(res.Offers, Offer{Provider: x.Provider, Jobs: []string{s.Job}, Hardware: x.Hardware, Ask: x.Agent.Reserve})
	}
	if k < 0 {
		return res
	}
	x, o := s.Sellers[k], res.Offers[k]
	res.Bids = append(res.Bids, BidRecord{Index: 0, Bidder: x.Provider, Providers: []string{x.Provider}, Jobs: o.Jobs,
		Goods: []int{0}, Offers: []int{k}, Ask: price, Surplus: s.Budget - price})
	res.Winners = []int{0}
	res.Welfare = s.Budget - o.Ask
	res.Awards = []Award{{Job: s.Job, Provider: x.Provider, Hardware: x.Hardware, Ask: o.Ask, Price: price,
		Pricing: ProtocolAlternating, Basis: BasisAgreement, SLA: x.SLA,
		Explanation: fmt.Sprintf("paid %s: the price agreed with %s in round %d of alternating offers, the buyer played by its agent",
			money.Format(price, s.Currency), x.Provider, agreedRound(res.Rounds, x.Provider))}}
	return res
}
