package settlement

import (
	"fmt"
	"regexp"
	"strings"
)

// Bounds on the model fees of one settlement.
const (
	// MaxModelFees bounds the model uses one job pays for.
	MaxModelFees = 64
	// MaxModelFeeShares bounds the shares of one fee: a royalty split
	// visits at most 256 manifests (models.MaxLineageVisits), each paying
	// at most one share.
	MaxModelFeeShares = 256
)

// Model uses (models.Use).
const (
	UseInference  = "inference"
	UseFineTune   = "fine_tune"
	UseDeployment = "deployment"
)

// Memo prefixes of model-fee postings: "model-fee <name@version>" pays the
// used model's owner its usage price, "royalty <name@version>" pays an
// ancestor's owner its royalty share.
const (
	MemoModelFee = "model-fee"
	MemoRoyalty  = "royalty"
)

// ModelFee is the price of one use of a model, split among the owners of
// the model and of its ancestors (models.SplitFee), paid from the job's
// escrow at settlement.
type ModelFee struct {
	// Model is the used model's name@version, Digest its artifact's
	// sha256 digest.
	Model  string `json:"model"`
	Digest string `json:"digest"`
	// Use is inference, fine_tune or deployment.
	Use string `json:"use"`
	// Shares are paid in order; Account is "owner:TENANT", Model the
	// name@version whose owner a share pays (empty or the used model for
	// its usage price, an ancestor for a royalty).
	Shares []Payment `json:"shares"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// CheckModelFees reports model fees that settlement would refuse: more
// than MaxModelFees fees or MaxModelFeeShares shares in one, a malformed
// model, digest or use ([ErrBadRequest]), a share to an account that is not
// "owner:TENANT" ([ErrBadAccount]), an amount outside [0, MaxAmount] or a
// total above MaxAmount ([ErrBadAmount]). Admission calls it so that such a
// job is refused before it runs; Settle checks again.
func CheckModelFees(fees []ModelFee) error {
	if len(fees) > MaxModelFees {
		return fmt.Errorf("%w: %d model fees, at most %d", ErrBadRequest, len(fees), MaxModelFees)
	}
	var total int64
	for i, f := range fees {
		if err := f.check(); err != nil {
			return fmt.Errorf("settlement: model fee %d: %w", i, err)
		}
		for _, p := range f.Shares {
			total += p.Amount
			if total > MaxAmount {
				return fmt.Errorf("%w: model fees add up to more than %d", ErrBadAmount, MaxAmount)
			}
		}
	}
	return nil
}

func (f ModelFee) check() error {
	if err := checkModelRef(f.Model); err != nil {
		return fmt.Errorf("%w: model: %v", ErrBadRequest, err)
	}
	if !digestRE.MatchString(f.Digest) {
		return fmt.Errorf("%w: digest of %s is not sha256:<64 lowercase hex>", ErrBadRequest, f.Model)
	}
	switch f.Use {
	case UseInference, UseFineTune, UseDeployment:
	default:
		return fmt.Errorf("%w: use of %s is not %s, %s or %s", ErrBadRequest, f.Model, UseInference, UseFineTune, UseDeployment)
	}
	if len(f.Shares) > MaxModelFeeShares {
		return fmt.Errorf("%w: %s: %d shares, at most %d", ErrBadRequest, f.Model, len(f.Shares), MaxModelFeeShares)
	}
	for j, p := range f.Shares {
		kind, name, err := ParseAccount(p.Account)
		if err != nil {
			return fmt.Errorf("share %d: %w", j, err)
		}
		if kind != KindOwner || checkTenant(name) != nil {
			return fmt.Errorf("%w: share %d: %q is not owner:TENANT", ErrBadAccount, j, p.Account)
		}
		if err := checkAmount("share", p.Amount); err != nil {
			return fmt.Errorf("share %d: %w", j, err)
		}
		if p.Model != "" {
			if err := checkModelRef(p.Model); err != nil {
				return fmt.Errorf("%w: share %d: model: %v", ErrBadRequest, j, err)
			}
		}
	}
	return nil
}

// checkModelRef accepts name@version references as checkName does (the
// models package checks the grammar; the ledger only needs them safe to
// store and print).
func checkModelRef(ref string) error {
	if err := checkName(ref); err != nil {
		return err
	}
	if !strings.Contains(ref, "@") {
		return fmt.Errorf("%q is not name@version", ref)
	}
	return nil
}

// memo is the posting memo of share p of fee f.
func (f ModelFee) memo(p Payment) string {
	if p.Model == "" || p.Model == f.Model {
		return MemoModelFee + " " + f.Model
	}
	return MemoRoyalty + " " + p.Model
}

// payModelFees pays fees in order, each share in order, from an escrow
// holding avail: a share is cut to what is left, and those after it get
// nothing. It returns the fees as paid, their total and whether any was
// cut. Inputs passed CheckModelFees, so no sum overflows.
func payModelFees(fees []ModelFee, avail int64) (paid []ModelFee, total int64, cut bool) {
	for _, f := range fees {
		pf := f
		pf.Shares = make([]Payment, len(f.Shares))
		for j, p := range f.Shares {
			amt := min(p.Amount, avail-total)
			cut = cut || amt < p.Amount
			p.Amount = amt
			pf.Shares[j] = p
			total += amt
		}
		paid = append(paid, pf)
	}
	return paid, total, cut
}

// modelFeePostings moves each paid share from the escrow to its owner.
func modelFeePostings(escrow, currency string, fees []ModelFee) []Posting {
	var ps []Posting
	for _, f := range fees {
		for _, p := range f.Shares {
			m := f.memo(p)
			ps = append(ps,
				Posting{Account: escrow, Currency: currency, Amount: -p.Amount, Memo: m},
				Posting{Account: p.Account, Currency: currency, Amount: p.Amount, Memo: m})
		}
	}
	return ps
}

// Paid is everything the escrow paid out: the model fees and the payable
// charge (the provider's pay, the platform fee and the royalties). Paid +
// Refund = Held.
func (s *Settlement) Paid() int64 { return s.ModelFeeTotal + s.Payable }
