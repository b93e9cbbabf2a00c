package exchange

import (
	"context"
	"fmt"

	"github.com/accordmesh/accord/models"
)

// Resolve pins name at the highest published version matching constraint.
func (x *Exchange) Resolve(ctx context.Context, name, constraint string) (ref, digest string, err error) {
	v, d, err := x.Registry.Resolve(ctx, name, constraint)
	if err != nil {
		return "", "", err
	}
	return name + "@" + v, d, nil
}

// Lookup returns the verified manifest of ref pinned by digest; it is the
// models.Lookup that royalty splits follow.
func (x *Exchange) Lookup(ctx context.Context, ref, digest string) (*models.Manifest, error) {
	name, _, err := models.ParseRef(ref)
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	v, err := x.Verify(ctx, name+"@"+digest)
	if err != nil {
		return nil, err
	}
	if v.Ref != ref {
		return nil, fmt.Errorf("%w: %s is %s, not %s", ErrUnverified, digest, v.Ref, ref)
	}
	return v.Manifest, nil
}

// Fee prices one use of the pinned model from its verified publication and
// splits the price up its verified lineage.
func (x *Exchange) Fee(ctx context.Context, ref, digest string, use models.Use) (models.Fee, error) {
	m, err := x.Lookup(ctx, ref, digest)
	if err != nil {
		return models.Fee{}, err
	}
	return models.SplitFee(ctx, m, digest, use, x.Lookup)
}

// Node is one model in a lineage tree.
type Node struct {
	Ref      string `json:"ref"`
	Digest   string `json:"digest"`
	Owner    string `json:"owner"`
	Relation string `json:"relation,omitempty"` // to its child
	// RoyaltyBP is the share of its child's income it receives.
	RoyaltyBP int              `json:"royalty_basis_points,omitempty"`
	Receipt   *models.Receipt  `json:"receipt,omitempty"`
	Datasets  []string         `json:"datasets,omitempty"`
	Economics models.Economics `json:"economics"`
	Parents   []*Node          `json:"parents,omitempty"`
}

// Lineage returns the verified derivation tree of ref (name@version or
// name@sha256:…), bounded like a royalty split.
func (x *Exchange) Lineage(ctx context.Context, ref string) (*Node, error) {
	v, err := x.Verify(ctx, ref)
	if err != nil {
		return nil, err
	}
	visits := 1
	return x.node(ctx, v.Manifest, v.Digest, 0, &visits)
}

func (x *Exchange) node(ctx context.Context, m *models.Manifest, digest string, depth int, visits *int) (*Node, error) {
	n := &Node{Ref: m.Ref(), Digest: digest, Owner: m.Owner, Receipt: m.Lineage.Receipt, Datasets: m.Lineage.Datasets, Economics: m.Economics}
	if depth >= models.MaxLineageDepth {
		return n, fmt.Errorf("%w: %s is deeper than %d", models.ErrLineage, m.Ref(), models.MaxLineageDepth)
	}
	for _, p := range m.Lineage.Parents {
		if *visits++; *visits > models.MaxLineageVisits {
			return n, fmt.Errorf("%w: more than %d models", models.ErrLineage, models.MaxLineageVisits)
		}
		pm, err := x.Lookup(ctx, p.Ref, p.Digest)
		if err != nil {
			return n, fmt.Errorf("parent %s of %s: %w", p.Ref, m.Ref(), err)
		}
		child, err := x.node(ctx, pm, p.Digest, depth+1, visits)
		if err != nil {
			return n, err
		}
		child.Relation = string(p.Relation)
		for _, r := range m.Economics.Royalties {
			if r.Parent == p.Ref {
				child.RoyaltyBP = r.BasisPoints
			}
		}
		n.Parents = append(n.Parents, child)
	}
	return n, nil
}
