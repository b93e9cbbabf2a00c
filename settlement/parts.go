package settlement

import (
	"fmt"
	"sort"

	"github.com/accordmesh/accord/internal/names"
)

// MaxSettleParts bounds the parts of one split job's settlement: one per
// provider the job was split over.
const MaxSettleParts = 256

// validateParts checks a split job's parts as the top-level price, usage,
// rates and terms of a whole job are checked, and that the top-level ones
// are then unset: a split job is charged per part only.
func (r SettleRequest) validateParts() error {
	if len(r.Parts) > MaxSettleParts {
		return fmt.Errorf("%w: %d parts, at most %d", ErrBadRequest, len(r.Parts), MaxSettleParts)
	}
	if r.Price != 0 || r.Usage != (Usage{}) || r.Rates != (Rates{}) || r.SLA != (SLATerms{}) || !r.Outcome.zero() {
		return fmt.Errorf("%w: a request with parts has no top-level price, usage, rates, SLA or outcome", ErrBadRequest)
	}
	seen := make(map[string]bool, len(r.Parts))
	for i, p := range r.Parts {
		if err := p.validate(); err != nil {
			return fmt.Errorf("settlement: part %d: %w", i, err)
		}
		if seen[p.Provider] {
			return fmt.Errorf("%w: part %d: provider %s has two parts", ErrBadRequest, i, p.Provider)
		}
		seen[p.Provider] = true
	}
	return nil
}

func (o Outcome) zero() bool {
	return o.Placed.IsZero() && o.Finished.IsZero() && o.Duration == 0 && !o.VerificationFailed
}

func (p SettlePart) validate() error {
	if err := names.Provider(p.Provider); err != nil {
		// A part's provider is a provider agent, named as Reassign and
		// Slash require; the name is a safe account name too.
		return fmt.Errorf("%w: %w: provider: %v", ErrBadRequest, ErrBadAccount, err)
	}
	if err := checkAmount("price", p.Price); err != nil {
		return err
	}
	if _, err := Meter(p.Usage, p.Rates); err != nil {
		return err
	}
	_, err := EvaluateSLA(p.SLA, p.Outcome)
	return err
}

// division is a charge divided as a whole job's is: RefundPercent of it
// back to the tenant (rounded down), and the payable rest split into the
// platform fee and royalties (basis points of it, each rounded down) and the
// provider's pay (what is left).
type division struct {
	SLARefund, Payable, PlatformFee, ProviderPay int64
	Royalties                                    []Payment
}

// divide divides charge under verdict v; feeBP and royalties passed
// CheckShares, so ProviderPay is never negative.
func divide(charge int64, v SLAResult, feeBP int64, royalties []Royalty) division {
	d := division{SLARefund: pct(charge, v.RefundPercent)}
	d.Payable = charge - d.SLARefund
	d.PlatformFee = bp(d.Payable, feeBP)
	d.ProviderPay = d.Payable - d.PlatformFee
	for _, ro := range royalties {
		p := Payment{Account: OwnerAccount(ro.Account), Amount: bp(d.Payable, ro.BasisPoints)}
		d.Royalties = append(d.Royalties, p)
		d.ProviderPay -= p.Amount
	}
	return d
}

// slashers are the providers of parts whose verdict slashes, sorted: their
// bonds are read (and, on PostgreSQL, locked) in this order, as balances are
// updated, so that concurrent settlements cannot deadlock on them.
func slashers(parts []SettlePart) ([]string, error) {
	var out []string
	for _, p := range parts {
		v, err := EvaluateSLA(p.SLA, p.Outcome)
		if err != nil {
			return nil, err
		}
		if SlashAmount(v, MaxAmount) > 0 {
			out = append(out, p.Provider)
		}
	}
	sort.Strings(out)
	return out, nil
}

// splitSettlement computes the settlement of a split job r from an escrow
// holding held, given what each provider's bond holds (bonds; a provider
// not in it has an empty bond). It is pure: [Ledger.Settle] reads held and
// the bonds in its transaction and posts [splitPostings] of the result.
//
// The model fees are paid first, from the whole escrow. Then each part in
// order is charged its price plus its metered usage, at most what the
// escrow still holds after the fees and the charges of the parts before it
// (Capped on the part and the whole). An SLA refund is the tenant's
// compensation for that part's breach, so it is not available to the parts
// after it. Each charge is divided as a whole job's is ([divide]); each
// part's provider is slashed from its own bond by its own verdict. A failed
// pay-on-success job pays no fees and no part, but its breaches still
// slash. The top-level amounts are the parts' sums.
func splitSettlement(r SettleRequest, held int64, bonds map[string]int64) (*Settlement, error) {
	s := &Settlement{Held: held}
	pays := r.Succeeded || !r.PayOnSuccess
	if pays {
		s.ModelFees, s.ModelFeeTotal, s.Capped = payModelFees(r.ModelFees, held)
	}
	roy := map[string]int{} // account → index in s.Royalties
	for _, p := range r.Parts {
		ps, err := settlePart(p, held-s.ModelFeeTotal-s.Charge, pays, bonds[p.Provider], r.FeeBP, r.Royalties)
		if err != nil {
			return nil, fmt.Errorf("settlement: part %s: %w", p.Provider, err)
		}
		s.Parts = append(s.Parts, ps)
		s.Metered = addCharges(s.Metered, ps.Metered)
		s.Charge += ps.Charge
		s.Capped = s.Capped || ps.Capped
		s.SLARefund += ps.SLARefund
		s.Payable += ps.Payable
		s.ProviderPay += ps.ProviderPay
		s.PlatformFee += ps.PlatformFee
		s.Slashed += ps.Slashed
		for _, py := range ps.Royalties {
			i, ok := roy[py.Account]
			if !ok {
				i = len(s.Royalties)
				roy[py.Account] = i
				s.Royalties = append(s.Royalties, Payment{Account: py.Account})
			}
			s.Royalties[i].Amount += py.Amount
		}
	}
	s.Refund = held - s.ModelFeeTotal - s.Payable
	return s, nil
}

// settlePart charges one part at most left (nothing unless pays) and
// slashes its provider's bond holding bond.
func settlePart(p SettlePart, left int64, pays bool, bond, feeBP int64, royalties []Royalty) (PartSettlement, error) {
	metered, err := Meter(p.Usage, p.Rates)
	if err != nil {
		return PartSettlement{}, err
	}
	verdict, err := EvaluateSLA(p.SLA, p.Outcome)
	if err != nil {
		return PartSettlement{}, err
	}
	ps := PartSettlement{Provider: p.Provider, Price: p.Price, Usage: p.Usage, Rates: p.Rates,
		Metered: metered, SLA: verdict, Slashed: SlashAmount(verdict, bond)}
	if pays {
		ps.Charge = p.Price + metered.Total
		if ps.Charge > left {
			ps.Charge, ps.Capped = max(left, 0), true
		}
	}
	d := divide(ps.Charge, verdict, feeBP, royalties)
	ps.SLARefund, ps.Payable, ps.PlatformFee, ps.ProviderPay, ps.Royalties = d.SLARefund, d.Payable, d.PlatformFee, d.ProviderPay, d.Royalties
	return ps, nil
}

func addCharges(a, b Charges) Charges {
	return Charges{Wall: a.Wall + b.Wall, CPU: a.CPU + b.CPU, Mem: a.Mem + b.Mem, GPU: a.GPU + b.GPU, Total: a.Total + b.Total}
}

// splitPostings are a split settlement's postings: the model fees, one pay
// pair per part's provider, the platform fee, one royalty pair per account,
// the refund, and one slash pair per part, from that part's provider's
// bond. The memos are a whole job's, so statements read them alike.
func splitPostings(s *Settlement, escrow, tenant string) []Posting {
	c := s.Currency
	ps := modelFeePostings(escrow, c, s.ModelFees)
	for _, p := range s.Parts {
		ps = append(ps,
			Posting{Account: escrow, Currency: c, Amount: -p.ProviderPay, Memo: "pay"},
			Posting{Account: ProviderAccount(p.Provider), Currency: c, Amount: p.ProviderPay, Memo: "pay"})
	}
	ps = append(ps,
		Posting{Account: escrow, Currency: c, Amount: -s.PlatformFee, Memo: "fee"},
		Posting{Account: PlatformFeeAccount, Currency: c, Amount: s.PlatformFee, Memo: "fee"})
	for _, p := range s.Royalties {
		ps = append(ps,
			Posting{Account: escrow, Currency: c, Amount: -p.Amount, Memo: "royalty"},
			Posting{Account: p.Account, Currency: c, Amount: p.Amount, Memo: "royalty"})
	}
	ps = append(ps,
		Posting{Account: escrow, Currency: c, Amount: -s.Refund, Memo: "refund"},
		Posting{Account: TenantAccount(tenant), Currency: c, Amount: s.Refund, Memo: "refund"})
	for _, p := range s.Parts {
		ps = append(ps,
			Posting{Account: BondAccount(p.Provider), Currency: c, Amount: -p.Slashed, Memo: "slash"},
			Posting{Account: TenantAccount(tenant), Currency: c, Amount: p.Slashed, Memo: "slash"})
	}
	return ps
}
