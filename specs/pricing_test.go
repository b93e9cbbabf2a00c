package specs

import (
	"strings"
	"testing"
	"time"
)

func negotiationSpec(block string) []byte {
	return []byte("---\naccord: v1\nname: p\nversion: 1.0.0\ntenant: demo\n---\n\n## Tasks\n\n```yaml\nt:\n  image: oci-archive:x.tar\n  command: [x]\n```\n\n" +
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\n```\n\n## Negotiation\n\n```yaml\n" + block + "```\n")
}

func TestNegotiationPricing(t *testing.T) {
	for _, c := range []struct{ block, want, err string }{
		{"protocol: auction\n", PricingVCG, ""},
		{"pricing: second-price\n", PricingSecond, ""},
		{"pricing: first-price\nreserve: 100\n", PricingFirst, ""},
		{"pricing: english\n", "", `p.md:26:10: pricing "english" must be vcg, first-price or second-price`},
		{"protocol: alternating-offers\npricing: vcg\n", "", "p.md:27:10: pricing applies to protocol auction; alternating-offers agrees on its price by bargaining"},
	} {
		s, err := Parse("p.md", negotiationSpec(c.block))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.block, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.block, err)
		case s.Negotiation.PricingRule() != c.want:
			t.Errorf("%q: pricing %q, want %q", c.block, s.Negotiation.PricingRule(), c.want)
		}
	}
}

func TestNegotiationBuyerAgent(t *testing.T) {
	for _, c := range []struct {
		block string
		agent bool
		rt    time.Duration
		err   string
	}{
		{"protocol: alternating-offers\nbuyer: agent\n", true, DefaultRoundTimeout, ""},
		{"protocol: alternating-offers\nbuyer: agent\nround_timeout: 30s\n", true, 30 * time.Second, ""},
		{"protocol: alternating-offers\nbuyer: auto\n", false, 0, ""},
		{"protocol: alternating-offers\n", false, 0, ""},
		{"buyer: agent\n", false, 0, "p.md:26:8: buyer agent needs protocol alternating-offers"},
		{"protocol: alternating-offers\nbuyer: agnet\n", false, 0, `p.md:27:8: buyer "agnet" must be auto or agent (did you mean "agent"?)`},
		{"protocol: alternating-offers\nbuyer: agent\nround_timeout: 100ms\n", false, 0, "p.md:28:16: round_timeout 100ms must be between"},
		{"protocol: alternating-offers\nbuyer: agent\nround_timeout: 48h\n", false, 0, "p.md:28:16: round_timeout 2d must be between 1s and 1d"},
		{"protocol: alternating-offers\nround_timeout: 1m\n", false, 0, "p.md:27:16: round_timeout applies to buyer agent"},
	} {
		s, err := Parse("p.md", negotiationSpec(c.block))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.block, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.block, err)
		case s.Negotiation.AgentBuyer() != c.agent || s.Negotiation.RoundTimeout != c.rt:
			t.Errorf("%q: agent %v timeout %s, want %v %s", c.block, s.Negotiation.AgentBuyer(), s.Negotiation.RoundTimeout, c.agent, c.rt)
		}
	}
}

func TestNegotiationStacked(t *testing.T) {
	for _, c := range []struct {
		block    string
		rounds   int
		discount float64
		err      string
	}{
		{"protocol: stacked-alternating-offers\n", DefaultRoundsAO, DefaultDiscountAO, ""},
		{"protocol: stacked-alternating-offers\nrounds: 30\ndiscount: 0.8\nreserve: 200\n", 30, 0.8, ""},
		{"protocol: stacked-alternating-offers\nrounds: 0\n", 0, 0, "p.md:27:9: rounds must be between 1 and 1000, not 0"},
		{"protocol: stacked-alternating-offers\npricing: vcg\n", 0, 0, "p.md:27:10: pricing applies to protocol auction; stacked-alternating-offers agrees on its price by bargaining"},
		{"protocol: stacked-alternating-offers\nbuyer: agent\n", 0, 0, "p.md:27:8: buyer agent needs protocol alternating-offers"},
		{"protocol: stacked-alternating-offer\n", 0, 0, `p.md:26:11: protocol "stacked-alternating-offer" must be auction, alternating-offers or stacked-alternating-offers (did you mean "stacked-alternating-offers"?)`},
	} {
		s, err := Parse("p.md", negotiationSpec(c.block))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.block, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.block, err)
		case s.Negotiation.Protocol != ProtocolStacked || !s.Negotiation.Bargains() || s.Negotiation.AgentBuyer():
			t.Errorf("%q: negotiation %+v", c.block, s.Negotiation)
		case s.Negotiation.Rounds != c.rounds || s.Negotiation.Discount != c.discount:
			t.Errorf("%q: rounds %d discount %v, want %d %v", c.block, s.Negotiation.Rounds, s.Negotiation.Discount, c.rounds, c.discount)
		}
	}
}
