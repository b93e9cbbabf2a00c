package sweep

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement"
)

// End to end on the real ledger: a split job whose workflow is gone is
// settled per part, each provider paid for its own part less the fee, the
// rest refunded; quota consumed; the settlement attested with the parts
// in its record; a second sweep does nothing.
func TestSplitSweptOnLedger(t *testing.T) {
	e := newSplitEnv(t)
	e.placeSplit("job-1")
	e.executeSplit("job-1", nil, e.honest()...)
	e.states.states["job-1"] = NotFound
	r := e.sweep(false)
	if r.Settled != 1 || len(r.Actions) != 1 {
		t.Fatalf("report = %+v, want one settle", r)
	}
	// gpu-a: 1000 + 3 h × 50 = 1150; gpu-b: 600 + 0.5 h × 100 = 650;
	// 1800 of 1920 held, 10 % fee on each.
	if a := r.Actions[0]; a.Paid != 1800 || a.Refunded != 120 {
		t.Fatalf("action = %+v, want 1800 paid, 120 refunded", a)
	}
	if a, b, f, ten := e.balance("provider:gpu-a"), e.balance("provider:gpu-b"), e.balance("platform:fee"), e.balance("tenant:acme"); a != 1035 || b != 585 || f != 180 || ten != 10_000-1800 {
		t.Fatalf("gpu-a %d, gpu-b %d, fee %d, tenant %d; want 1035, 585, 180, 8200", a, b, f, ten)
	}
	if e.quota.consumed["job-1"] != 1800 {
		t.Fatalf("quota consumed = %v, want 1800", e.quota.consumed)
	}
	p, _ := e.settlementOf("job-1")
	var rec settlement.Settlement
	if err := json.Unmarshal(p.Record, &rec); err != nil {
		t.Fatal(err)
	}
	if p.Paid != 1800 || p.Usage != nil || len(rec.Parts) != 2 || rec.Parts[0].Provider != "gpu-a" || rec.Parts[0].ProviderPay != 1035 ||
		rec.Parts[1].Provider != "gpu-b" || rec.Parts[1].ProviderPay != 585 {
		t.Fatalf("settlement predicate %+v, record parts %+v", p, rec.Parts)
	}
	// The swept receipt audits with the parties' keys: every part's
	// signature and statement, the parts' settlement amounts and usage;
	// only the stage the workflow never reached is missing.
	e.checkSweptAudit("job-1")
	if r := e.sweep(false); len(r.Actions) != 0 {
		t.Fatalf("second sweep = %+v, want nothing", r)
	}
	e.checkLedger()
}

// splitAudit verifies the job's receipt with the operator's (legacy stage)
// key, each provider's key for its own scope and the log's key, and
// returns its problems.
func (e *splitEnv) splitAudit(job string) []provenance.Problem {
	e.t.Helper()
	rc, err := provenance.BuildReceipt(e.ctx, job, e.store, e.lg)
	if err != nil {
		e.t.Fatal(err)
	}
	logPEM, err := e.lg.PublicKey(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	ts := provenance.NewTrustStore()
	add := func(pem []byte, name, scope string) {
		if _, err := ts.Add(pem, name, scope); err != nil {
			e.t.Fatal(err)
		}
	}
	add(e.key.PublicPEM(), "operator", provenance.ScopeStage)
	add(logPEM, "log", provenance.ScopeLog)
	for p, k := range e.keys {
		add(k.PublicPEM(), "agent "+p, provenance.ProviderScope(p))
	}
	rep, _ := provenance.Verify(e.ctx, rc, ts, provenance.VerifyOptions{})
	return rep.Problems
}

// checkSweptAudit fails the test unless the swept job's receipt audits
// with one problem: the verification stage its workflow never reached.
func (e *splitEnv) checkSweptAudit(job string) {
	e.t.Helper()
	probs := e.splitAudit(job)
	if len(probs) != 1 || probs[0].Check != "chain" || probs[0].Stage != provenance.StageSettlement ||
		!strings.Contains(probs[0].Message, "stage verification missing") {
		e.t.Fatalf("audit problems %v, want only the missing verification stage", probs)
	}
}

// A part that failed over is paid to its replacement on the ledger at the
// renegotiated price; the lost provider gets nothing; the receipt audits.
func TestSplitPartFailoverOnLedger(t *testing.T) {
	e := newSplitEnv(t)
	e.placeSplit("job-1")
	ps := e.honest()
	ps[1].provider, ps[1].signer = "gpu-c", e.keys["gpu-c"]
	e.executeSplit("job-1", []predicate.Failover{{Lost: "gpu-b", Provider: "gpu-c", Tasks: []string{"eval"}, Price: 700, Currency: "USD",
		Reason: "heartbeat lost", At: time.Now().Add(-2 * time.Hour)}}, ps...)
	r := e.sweep(false)
	// gpu-a: 1150 as before; gpu-c: 700 + 0.5 h × 50 = 725; 1875 of 1920.
	if r.Settled != 1 || r.Actions[0].Paid != 1875 || r.Actions[0].Refunded != 45 {
		t.Fatalf("report = %+v, want 1875 paid, 45 refunded", r)
	}
	// gpu-c: 725 less its 10 % fee (72, rounded down).
	if a, b, c := e.balance("provider:gpu-a"), e.balance("provider:gpu-b"), e.balance("provider:gpu-c"); a != 1035 || b != 0 || c != 653 {
		t.Fatalf("gpu-a %d, gpu-b %d, gpu-c %d; want 1035, 0, 653", a, b, c)
	}
	e.checkSweptAudit("job-1")
	e.checkLedger()
}
