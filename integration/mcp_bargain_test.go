package integration

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// bargainProviders are two static sellers with different asks for the
// quickstart (one core for at most five minutes): cheap concedes linearly
// from twice its ask, dear holds firm (boulware).
const bargainProviders = `providers:
  - name: cheap
    region: eu-west
    reputation: 0.9
    free: {cpu_millis: 8000, memory_bytes: 17179869184, disk_bytes: 17179869184}
    pricing: {currency: USD, cpu_hour: 600, memory_gib_hour: 0}
    strategy: {concession: linear}
    sla: {max_refund_percent: 100, max_slash_percent: 100}
  - name: dear
    region: eu-west
    reputation: 0.9
    free: {cpu_millis: 8000, memory_bytes: 17179869184, disk_bytes: 17179869184}
    pricing: {currency: USD, cpu_hour: 1200, memory_gib_hour: 0}
    strategy: {concession: boulware}
    sla: {max_refund_percent: 100, max_slash_percent: 100}
`

// bargainDoc is the quickstart bargaining with its buyer played by an
// agent, among the two static providers only.
func bargainDoc(t *testing.T, digest string) string {
	t.Helper()
	doc := quickstartDoc(t, digest)
	neg := "```yaml\nprotocol: auction\nreserve: 100\n```"
	if !strings.Contains(doc, neg) {
		t.Fatal("examples/quickstart.md changed: its negotiation block is not what the test expects")
	}
	return strings.Replace(doc, neg, "```yaml\nprotocol: alternating-offers\nbuyer: agent\nround_timeout: 2m\nrounds: 10\n```\n\n"+
		"## Placement\n\n```yaml\nallow_providers: [cheap, dear]\n```", 1)
}

// offersOf reads a bargain's offers from a job_status or job_counter
// answer.
func offersOf(t *testing.T, v any) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	list, _ := v.([]any)
	for _, o := range list {
		m := o.(map[string]any)
		out[m["provider"].(string)] = int64(m["price_minor"].(float64))
	}
	return out
}

// TestMCPAgentBargain: a scripted MCP client (the Go SDK's, over the
// real /mcp endpoint) plays the buyer in alternating offers against two
// providers: it reads their offers with job_status, counters below both
// reserves, sees them concede, accepts the cheaper one; the agreement,
// every round and price are in the negotiation attestation, and the job
// settles at the agreed price.
func TestMCPAgentBargain(t *testing.T) {
	m := newMCPStack(t, func(home string) {
		if err := os.WriteFile(filepath.Join(home, "providers.yaml"), []byte(bargainProviders), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	a := mcpSession(t, m.srv.URL+"/mcp", m.tokA)
	job, class, msg := mcpCall(t, a, "job_submit", map[string]any{"spec": bargainDoc(t, m.digest), "name": "bargain.md"})
	if class != "" {
		t.Fatalf("submit: %s: %s", class, msg)
	}
	id := job["job_id"].(string)

	// Round 0: the sellers' openings, in the job's status.
	var bargain map[string]any
	waitFor(t, 2*time.Minute, "job "+id+" bargaining", func() bool {
		st, _, _ := mcpCall(t, a, "job_status", map[string]any{"job_id": id})
		bargain, _ = st["bargain"].(map[string]any)
		return bargain != nil || st["status"] == "failed"
	})
	if bargain == nil {
		t.Fatalf("job %s failed before bargaining", id)
	}
	open := offersOf(t, bargain["offers"])
	// Asks: one core for 5 minutes at 6.00 and 12.00 USD an hour; the
	// openings are twice that.
	if len(open) != 2 || open["cheap"] != 100 || open["dear"] != 200 || bargain["round"].(float64) != 0 || bargain["budget_minor"].(float64) != 500 {
		t.Fatalf("round 0: %v", bargain)
	}
	// Another tenant cannot move in team-a's bargain.
	b := mcpSession(t, m.srv.URL+"/mcp", m.tokB)
	if _, class, _ := mcpCall(t, b, "job_counter", map[string]any{"job_id": id, "price_minor": 400}); class != "not_found" {
		t.Errorf("team-b countered team-a's job: %s", class)
	}
	// A price over the budget is refused by the job, which keeps waiting.
	if _, class, msg := mcpCall(t, a, "job_counter", map[string]any{"job_id": id, "price_minor": 501}); class != "usage" || !strings.Contains(msg, "outside (0, 500]") {
		t.Errorf("over budget: %s %q", class, msg)
	}

	// Round 1: 10 is below both reserves; both concede.
	rep, class, msg := mcpCall(t, a, "job_counter", map[string]any{"job_id": id, "price_minor": 10})
	if class != "" {
		t.Fatalf("counter: %s: %s", class, msg)
	}
	next := offersOf(t, rep["offers"])
	if rep["over"] == true || rep["round"].(float64) != 1 || next["cheap"] >= open["cheap"] || next["cheap"] < 50 || next["dear"] > open["dear"] {
		t.Fatalf("the sellers' response: %v", rep)
	}
	st, _, _ := mcpCall(t, a, "job_status", map[string]any{"job_id": id})
	if bargain, _ = st["bargain"].(map[string]any); bargain == nil || bargain["round"].(float64) != 1 || offersOf(t, bargain["offers"])["cheap"] != next["cheap"] {
		t.Fatalf("round 1 status: %v", st)
	}

	// Accept the cheaper offer.
	rep, class, msg = mcpCall(t, a, "job_counter", map[string]any{"job_id": id, "accept": "cheap"})
	if class != "" || rep["over"] != true || rep["agreed"] != "cheap" || int64(rep["price_minor"].(float64)) != next["cheap"] {
		t.Fatalf("accept: %s %s %v", class, msg, rep)
	}
	st = mcpSettled(t, a, id)

	// The negotiation attestation lists the agreement and every round.
	neg, res := mcpNegotiation(t, a, id)
	if neg.Provider != "cheap" || neg.Price != next["cheap"] || res.Protocol != market.ProtocolAlternating || len(res.Awards) != 1 {
		t.Fatalf("negotiation %+v", neg)
	}
	want := []market.Round{
		{Provider: "cheap", Round: 0, By: "provider", Price: open["cheap"]}, {Provider: "dear", Round: 0, By: "provider", Price: open["dear"]},
		{Provider: "cheap", Round: 1, By: "buyer", Price: 10}, {Provider: "dear", Round: 1, By: "buyer", Price: 10},
		{Provider: "cheap", Round: 2, By: "provider", Price: next["cheap"], Accepted: true}, {Provider: "dear", Round: 2, By: "provider", Price: next["dear"]},
	}
	if len(res.Rounds) != len(want) {
		t.Fatalf("rounds %+v", res.Rounds)
	}
	for i := range want {
		if !reflect.DeepEqual(res.Rounds[i], want[i]) {
			t.Errorf("round %d: %+v, want %+v", i, res.Rounds[i], want[i])
		}
	}
	if !strings.Contains(res.Awards[0].Explanation, "agreed with cheap in round 2") {
		t.Errorf("explanation %q", res.Awards[0].Explanation)
	}
	recordHistory(t, m.st.Client, id, "job_bargain")
	ledgerCheck(t, m.home)
}

// TestCLIAgentBargain: the same bargain played with `accord counter`
// (direct to Temporal): a counter-offer in major units, the offers in
// `accord status`, then the acceptance; the job settles at the price.
func TestCLIAgentBargain(t *testing.T) {
	m := newMCPStack(t, func(home string) {
		if err := os.WriteFile(filepath.Join(home, "providers.yaml"), []byte(bargainProviders), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	bin := accordBinary(t)
	accord := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append(args, "--home", m.home, "--temporal-address", m.st.Server.Address())...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	a := mcpSession(t, m.srv.URL+"/mcp", m.tokA)
	job, class, msg := mcpCall(t, a, "job_submit", map[string]any{"spec": bargainDoc(t, m.digest), "name": "bargain.md"})
	if class != "" {
		t.Fatalf("submit: %s: %s", class, msg)
	}
	id := job["job_id"].(string)
	waitFor(t, 2*time.Minute, "job "+id+" bargaining", func() bool {
		out, _ := accord("status", id)
		return strings.Contains(out, "bargain: round 0 of 5")
	})
	if out, err := accord("status", id); err != nil || !strings.Contains(out, "offer cheap") || !strings.Contains(out, "1.00 USD") {
		t.Fatalf("status: %v\n%s", err, out)
	}
	if out, err := accord("counter", id, "--price", "5.01", "--as", "buyer-bot"); err == nil || !strings.Contains(out, "outside (0, 500]") {
		t.Errorf("over budget: %v\n%s", err, out)
	}
	out, err := accord("counter", id, "--price", "0.10", "--as", "buyer-bot", "--json")
	if err != nil {
		t.Fatalf("counter: %v\n%s", err, out)
	}
	var rep workflows.CounterOutput
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &rep); err != nil || rep.Over || rep.Round != 1 || len(rep.Offers) != 2 {
		t.Fatalf("counter reply %q: %v", out, err)
	}
	cheap := rep.Offers[0]
	if cheap.Provider != "cheap" {
		t.Fatalf("offers %+v", rep.Offers)
	}
	if out, err := accord("counter", id, "--accept", "cheap", "--as", "buyer-bot"); err != nil || !strings.Contains(out, "agreed with cheap") {
		t.Fatalf("accept: %v\n%s", err, out)
	}
	mcpSettled(t, a, id)
	res, err := jobclient.Result(context.Background(), m.st.Client, id)
	if err != nil || res.Provider != "cheap" || res.Price != cheap.Price {
		t.Fatalf("result %+v: %v", res, err)
	}
}

// TestStackedOffersJob: a job negotiated by stacked alternating offers
// (negotiation.protocol: stacked-alternating-offers) between the buyer
// and two providers under one deadline runs end to end in the workflow:
// the agreement and every move are in the negotiation attestation, and
// the job settles with the provider it agreed with, at the agreed price.
func TestStackedOffersJob(t *testing.T) {
	m := newMCPStack(t, func(home string) {
		if err := os.WriteFile(filepath.Join(home, "providers.yaml"), []byte(bargainProviders), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	doc := strings.Replace(bargainDoc(t, m.digest), "protocol: alternating-offers\nbuyer: agent\nround_timeout: 2m\nrounds: 10",
		"protocol: stacked-alternating-offers\nrounds: 8", 1)
	a := mcpSession(t, m.srv.URL+"/mcp", m.tokA)
	job, class, msg := mcpCall(t, a, "job_submit", map[string]any{"spec": doc, "name": "stacked.md"})
	if class != "" {
		t.Fatalf("submit: %s: %s", class, msg)
	}
	id := job["job_id"].(string)
	st := mcpSettled(t, a, id)
	neg, res := mcpNegotiation(t, a, id)
	if res.Protocol != market.ProtocolStacked || len(res.Awards) != 1 || neg.Provider != res.Awards[0].Provider || neg.Price != res.Awards[0].Price {
		t.Fatalf("negotiation %+v, awards %+v", neg, res.Awards)
	}
	aw := res.Awards[0]
	// cheap asks half of dear's: the buyer allocates the job to it.
	if aw.Provider != "cheap" || aw.Price < aw.Ask || aw.Price > 500 || !strings.Contains(aw.Explanation, "stacked alternating offers") {
		t.Fatalf("award %+v", aw)
	}
	kinds := map[string]int{}
	for _, r := range res.Rounds {
		kinds[r.Kind]++
	}
	if kinds[market.MoveOffer] == 0 || kinds[market.MoveAccept] == 0 {
		t.Fatalf("moves %v in rounds %+v", kinds, res.Rounds)
	}
	t.Logf("agreed with %s at %d (ask %d) after %d moves %v: %s", aw.Provider, aw.Price, aw.Ask, len(res.Rounds), kinds, aw.Explanation)
	l := ledgerCheck(t, m.home)
	paid, err := l.Balance(context.Background(), settlement.ProviderAccount(aw.Provider), "USD")
	if err != nil || paid <= 0 || paid > int64(st["cost"].(float64)) {
		t.Errorf("%s was paid %d (%v) of the job's cost %v", aw.Provider, paid, err, st["cost"])
	}
}

// mcpSettled waits, over MCP, for job id to end and fails unless it
// settled; it returns the job's last status.
func mcpSettled(t *testing.T, a *sdk.ClientSession, id string) map[string]any {
	t.Helper()
	var st map[string]any
	waitFor(t, 4*time.Minute, "job "+id+" settled", func() bool {
		st, _, _ = mcpCall(t, a, "job_status", map[string]any{"job_id": id})
		return st["status"] == "settled" || st["status"] == "failed"
	})
	if st["status"] != "settled" {
		t.Fatalf("job %s: %v", id, st)
	}
	return st
}

// mcpNegotiation reads job id's receipt over MCP and returns its
// negotiation predicate and the market record it carries.
func mcpNegotiation(t *testing.T, a *sdk.ClientSession, id string) (predicate.Negotiation, market.Result) {
	t.Helper()
	got, class, msg := mcpCall(t, a, "receipt_get", map[string]any{"job_id": id})
	if class != "" {
		t.Fatalf("receipt: %s: %s", class, msg)
	}
	raw, _ := json.Marshal(got["receipt"])
	var rc provenance.Receipt
	if err := json.Unmarshal(raw, &rc); err != nil {
		t.Fatal(err)
	}
	var neg predicate.Negotiation
	stagePredicate(t, &rc, provenance.StageNegotiation, &neg)
	var res market.Result
	if err := json.Unmarshal(neg.Record, &res); err != nil {
		t.Fatalf("negotiation record: %v", err)
	}
	return neg, res
}
