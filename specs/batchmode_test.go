package specs

import (
	"strings"
	"testing"
	"time"
)

func TestNegotiationMode(t *testing.T) {
	for _, c := range []struct {
		block string
		batch bool
		wait  time.Duration
		err   string
	}{
		{"protocol: auction\n", false, 0, ""},
		{"mode: immediate\n", false, 0, ""},
		{"mode: batch\n", true, DefaultBatchWait, ""},
		{"mode: batch\nbatch_wait: 90s\n", true, 90 * time.Second, ""},
		{"mode: batched\n", false, 0, `p.md:26:7: mode "batched" must be immediate or batch (did you mean "batch"?)`},
		{"protocol: alternating-offers\nmode: batch\n", false, 0, "p.md:27:7: mode batch needs protocol auction"},
		{"mode: batch\nbatch_wait: 1s\n", false, 0, "p.md:27:13: batch_wait 1s must be between 10s and 1d"},
		{"mode: batch\nbatch_wait: 48h\n", false, 0, "p.md:27:13: batch_wait 2d must be between 10s and 1d"},
		{"batch_wait: 1m\n", false, 0, "p.md:26:13: batch_wait applies to mode batch"},
	} {
		s, err := Parse("p.md", negotiationSpec(c.block))
		switch {
		case c.err != "":
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: error %v, want %q", c.block, err, c.err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.block, err)
		case s.Negotiation.Batch() != c.batch || s.Negotiation.BatchWait != c.wait:
			t.Errorf("%q: batch %v wait %v, want %v %v", c.block, s.Negotiation.Batch(), s.Negotiation.BatchWait, c.batch, c.wait)
		}
	}
}

// TestNegotiationModeDigest: a spec that does not name a mode keeps the
// contract digest it had before modes existed (no mode, no batch_wait in
// the canonical form).
func TestNegotiationModeDigest(t *testing.T) {
	s, err := Parse("p.md", negotiationSpec("protocol: auction\n"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("p.md", negotiationSpec("protocol: auction\nmode: batch\n"))
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Compile(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.ContractDigest == pb.ContractDigest {
		t.Error("batch mode does not change the contract digest")
	}
	canon, err := CanonicalJSON(s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(canon), "mode") || strings.Contains(string(canon), "batch_wait") {
		t.Errorf("canonical form of a spec without mode names it: %s", canon)
	}
}
