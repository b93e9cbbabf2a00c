package specs

import (
	"strings"
	"testing"
)

// splitSpec is negotiationSpec with a placement section and an optional
// verification section.
func splitSpec(placement, negotiation, verification string) []byte {
	b := "---\naccord: v1\nname: p\nversion: 1.0.0\ntenant: demo\n---\n\n## Tasks\n\n```yaml\na:\n  image: oci-archive:x.tar\n  command: [x]\nb:\n  image: oci-archive:x.tar\n  command: [x]\n  depends_on: [a]\n```\n\n" +
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\n```\n\n## Placement\n\n```yaml\n" + placement + "```\n\n## Negotiation\n\n```yaml\n" + negotiation + "```\n"
	if verification != "" {
		b += "\n## Verification\n\n```yaml\n" + verification + "```\n"
	}
	return []byte(b)
}

func TestPlacementSplit(t *testing.T) {
	for _, c := range []struct {
		placement, negotiation, verification string
		split                                bool
		err                                  string
	}{
		{"split: true\n", "protocol: auction\n", "", true, ""},
		{"split: true\n", "protocol: stacked-alternating-offers\n", "", true, ""},
		{"split: false\n", "protocol: alternating-offers\n", "", false, ""},
		{"split: yes please\n", "protocol: auction\n", "", false, "split"},
		{"split: true\n", "protocol: alternating-offers\n", "", false, "p.md:30:8: split needs protocol auction or stacked-alternating-offers"},
		{"split: true\n", "mode: batch\n", "", false, "p.md:30:8: split is not supported in mode batch"},
		{"split: true\n", "protocol: auction\n", "spot_check: 0.5\n", false, "p.md:30:8: split cannot be combined with verification.spot_check"},
	} {
		s, err := Parse("p.md", splitSpec(c.placement, c.negotiation, c.verification))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q %q: error %v, want %q", c.placement, c.negotiation, err, c.err)
			}
		case err != nil:
			t.Errorf("%q %q: %v", c.placement, c.negotiation, err)
		case s.Placement.Split != c.split:
			t.Errorf("%q: split %v, want %v", c.placement, s.Placement.Split, c.split)
		}
	}
}

// TestPlacementSplitDigest: a spec that does not split keeps the contract
// digest it had before split existed.
func TestPlacementSplitDigest(t *testing.T) {
	s, err := Parse("p.md", splitSpec("regions: [eu]\n", "protocol: auction\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	canon, err := CanonicalJSON(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(canon), "split") {
		t.Errorf("canonical form of a spec that does not split names it: %s", canon)
	}
}
