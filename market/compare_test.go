package market

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// TestCompare negotiates a few synthetic multi-task jobs by every default
// variant: each agreement is within its budget (an auction's within its
// reserve, half the budget by default), the summaries count what the
// outcomes say, and a second run gives the same figures.
func TestCompare(t *testing.T) {
	ctx := context.Background()
	c, err := Compare(ctx, 1, 12, 4, DefaultVariants)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Jobs) != 12 || len(c.Outcomes) != len(DefaultVariants) {
		t.Fatalf("%d jobs, %d variants", len(c.Jobs), len(c.Outcomes))
	}
	sums := c.Summaries()
	for v, variant := range c.Variants {
		agreed, split := 0, 0
		for j, o := range c.Outcomes[v] {
			if !o.Agreed {
				continue
			}
			agreed++
			if o.Providers > 1 {
				split++
			}
			limit := o.Budget
			if variant.Protocol == ProtocolAuction && !variant.ReserveAtBudget {
				limit = reserveOf(o.Budget, 0)
			}
			if o.Price <= 0 || o.Price > limit {
				t.Fatalf("%s, job %s: price %d outside (0, %d]", variant.Name, c.Jobs[j], o.Price, limit)
			}
			if variant.Protocol == ProtocolAlternating && o.Providers != 1 {
				t.Fatalf("%s, job %s: bilateral bargain on %d providers", variant.Name, c.Jobs[j], o.Providers)
			}
		}
		s := sums[v]
		if s.Agreed != agreed || s.Split != split || s.Jobs != 12 || (variant.Protocol == ProtocolAuction && s.MeanRounds != 1) {
			t.Fatalf("%s: summary %+v, counted %d agreed %d split", variant.Name, s, agreed, split)
		}
		if variant.Protocol == ProtocolStacked && (s.MeanMoves == 0 || s.Agreed == 0) {
			t.Fatalf("%s: summary %+v", variant.Name, s)
		}
	}
	again, err := Compare(ctx, 1, 12, 4, DefaultVariants)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, again) {
		t.Fatal("two runs of the same comparison differ")
	}
	if _, err := Compare(ctx, 1, 0, 4, DefaultVariants); !errors.Is(err, ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
}
