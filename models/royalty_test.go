package models

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// tree is an in-memory registry of manifests for SplitFee, keyed by
// name@version; it records every lookup.
type tree struct {
	ms      map[string]*Manifest
	lookups []string
}

// model makes a valid manifest name@1.0.0 owned by owner, with prices
// (inference, fine-tune, deployment) and royalties parent → bp (parents
// are name@1.0.0 of models already in t).
func (t *tree) model(name, owner string, inference, fineTune int64, royalties ...any) *Manifest {
	m := validManifest()
	m.Name, m.Version, m.Owner = name, "1.0.0", owner
	m.Lineage = Lineage{}
	m.Economics = Economics{Currency: "EUR", PerInference: inference, PerFineTune: fineTune, PerDeployment: 7}
	for i := 0; i < len(royalties); i += 2 {
		ref := royalties[i].(string) + "@1.0.0"
		m.Lineage.Parents = append(m.Lineage.Parents, Parent{Ref: ref, Digest: dg(ref), Relation: RelationMerge})
		m.Economics.Royalties = append(m.Economics.Royalties, Royalty{Parent: ref, BasisPoints: royalties[i+1].(int)})
	}
	if t.ms == nil {
		t.ms = map[string]*Manifest{}
	}
	t.ms[m.Ref()] = m
	return m
}

func (t *tree) lookup(_ context.Context, ref, digest string) (*Manifest, error) {
	t.lookups = append(t.lookups, ref)
	m, ok := t.ms[ref]
	if !ok {
		return nil, fmt.Errorf("registry: %s: not found", ref)
	}
	if digest != dg(ref) {
		return nil, fmt.Errorf("registry: %s: digest %s does not pin it", ref, digest)
	}
	return m, nil
}

func sh(owner, model string, amount int64, reason string) Share {
	return Share{Owner: owner, Model: model + "@1.0.0", Amount: amount, Reason: reason}
}

func TestSplitFee(t *testing.T) {
	cases := []struct {
		name  string
		build func(t *tree) *Manifest
		use   Use
		price int64
		want  []Share
	}{
		{"no parents", func(t *tree) *Manifest { return t.model("solo", "ann", 100, 0) }, UseInference, 100,
			[]Share{sh("ann", "solo", 100, "usage price of solo@1.0.0")}},
		{"zero price", func(t *tree) *Manifest {
			t.model("base", "bob", 10, 10)
			return t.model("clf", "ann", 0, 50, "base", 1500)
		}, UseInference, 0, nil},
		{"one parent, rounding down", func(t *tree) *Manifest {
			t.model("base", "bob", 1, 1)
			// 1999 × 15 % = 299.85: the parent gets 299, the child keeps 1700.
			return t.model("clf", "ann", 1999, 5, "base", 1500)
		}, UseInference, 1999, []Share{
			sh("ann", "clf", 1700, "usage price of clf@1.0.0"),
			sh("bob", "base", 299, "royalty 15.00% of clf@1.0.0's income"),
		}},
		{"royalty below one minor unit", func(t *tree) *Manifest {
			t.model("base", "bob", 1, 1)
			return t.model("clf", "ann", 6, 5, "base", 1550)
		}, UseInference, 6, []Share{sh("ann", "clf", 6, "usage price of clf@1.0.0")}},
		{"the whole income to the parent", func(t *tree) *Manifest {
			t.model("base", "bob", 1, 1)
			return t.model("clf", "ann", 1, 2000, "base", 10000)
		}, UseFineTune, 2000, []Share{sh("bob", "base", 2000, "royalty 100.00% of clf@1.0.0's income")}},
		{"chain: each rounds down its own income", func(t *tree) *Manifest {
			t.model("root", "rex", 1, 1)
			t.model("base", "bob", 1, 1, "root", 3333)
			// clf 10001: base floor(10001×0.25)=2500, root floor(2500×0.3333)=833.
			return t.model("clf", "ann", 10001, 1, "base", 2500)
		}, UseInference, 10001, []Share{
			sh("ann", "clf", 7501, "usage price of clf@1.0.0"),
			sh("bob", "base", 1667, "royalty 25.00% of clf@1.0.0's income"),
			sh("rex", "root", 833, "royalty 33.33% of base@1.0.0's income"),
		}},
		{"diamond: the shared ancestor is paid on both paths", func(t *tree) *Manifest {
			t.model("root", "rex", 1, 1)
			t.model("left", "lea", 1, 1, "root", 1000)
			t.model("right", "rob", 1, 1, "root", 5000)
			// merged 1000: left 200, right 300; root 10% of 200 and 50% of 300.
			return t.model("merged", "ann", 1000, 1, "left", 2000, "right", 3000)
		}, UseInference, 1000, []Share{
			sh("ann", "merged", 500, "usage price of merged@1.0.0"),
			sh("lea", "left", 180, "royalty 20.00% of merged@1.0.0's income"),
			sh("rex", "root", 20, "royalty 10.00% of left@1.0.0's income"),
			sh("rob", "right", 150, "royalty 30.00% of merged@1.0.0's income"),
			sh("rex", "root", 150, "royalty 50.00% of right@1.0.0's income"),
		}},
		{"one owner, two models", func(t *tree) *Manifest {
			t.model("base", "ann", 1, 1)
			return t.model("clf", "ann", 1, 1, "base", 5000)
		}, UseDeployment, 7, []Share{
			sh("ann", "clf", 4, "usage price of clf@1.0.0"),
			sh("ann", "base", 3, "royalty 50.00% of clf@1.0.0's income"),
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := &tree{}
			m := c.build(tr)
			f, err := SplitFee(context.Background(), m, dg("used"), c.use, tr.lookup)
			if err != nil {
				t.Fatal(err)
			}
			if f.Model != m.Ref() || f.Digest != dg("used") || f.Use != c.use || f.Currency != "EUR" || f.Price != c.price {
				t.Errorf("fee header = %+v", f)
			}
			if !reflect.DeepEqual(f.Shares, c.want) {
				t.Errorf("shares:\n got %+v\nwant %+v", f.Shares, c.want)
			}
			if sum := sumShares(f.Shares); sum != f.Price {
				t.Errorf("shares sum to %d, price %d", sum, f.Price)
			}
		})
	}
}

func sumShares(ss []Share) int64 {
	var n int64
	for _, s := range ss {
		n += s.Amount
	}
	return n
}

func TestSplitFeeRejects(t *testing.T) {
	lookupErr := errors.New("registry down")
	cases := []struct {
		name  string
		build func(t *tree) (*Manifest, Lookup)
		want  error
	}{
		{"unknown use", func(t *tree) (*Manifest, Lookup) {
			return t.model("clf", "ann", 1, 1), t.lookup
		}, ErrLineage},
		{"invalid manifest", func(t *tree) (*Manifest, Lookup) {
			m := t.model("clf", "ann", 1, 1)
			m.Owner = ""
			return m, t.lookup
		}, ErrInvalid},
		{"lookup fails", func(t *tree) (*Manifest, Lookup) {
			t.model("base", "bob", 1, 1)
			return t.model("clf", "ann", 100, 1, "base", 100), func(context.Context, string, string) (*Manifest, error) {
				return nil, lookupErr
			}
		}, lookupErr},
		{"parent missing", func(t *tree) (*Manifest, Lookup) {
			t.model("base", "bob", 1, 1)
			m := t.model("clf", "ann", 100, 1, "base", 100)
			delete(t.ms, "base@1.0.0")
			return m, t.lookup
		}, ErrLineage},
		{"parent is another model", func(t *tree) (*Manifest, Lookup) {
			other := t.model("other", "eve", 1, 1)
			t.model("base", "bob", 1, 1)
			m := t.model("clf", "ann", 100, 1, "base", 100)
			t.ms["base@1.0.0"] = other
			return m, t.lookup
		}, ErrLineage},
		{"parent invalid", func(t *tree) (*Manifest, Lookup) {
			t.model("base", "bob", 1, 1).Economics.Currency = "eur"
			return t.model("clf", "ann", 100, 1, "base", 100), t.lookup
		}, ErrInvalid},
		{"nil manifest from lookup", func(t *tree) (*Manifest, Lookup) {
			t.model("base", "bob", 1, 1)
			return t.model("clf", "ann", 100, 1, "base", 100), func(context.Context, string, string) (*Manifest, error) {
				return nil, nil
			}
		}, ErrLineage},
		{"too deep", func(t *tree) (*Manifest, Lookup) {
			t.model("m0", "ann", 1, 1)
			var m *Manifest
			for i := 1; i <= MaxLineageDepth+1; i++ {
				m = t.model(fmt.Sprintf("m%d", i), "ann", 1<<30, 1, fmt.Sprintf("m%d", i-1), 10000)
			}
			return m, t.lookup
		}, ErrLineage},
		{"too many paths", func(t *tree) (*Manifest, Lookup) {
			// A ladder of merges: level i has two models, both merging
			// both models of level i-1, so 2^i paths reach the bottom.
			t.model("a0", "ann", 1, 1)
			t.model("b0", "ann", 1, 1)
			var m *Manifest
			for i := 1; i <= 9; i++ {
				p, q := fmt.Sprintf("a%d", i-1), fmt.Sprintf("b%d", i-1)
				m = t.model(fmt.Sprintf("a%d", i), "ann", 1<<30, 1, p, 5000, q, 5000)
				t.model(fmt.Sprintf("b%d", i), "ann", 1<<30, 1, p, 5000, q, 5000)
			}
			return m, t.lookup
		}, ErrLineage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := &tree{}
			m, lookup := c.build(tr)
			use := UseInference
			if c.name == "unknown use" {
				use = "training"
			}
			_, err := SplitFee(context.Background(), m, dg("used"), use, lookup)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if len(tr.lookups) > MaxLineageVisits {
				t.Errorf("%d lookups, bound %d", len(tr.lookups), MaxLineageVisits)
			}
		})
	}
	tr := &tree{}
	t.Run("lookup error names the ref", func(t *testing.T) {
		tr.model("base", "bob", 1, 1)
		m := tr.model("clf", "ann", 100, 1, "base", 100)
		_, err := SplitFee(context.Background(), m, dg("used"), UseInference, func(context.Context, string, string) (*Manifest, error) {
			return nil, lookupErr
		})
		if want := "base@1.0.0"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to name %s", err, want)
		}
	})
	t.Run("bad digest", func(t *testing.T) {
		if _, err := SplitFee(context.Background(), tr.model("x", "ann", 1, 1), "sha256:zz", UseInference, tr.lookup); !errors.Is(err, ErrLineage) {
			t.Errorf("err = %v", err)
		}
	})
}

// TestSplitFeeRandomTrees checks the invariants on seeded random lineage
// DAGs: shares sum to the price, none is zero or negative, each names a
// model of the DAG and its owner, and the used model's owner keeps at least
// what its own royalties leave it.
func TestSplitFeeRandomTrees(t *testing.T) {
	split, refused, shares := 0, 0, 0
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 22))
		tr := &tree{}
		n := 1 + rng.IntN(12)
		var m *Manifest
		for i := 0; i < n; i++ {
			var roy []any
			left := 10000
			for j := 0; j < i && len(roy) < 6 && left > 0; j++ {
				if rng.IntN(3) == 0 {
					bp := 1 + rng.IntN(min(left, 6000))
					left -= bp
					roy = append(roy, fmt.Sprintf("m%d", j), bp)
				}
			}
			m = tr.model(fmt.Sprintf("m%d", i), fmt.Sprintf("o%d", rng.IntN(4)), rng.Int64N(MaxPrice), 1, roy...)
		}
		f, err := SplitFee(context.Background(), m, dg("used"), UseInference, tr.lookup)
		if errors.Is(err, ErrLineage) && len(tr.lookups) >= MaxLineageVisits-1 {
			refused++ // a DAG with too many paths: refused within the bound
			continue
		}
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if sumShares(f.Shares) != f.Price || f.Price != m.Economics.PerInference {
			t.Fatalf("seed %d: shares sum to %d, price %d", seed, sumShares(f.Shares), f.Price)
		}
		for _, s := range f.Shares {
			owner := tr.ms[s.Model]
			if s.Amount <= 0 || owner == nil || owner.Owner != s.Owner {
				t.Fatalf("seed %d: bad share %+v", seed, s)
			}
		}
		split++
		shares += len(f.Shares)
	}
	t.Logf("%d split (%d shares), %d refused", split, shares, refused)
	if split < 150 || shares < 2*split {
		t.Errorf("the random DAGs did not exercise the split: %d split, %d shares", split, shares)
	}
}
