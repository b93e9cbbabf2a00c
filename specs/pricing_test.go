package specs

import (
	"strings"
	"testing"
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
