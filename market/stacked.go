package market

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/accordmesh/accord/settlement/money"
)

// Stacked alternating offers (SAOP; Aydoğan, Festen, Hindriks and Jonker,
// "Alternating Offers Protocols for Multilateral Negotiation", 2017) for a
// job of several co-location groups that bargains with several providers
// at once. The object of the negotiation is an allocation: each group on
// one provider, at a price per group. The parties are the buyer and the
// providers the allocation involves, in a fixed order (the buyer, then the
// providers in the order they are listed); in round t = 0…T each party
// moves once: it accepts the standing offer, makes a new one (which becomes
// the standing offer), or, a provider only, walks away. The parties agree
// when every party but the standing offer's proposer has accepted it since
// it was made. T (negotiation.rounds) is the one deadline every party's
// tactic concedes towards.
//
//   - Allocation. Every provider that may sell and can host a group alone
//     quotes its opening ask for it (its seller agent's opening, as in
//     bilateral alternating offers). Group by group, those with the fewest
//     hosts first, the buyer gives each to the provider whose quote rises
//     least by taking it (its joint ask for all its groups, fitted
//     together), ties to the more reputable, then the first listed.
//   - The buyer's offers. Its budget is split over the groups in
//     proportion to their holders' quotes: the most it pays for a group
//     (Share.Limit, stated in each of its offers); its opening
//     (negotiation.reserve, default half the budget) is split the same way.
//     At round t it offers each group its time-dependent share between the
//     two (bargain.go's tactic, the buyer's β following its preference),
//     and never more for a provider's groups together than the provider
//     last asked for them. It accepts a provider's counter-offer when the
//     standing offer's total passes its AC-next test against the whole
//     budget, except in the last round, where it makes its final offer:
//     each provider's ask, at most its limit.
//   - A provider's move. Its share is the sum of its groups' prices. It
//     walks away when its ask for its groups (its reservation price)
//     exceeds the buyer's limits for them, since no offer can then reach
//     it; it accepts when its share passes its AC-next test (never below
//     its ask); otherwise it counter-offers its time-dependent price for
//     its groups, split over them in proportion to its quotes.
//   - A walk-away. The provider leaves the negotiation; the buyer at once
//     re-allocates its groups among the providers that have not walked
//     away and opens with a new offer; a group no provider is left to host
//     ends the negotiation without agreement.
//
// With equal opening multiples the quotes are proportional to the asks, so
// the limits admit every provider exactly when the asks of the allocation
// sum to at most the budget. Every accepted share is at least its
// provider's ask and every agreed total at most the budget; a provider the
// buyer can pay is offered its limit at the deadline and accepts it, so an
// allocation whose providers all stay agrees by round T.
//
// The negotiation is a pure function of the buyer and the providers'
// profiles (no clock, no randomness), so an activity may retry it.

// Kinds of a stacked alternating offers move (Round.Kind).
const (
	MoveOffer    = "offer"
	MoveAccept   = "accept"
	MoveWalkAway = "walk-away"
)

// MaxStackedGroups bounds the co-location groups one stacked negotiation
// allocates, and so the size of its record (every buyer offer lists every
// group, for up to 1,001 rounds).
const MaxStackedGroups = 16

// Share is one co-location group in a stacked offer: the provider that
// hosts it and the price it is paid.
type Share struct {
	Group    int    `json:"group"` // index into Result.Groups
	Provider string `json:"provider"`
	Price    int64  `json:"price_minor"`
	// Limit is, in the buyer's offers, the most the buyer will pay for the
	// group: its share of the budget.
	Limit int64 `json:"limit_minor,omitempty"`
}

// party is a provider the current allocation involves.
type party struct {
	pi     int   // index into the profiles
	groups []int // the groups it hosts, ascending
	agent  Agent // its seller agent for all of them together
	hw     []Hardware
	offer  int   // index into Result.Offers
	ask    int64 // its latest asking price for its groups
}

// saop is one stacked negotiation in progress.
type saop struct {
	b     *Buyer
	profs []Profile
	buyer Agent // the whole job: opening … budget
	T     int
	res   *Result
	// quote[g][pi] is provider pi's opening ask for group g alone, 0 when
	// it cannot host it.
	quote  [][]int64
	walked []bool
	// holder[g] is the provider hosting group g; parties by provider.
	holder  []int
	parties map[int]*party
	// price, limit and open by group: the standing offer, the buyer's
	// limit and opening.
	price, limit, open []int64
	// proposer of the standing offer (-1: the buyer) and who accepted it.
	proposer int
	accepted map[int]bool
}

const buyerParty = -1

// stacked runs stacked alternating offers for the buyer's job. It returns
// ErrNoOffers when some co-location group has no provider able to host it,
// and ErrNoAgreement when every host of a group walked away or the
// deadline passed, with the Result and its diagnostics.
func stacked(ctx context.Context, b *Buyer, providers []Provider) (*Result, error) {
	if len(b.Groups) > MaxStackedGroups {
		return nil, fmt.Errorf("%w: job %s has %d co-location groups; stacked alternating offers allocates at most %d",
			ErrInvalid, b.Job, len(b.Groups), MaxStackedGroups)
	}
	profs, err := profiles(ctx, providers)
	if err != nil {
		return nil, err
	}
	s := newSAOP(b, profs)
	if err := s.quotes(); err != nil {
		return nil, err
	}
	for g := range b.Groups {
		if s.hosts(g) == 0 {
			s.res.Diagnostics = append(s.res.Diagnostics, Diagnostic{Job: b.Job, Constraint: "capacity",
				Detail: fmt.Sprintf("no provider can host group %v", b.Groups[g])})
			return s.res, fmt.Errorf("%w: no provider can host group %v; see diagnostics", ErrNoOffers, b.Groups[g])
		}
	}
	if err := s.allocate(0); err != nil {
		return s.res, err
	}
	t, err := s.run()
	if err != nil {
		return s.res, err
	}
	s.agree(t)
	return s.res, nil
}

func newSAOP(b *Buyer, profs []Profile) *saop {
	buyer, T := buyerOf(b)
	n := len(b.Groups)
	s := &saop{b: b, profs: profs, buyer: buyer, T: T, quote: make([][]int64, n), walked: make([]bool, len(profs)),
		holder: make([]int, n), parties: map[int]*party{}, price: make([]int64, n),
		limit: make([]int64, n), open: make([]int64, n), proposer: buyerParty, accepted: map[int]bool{}}
	s.res = &Result{Protocol: ProtocolStacked, Currency: b.Currency, Jobs: []string{b.Job}, Providers: []string{},
		Offers: []Offer{}, Bids: []BidRecord{}, Winners: []int{}, Awards: []Award{}, Diagnostics: []Diagnostic{},
		Optimal: true, Rounds: []Round{}, Groups: b.Groups}
	for g := range s.holder {
		s.holder[g] = -1
		s.quote[g] = make([]int64, len(profs))
	}
	return s
}

// quotes gathers every provider's opening ask for each group alone;
// providers that may not sell, or can host no group within the budget,
// are diagnostics.
func (s *saop) quotes() error {
	b := s.b
	for pi := range s.profs {
		p := &s.profs[pi]
		s.res.Providers = append(s.res.Providers, p.Name)
		if d := eligible(b, p); len(d) > 0 {
			s.res.Diagnostics = append(s.res.Diagnostics, d...)
			continue
		}
		var why []Diagnostic
		for g, tasks := range b.Groups {
			a, _, d, err := sellerFor(b, p, tasks)
			if err != nil {
				return err
			}
			switch {
			case len(d) > 0:
				why = append(why, d...)
			case a.Reserve > b.Budget:
				why = append(why, Diagnostic{Provider: p.Name, Job: b.Job, Constraint: "budget",
					Detail: fmt.Sprintf("ask %d for group %v exceeds budget %d %s", a.Reserve, tasks, b.Budget, b.Currency)})
			default:
				s.quote[g][pi] = max(1, a.Initial)
			}
		}
		if !s.hostsAny(pi) {
			s.res.Diagnostics = append(s.res.Diagnostics, why...)
		}
	}
	return nil
}

func (s *saop) hostsAny(pi int) bool {
	for g := range s.quote {
		if s.quote[g][pi] > 0 {
			return true
		}
	}
	return false
}

// hosts counts the providers still in the negotiation that can host group g.
func (s *saop) hosts(g int) int {
	n := 0
	for pi, q := range s.quote[g] {
		if q > 0 && !s.walked[pi] {
			n++
		}
	}
	return n
}

// allocate gives every group without a holder to a provider (at round t),
// then re-derives the buyer's limits and openings.
func (s *saop) allocate(t int) error {
	var free []int
	for g, h := range s.holder {
		if h < 0 {
			free = append(free, g)
		}
	}
	sort.SliceStable(free, func(i, j int) bool { return s.hosts(free[i]) < s.hosts(free[j]) })
	changed := map[int]bool{}
	for _, g := range free {
		pi, err := s.bestHost(g)
		if err != nil {
			return err
		}
		if pi < 0 {
			return s.unplaced(g)
		}
		s.holder[g] = pi
		changed[pi] = true
	}
	for _, pi := range sortedKeys(changed) {
		if err := s.seat(pi, t); err != nil {
			return err
		}
	}
	s.budgetShares()
	return nil
}

// unplaced ends the negotiation for group g, which no provider left can
// host: they walked away, or hold other groups and cannot take g as well.
// Before the first move that means no offer covers the job.
func (s *saop) unplaced(g int) error {
	d := Diagnostic{Job: s.b.Job, Constraint: "capacity",
		Detail: fmt.Sprintf("no provider left can host group %v together with the groups it holds", s.b.Groups[g])}
	if s.hosts(g) == 0 {
		d.Constraint, d.Detail = "walk-away", fmt.Sprintf("every provider able to host group %v walked away", s.b.Groups[g])
	}
	s.res.Diagnostics = append(s.res.Diagnostics, d)
	if len(s.res.Rounds) == 0 {
		return fmt.Errorf("%w: %s; see diagnostics", ErrNoOffers, d.Detail)
	}
	return fmt.Errorf("%w: %s; see diagnostics", ErrNoAgreement, d.Detail)
}

// bestHost is the provider whose quote rises least by taking group g on
// top of its groups (ties: reputation, then the order listed), or -1.
func (s *saop) bestHost(g int) (int, error) {
	best, bestRise := -1, int64(0)
	for pi, q := range s.quote[g] {
		if q == 0 || s.walked[pi] {
			continue
		}
		rise := q
		if held := s.groupsOf(pi); len(held) > 0 {
			now, _, err := s.jointQuote(pi, held)
			if err != nil {
				return 0, err
			}
			with, ok, err := s.jointQuote(pi, append(held, g))
			if err != nil {
				return 0, err
			}
			if !ok {
				continue
			}
			rise = with - now
		}
		if best < 0 || rise < bestRise || (rise == bestRise && s.profs[pi].Reputation > s.profs[best].Reputation) {
			best, bestRise = pi, rise
		}
	}
	return best, nil
}

// jointQuote is provider pi's opening ask for groups together, ok false
// when they do not fit it together or its ask exceeds the budget.
func (s *saop) jointQuote(pi int, groups []int) (int64, bool, error) {
	a, _, d, err := sellerFor(s.b, &s.profs[pi], s.tasksOf(groups))
	if err != nil || len(d) > 0 || a.Reserve > s.b.Budget {
		return 0, false, err
	}
	return a.Initial, true, nil
}

// groupsOf lists the groups provider pi holds, ascending.
func (s *saop) groupsOf(pi int) []int {
	var out []int
	for g, h := range s.holder {
		if h == pi {
			out = append(out, g)
		}
	}
	return out
}

func (s *saop) tasksOf(groups []int) []string {
	var tasks []string
	for _, g := range groups {
		tasks = append(tasks, s.b.Groups[g]...)
	}
	return tasks
}

// seat makes provider pi a party for the groups it now holds: its seller
// agent and hardware for all of them, recorded as an offer, and its asking
// price at round t as the cap on what the buyer offers for them.
func (s *saop) seat(pi, t int) error {
	groups := s.groupsOf(pi)
	p := &s.profs[pi]
	a, hw, d, err := sellerFor(s.b, p, s.tasksOf(groups))
	if err != nil {
		return err
	}
	if len(d) > 0 { // bestHost checked the joint fit
		return fmt.Errorf("market: stacked: %s cannot host groups %v it was given", p.Name, groups)
	}
	o := Offer{Provider: p.Name, Jobs: []string{s.b.Job}, Hardware: hw, Ask: a.Reserve}
	if len(groups) < len(s.b.Groups) {
		o.Group = s.tasksOf(groups)
	}
	s.res.Offers = append(s.res.Offers, o)
	s.parties[pi] = &party{pi: pi, groups: groups, agent: a, hw: hw, offer: len(s.res.Offers) - 1, ask: a.offer(t, s.T)}
	return nil
}

// setPrice sets provider pt's groups' prices in the standing offer to
// amount, split over them in proportion to its quotes, and returns their
// shares.
func (s *saop) setPrice(pt *party, amount int64, limits bool) []Share {
	w := make([]int64, len(pt.groups))
	for k, g := range pt.groups {
		w[k] = s.quote[g][pt.pi]
	}
	parts := spread(amount, w)
	shares := make([]Share, len(pt.groups))
	for k, g := range pt.groups {
		s.price[g] = parts[k]
		shares[k] = Share{Group: g, Provider: s.profs[pt.pi].Name, Price: parts[k]}
		if limits {
			shares[k].Limit = s.limit[g]
		}
	}
	return shares
}

// budgetShares splits the buyer's budget and opening over the groups in
// proportion to their holders' quotes.
func (s *saop) budgetShares() {
	w := make([]int64, len(s.holder))
	for g, pi := range s.holder {
		w[g] = s.quote[g][pi]
	}
	s.limit = spread(s.buyer.Reserve, w)
	s.open = spread(s.buyer.Initial, w)
	for g := range s.open {
		s.open[g] = min(s.open[g], s.limit[g])
	}
}

// order lists the parties in their fixed order.
func (s *saop) order() []int { return sortedKeys(s.parties) }

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

// run plays the rounds until agreement (its round) or the deadline.
func (s *saop) run() (int, error) {
	for t := 0; t <= s.T; t++ {
		if s.buyerMove(t) {
			return t, nil
		}
		for last := -1; ; {
			pi, ok := s.nextParty(last)
			if !ok {
				break
			}
			last = pi
			done, err := s.providerMove(pi, t)
			if err != nil {
				return 0, err
			}
			if done {
				return t, nil
			}
		}
	}
	for _, pi := range s.order() {
		pt := s.parties[pi]
		s.res.Diagnostics = append(s.res.Diagnostics, Diagnostic{Provider: s.profs[pi].Name, Job: s.b.Job, Constraint: "deadline",
			Detail: fmt.Sprintf("no agreement within %d rounds: groups %v offered %d, its ask %d, the buyer's limit %d",
				s.T, s.tasksOf(pt.groups), s.shareOf(pt), pt.agent.Reserve, s.limitOf(pt))})
	}
	return 0, fmt.Errorf("%w: stacked alternating offers reached the deadline of %d rounds", ErrNoAgreement, s.T)
}

// nextParty is the first party after provider last in the fixed order
// (parties seated during the round move in it when they come later).
func (s *saop) nextParty(last int) (int, bool) {
	for _, pi := range s.order() {
		if pi > last {
			return pi, true
		}
	}
	return 0, false
}

// buyerMove accepts a provider's standing offer or makes the buyer's own;
// it reports agreement. In the last round the buyer makes its final offer,
// which every provider within its limit accepts, rather than accept a
// counter-offer the other providers may still refuse.
func (s *saop) buyerMove(t int) bool {
	if s.proposer != buyerParty && t < s.T && s.buyer.accepts(s.total(), t, s.T) {
		s.record(t, buyerParty, MoveAccept, s.total(), nil)
		return s.accept(buyerParty)
	}
	s.buyerOffer(t)
	return false
}

// buyerOffer makes the buyer's offer at round t: for each provider, its
// groups' shares of the buyer's concession from opening to limit, at most
// what the provider last asked for them.
func (s *saop) buyerOffer(t int) {
	var shares []Share
	for _, pi := range s.order() {
		pt := s.parties[pi]
		var tactic int64
		for _, g := range pt.groups {
			a := Agent{Initial: s.open[g], Reserve: s.limit[g], Beta: s.buyer.Beta, Discount: s.buyer.Discount, Buyer: true}
			tactic += a.offer(t, s.T)
		}
		shares = append(shares, s.setPrice(pt, min(pt.ask, tactic), true)...)
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].Group < shares[j].Group })
	s.propose(buyerParty)
	s.record(t, buyerParty, MoveOffer, s.total(), shares)
}

// providerMove is provider pi's move at round t; it reports agreement.
func (s *saop) providerMove(pi, t int) (bool, error) {
	pt := s.parties[pi]
	share := s.shareOf(pt)
	switch {
	case pt.agent.Reserve > s.limitOf(pt):
		return false, s.walkAway(pt, t, share)
	case pi != s.proposer && pt.agent.accepts(share, t, s.T):
		s.record(t, pi, MoveAccept, s.total(), nil)
		return s.accept(pi), nil
	case pi == s.proposer:
		return false, nil // its own offer stands; the others have not all accepted it
	}
	pt.ask = pt.agent.offer(t, s.T)
	shares := s.setPrice(pt, pt.ask, false)
	s.propose(pi)
	s.record(t, pi, MoveOffer, s.total(), shares)
	return false, nil
}

// walkAway takes provider pt out of the negotiation; the buyer
// re-allocates its groups and makes a new offer in the same round.
func (s *saop) walkAway(pt *party, t int, share int64) error {
	name := s.profs[pt.pi].Name
	s.record(t, pt.pi, MoveWalkAway, share, nil)
	s.res.Diagnostics = append(s.res.Diagnostics, Diagnostic{Provider: name, Job: s.b.Job, Constraint: "walk-away",
		Detail: fmt.Sprintf("walked away in round %d: its ask %d for groups %v exceeds the buyer's limit %d",
			t, pt.agent.Reserve, s.tasksOf(pt.groups), s.limitOf(pt))})
	s.walked[pt.pi] = true
	delete(s.parties, pt.pi)
	for _, g := range pt.groups {
		s.holder[g] = -1
	}
	if err := s.allocate(t); err != nil {
		return err
	}
	s.buyerOffer(t)
	return nil
}

// propose makes party the proposer of a new standing offer.
func (s *saop) propose(party int) {
	s.proposer = party
	clear(s.accepted)
}

// accept records party's acceptance and reports whether every party but
// the proposer has now accepted the standing offer.
func (s *saop) accept(party int) bool {
	s.accepted[party] = true
	if s.proposer != buyerParty && !s.accepted[buyerParty] {
		return false
	}
	for pi := range s.parties {
		if pi != s.proposer && !s.accepted[pi] {
			return false
		}
	}
	return true
}

func (s *saop) record(t, party int, kind string, price int64, shares []Share) {
	r := Round{Round: t, By: "buyer", Kind: kind, Price: price, Shares: shares}
	if party != buyerParty {
		r.Provider, r.By = s.profs[party].Name, "provider"
	}
	s.res.Rounds = append(s.res.Rounds, r)
}

func (s *saop) total() int64 {
	var sum int64
	for _, p := range s.price {
		sum += p
	}
	return sum
}

func (s *saop) shareOf(pt *party) int64 {
	var sum int64
	for _, g := range pt.groups {
		sum += s.price[g]
	}
	return sum
}

func (s *saop) limitOf(pt *party) int64 {
	var sum int64
	for _, g := range pt.groups {
		sum += s.limit[g]
	}
	return sum
}

// agree records the agreement reached in round t: one award per provider,
// paid its groups' prices in the standing offer.
func (s *saop) agree(t int) {
	b, res := s.b, s.res
	total := s.total()
	var provs []string
	var offers []int
	var asks int64
	for _, pi := range s.order() {
		pt := s.parties[pi]
		name := s.profs[pi].Name
		provs = append(provs, name)
		offers = append(offers, pt.offer)
		asks += pt.agent.Reserve
		price := s.shareOf(pt)
		why := fmt.Sprintf("paid %s: the price agreed with %s for %s in round %d of stacked alternating offers",
			money.Format(price, b.Currency), name, groupWords(s.b.Groups, pt.groups), t)
		if len(s.parties) > 1 {
			why += fmt.Sprintf(", of the job's %s over %d providers", money.Format(total, b.Currency), len(s.parties))
		}
		res.Awards = append(res.Awards, Award{Job: b.Job, Provider: name, Hardware: pt.hw, Ask: pt.agent.Reserve,
			Price: price, Pricing: ProtocolStacked, Basis: BasisAgreement, Explanation: why})
	}
	sort.Strings(provs)
	res.Bids = append(res.Bids, BidRecord{Index: 0, Bidder: "saop:" + b.Job, Providers: provs, Jobs: []string{b.Job},
		Goods: []int{0}, Offers: offers, Ask: total, Surplus: b.Budget - total})
	res.Winners = []int{0}
	res.Welfare = b.Budget - asks
	withSLA(res.Awards, []*Buyer{b}, s.profs)
}

// groupWords names groups for people: "tasks a, b" or "groups [a b] and [c]".
func groupWords(all [][]string, groups []int) string {
	if len(groups) == 1 {
		return "tasks " + strings.Join(all[groups[0]], ", ")
	}
	var parts []string
	for _, g := range groups {
		parts = append(parts, fmt.Sprint(all[g]))
	}
	return "groups " + strings.Join(parts, " and ")
}
