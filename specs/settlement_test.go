package specs

import (
	"strings"
	"testing"
	"time"
)

const settlementSpec = `---
accord: v1
name: money
version: 1.0.0
tenant: demo
---

## Tasks

` + "```yaml" + `
train:
  image: registry.example/trainer@sha256:0000000000000000000000000000000000000000000000000000000000000000
  command: [trainer]
` + "```" + `

## Budget

` + "```yaml" + `
max_price: 100
currency: USD
` + "```" + `

## Settlement

` + "```yaml" + `
SETTLEMENT
` + "```" + `
`

func parseSettlement(t *testing.T, block string) (*Spec, error) {
	t.Helper()
	return Parse("money.md", []byte(strings.Replace(settlementSpec, "SETTLEMENT", block, 1)))
}

func TestSettlementMoneyTerms(t *testing.T) {
	s, err := parseSettlement(t, "sla: {deadline: 1h, refund_percent: 20, slash_percent: 10, stake: 500}\nroyalties:\n  - {account: model, basis_points: 6000}\n  - {account: data, basis_points: 4000}")
	if err != nil {
		t.Fatal(err)
	}
	want := SLA{Deadline: time.Hour, RefundPercent: 20, SlashPercent: 10, Stake: 500}
	if s.Settlement.SLA != want || len(s.Settlement.Royalties) != 2 {
		t.Fatalf("settlement %+v", s.Settlement)
	}
	for block, msg := range map[string]string{
		"royalties: [{account: a, basis_points: 6000}, {account: b, basis_points: 4001}]":   "more than 10000",
		"royalties: [{account: a, basis_points: 1}, {account: 'owner:a', basis_points: 1}]": "duplicate royalty account",
		"royalties: [{account: 'a b', basis_points: 1}]":                                    "no spaces",
		"royalties: [{account: 'owner:', basis_points: 1}]":                                 "no spaces",
		"sla: {stake: -1}":          "stake",
		"sla: {slash_percent: 101}": "slash_percent",
	} {
		_, err := parseSettlement(t, block)
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "money.md:") {
			t.Errorf("%s: %v, want a positioned error containing %q", block, err, msg)
		}
	}
}
