package models

import (
	"context"
	"errors"
	"fmt"
)

// Use is what a job or deployment did with a model; each use has its own
// price in the model's Economics.
type Use string

// Uses.
const (
	UseInference  Use = "inference"
	UseFineTune   Use = "fine_tune"
	UseDeployment Use = "deployment"
)

// Bounds on a royalty split. A hostile lineage (deep chains, or merges that
// reach one ancestor through exponentially many paths) costs at most
// MaxLineageVisits lookups.
const (
	// MaxLineageDepth is the deepest ancestor a split follows: the used
	// model is depth 0, its parents depth 1.
	MaxLineageDepth = 16
	// MaxLineageVisits bounds the manifests a split visits, the used model
	// included, counting an ancestor once per path that reaches it.
	MaxLineageVisits = 256
)

// ErrLineage is a lineage a royalty split cannot follow: too deep, too
// many manifests, a parent manifest that is not the one its child names,
// an unknown use, or a lookup that failed.
var ErrLineage = errors.New("models: cannot split the fee up the lineage")

// Share is one owner's part of a model fee.
type Share struct {
	// Owner is the tenant paid.
	Owner string `json:"owner"`
	// Model is the name@version whose owner this pays.
	Model string `json:"model"`
	// Amount in minor units of the fee's currency.
	Amount int64 `json:"amount"`
	// Reason says why: "usage price of acme/clf@1.2.0" for the used
	// model's owner, "royalty 15.00% of acme/clf@1.2.0's income" for an
	// ancestor's.
	Reason string `json:"reason"`
}

// Fee is the price of one use of a model split among the owners of the
// model and its ancestors. The shares sum to Price.
type Fee struct {
	// Model is the used model's name@version and Digest its artifact's.
	Model    string  `json:"model"`
	Digest   string  `json:"digest"`
	Use      Use     `json:"use"`
	Currency string  `json:"currency"`
	Price    int64   `json:"price"`
	Shares   []Share `json:"shares,omitempty"`
}

// Lookup returns the manifest of a lineage parent pinned by (ref, digest).
// It must verify what it returns (the caller's registry checks the
// artifact's digest and signature); SplitFee checks that the manifest is
// valid and is the ref asked for.
type Lookup func(ctx context.Context, ref, digest string) (*Manifest, error)

// Price returns the price of one use.
func (e Economics) Price(use Use) (int64, error) {
	switch use {
	case UseInference:
		return e.PerInference, nil
	case UseFineTune:
		return e.PerFineTune, nil
	case UseDeployment:
		return e.PerDeployment, nil
	}
	return 0, fmt.Errorf("%w: use %q is not inference, fine_tune or deployment", ErrLineage, clip(string(use)))
}

// SplitFee splits the price of one use of m (pinned by digest) up its
// lineage tree. A model's income X (the use's price for m; the royalty its
// child pays it for an ancestor) goes floor(X·bp/10000) to each parent
// named in its royalties, split again the same way, and the rest to its own
// owner. So the shares sum to the price exactly, every rounding remainder
// stays with the model that earned the income, and an ancestor reached
// through two paths (a merge of two descendants) is paid on both, as two
// shares. Shares of zero are left out; a zero price has no shares. Shares
// are in depth-first order: the used model's owner first.
//
// Errors wrap ErrInvalid for an invalid manifest (m or a parent's) and
// ErrLineage for a lineage beyond MaxLineageDepth or MaxLineageVisits, a
// parent manifest whose name@version is not the ref its child names, or a
// failed lookup (wrapped too, with the ref).
func SplitFee(ctx context.Context, m *Manifest, digest string, use Use, lookup Lookup) (Fee, error) {
	if err := m.Validate(); err != nil {
		return Fee{}, err
	}
	if err := CheckDigest(digest); err != nil {
		return Fee{}, fmt.Errorf("%w: digest of %s: %v", ErrLineage, m.Ref(), err)
	}
	price, err := m.Economics.Price(use)
	if err != nil {
		return Fee{}, err
	}
	f := Fee{Model: m.Ref(), Digest: digest, Use: use, Currency: m.Economics.Currency, Price: price}
	s := splitter{ctx: ctx, lookup: lookup, visits: 1}
	if err := s.split(m, price, 0, fmt.Sprintf("usage price of %s", m.Ref())); err != nil {
		return Fee{}, err
	}
	f.Shares = s.shares
	return f, nil
}

type splitter struct {
	ctx    context.Context
	lookup Lookup
	visits int
	shares []Share
}

// split pays income X of m: its parents' royalties (recursively), the rest
// to m's owner for reason.
func (s *splitter) split(m *Manifest, income int64, depth int, reason string) error {
	if income == 0 {
		return nil
	}
	rest := income
	for _, r := range m.Economics.Royalties {
		rest -= royaltyOf(income, r.BasisPoints)
	}
	if rest > 0 {
		s.shares = append(s.shares, Share{Owner: m.Owner, Model: m.Ref(), Amount: rest, Reason: reason})
	}
	for _, r := range m.Economics.Royalties {
		amt := royaltyOf(income, r.BasisPoints)
		if amt == 0 {
			continue
		}
		p, err := s.parent(m, r.Parent, depth+1)
		if err != nil {
			return err
		}
		why := fmt.Sprintf("royalty %d.%02d%% of %s's income", r.BasisPoints/100, r.BasisPoints%100, m.Ref())
		if err := s.split(p, amt, depth+1, why); err != nil {
			return err
		}
	}
	return nil
}

// parent looks up and checks m's lineage parent ref at depth.
func (s *splitter) parent(m *Manifest, ref string, depth int) (*Manifest, error) {
	if depth > MaxLineageDepth {
		return nil, fmt.Errorf("%w: %s is deeper than %d generations", ErrLineage, ref, MaxLineageDepth)
	}
	if s.visits >= MaxLineageVisits {
		return nil, fmt.Errorf("%w: more than %d manifests on the way to %s", ErrLineage, MaxLineageVisits, ref)
	}
	s.visits++
	digest := ""
	for _, p := range m.Lineage.Parents {
		if p.Ref == ref {
			digest = p.Digest
		}
	}
	if err := s.ctx.Err(); err != nil {
		return nil, fmt.Errorf("models: look up %s: %w", ref, err)
	}
	p, err := s.lookup(s.ctx, ref, digest)
	if err != nil {
		return nil, fmt.Errorf("%w: look up %s@%s: %w", ErrLineage, ref, digest, err)
	}
	if p == nil {
		return nil, fmt.Errorf("%w: look up %s: no manifest", ErrLineage, ref)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("models: parent %s of %s: %w", ref, m.Ref(), err)
	}
	if p.Ref() != ref {
		return nil, fmt.Errorf("%w: %s names parent %s, the manifest found is %s", ErrLineage, m.Ref(), ref, clip(p.Ref()))
	}
	return p, nil
}

// royaltyOf is floor(income·bp/10000). Valid manifests keep income within
// MaxPrice and bp within MaxRoyaltyBP, so the product cannot overflow.
func royaltyOf(income int64, bp int) int64 {
	return income * int64(bp) / MaxRoyaltyBP
}
