package provenance_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
)

// deploymentEvents is a consistent deployment: a canary failing its gate
// and rolled back, a breached SLA window in period 0, two periods settled
// (3600 per replica-hour, 5 % fee), then stopped.
func deploymentEvents() []predicate.Deployment {
	terms := predicate.SLATerms{AvailabilityBP: 9900, Window: 4e9, RefundPercent: 50, SlashPercent: 10, Stake: 1000}
	gates := predicate.Gates{MinRequests: 20, MinSuccessBP: 9900}
	return []predicate.Deployment{
		{Event: predicate.DeployStart, Release: 1, Version: "1", Start: &predicate.DeploymentStart{Tenant: "demo", Currency: "USD",
			Endpoint: "sentiment", Address: "127.0.0.1:9000", Replicas: 2, ReplicaHour: 3600, Period: 60e9, SLA: terms}},
		{Event: predicate.DeployHold, Hold: &predicate.PeriodHold{Period: 0, Job: "dep1-p0", Price: 120, MarginBP: 5000, Held: 180}},
		{Event: predicate.DeployCanary, Release: 2, Canary: &predicate.CanaryStart{Percent: 20, Duration: 3e9, Gates: gates}},
		{Event: predicate.DeployGate, Release: 2, Gate: &predicate.GateVerdict{Measured: predicate.Measured{Requests: 50, Errors: 50, SuccessBP: 0}, Gates: gates}},
		{Event: predicate.DeployRollback, Release: 2, Reason: "gate"},
		{Event: predicate.DeployWindow, Window: &predicate.SLAWindow{N: 0, Period: 0, Measured: predicate.Measured{Requests: 200, Errors: 50, SuccessBP: 7500},
			Terms: terms, Breached: true, Reasons: []string{"availability"}}},
		{Event: predicate.DeployHold, Hold: &predicate.PeriodHold{Period: 1, Job: "dep1-p1", Price: 120, MarginBP: 5000, Held: 180}},
		{Event: predicate.DeploySettle, Settle: &predicate.PeriodSettlement{Period: 0, Job: "dep1-p0", ReplicaMillis: 120_000, ReplicaHour: 3600,
			Breached: true, RefundPercent: 50, SlashPercent: 10, Stake: 1000,
			Held: 180, Charge: 120, SLARefund: 60, ProviderPay: 57, PlatformFee: 3, Refund: 120, Slashed: 100}},
		{Event: predicate.DeploySettle, Settle: &predicate.PeriodSettlement{Period: 1, Job: "dep1-p1", ReplicaMillis: 60_000, ReplicaHour: 3600,
			Held: 180, Charge: 60, ProviderPay: 57, PlatformFee: 3, Refund: 120}},
		{Event: predicate.DeployStop, Reason: "over", Stop: &predicate.DeploymentStop{Spent: 120, Refunded: 60, Slashed: 100, Periods: 2}},
	}
}

// attestDeployment signs and logs events as deployment id's chain.
func (e *env) attestDeployment(t *testing.T, id string, events []predicate.Deployment) {
	t.Helper()
	for i, ev := range events {
		ev.Header = predicate.Header{JobID: id}
		ev.Seq = i + 1
		if ev.Hold != nil {
			h := *ev.Hold
			h.Job = strings.Replace(h.Job, "dep1", id, 1)
			ev.Hold = &h
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.rec.Attest(context.Background(), provenance.AttestRequest{JobID: id, Stage: provenance.DeploymentStage(i + 1), Predicate: b}); err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
	}
}

func TestDeploymentReceiptVerifies(t *testing.T) {
	e := newEnv(t)
	e.attestDeployment(t, "dep1", deploymentEvents())
	r := e.receipt(t, "dep1")
	if len(r.Attestations) != 10 || r.Attestations[9].Stage != "deployment.000010" {
		t.Fatalf("receipt stages: %d", len(r.Attestations))
	}
	rep, err := provenance.Verify(context.Background(), r, e.trust, provenance.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK || !rep.Complete || len(rep.Stages) != 10 || rep.Stages[3].Party != provenance.ScopeStage {
		t.Fatalf("report %+v", rep)
	}
	// Reloaded from the file the CLI writes, it verifies the same.
	path := t.TempDir() + "/receipt.json"
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	r2, err := provenance.ReadReceipt(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provenance.Verify(context.Background(), r2, e.trust, provenance.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestDeploymentReceiptProblems(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(ev []predicate.Deployment) []predicate.Deployment
		opts   provenance.VerifyOptions
		want   string // stage: check
	}{
		{"gate passed on failing figures", func(ev []predicate.Deployment) []predicate.Deployment {
			ev[3].Gate.Passed = true
			return ev
		}, provenance.VerifyOptions{}, "deployment.000004: verdict"},
		{"promotion without a passed gate", func(ev []predicate.Deployment) []predicate.Deployment {
			ev[4] = predicate.Deployment{Event: predicate.DeployPromote, Release: 2}
			return ev
		}, provenance.VerifyOptions{}, "deployment.000005: chain"},
		{"charge above the metered time", func(ev []predicate.Deployment) []predicate.Deployment {
			s := *ev[8].Settle
			s.Charge, s.ProviderPay, s.Refund = 70, 67, 110
			ev[8].Settle = &s
			return ev
		}, provenance.VerifyOptions{}, "deployment.000009: amounts"},
		{"breach hidden from the settlement", func(ev []predicate.Deployment) []predicate.Deployment {
			s := *ev[7].Settle
			s.Breached, s.SLARefund, s.ProviderPay, s.PlatformFee, s.Refund, s.Slashed = false, 0, 114, 6, 60, 0
			ev[7].Settle = &s
			return ev
		}, provenance.VerifyOptions{}, "deployment.000008: amounts"},
		{"window verdict against its figures", func(ev []predicate.Deployment) []predicate.Deployment {
			w := *ev[5].Window
			w.Breached = false
			ev[5].Window = &w
			return ev
		}, provenance.VerifyOptions{}, "deployment.000006: verdict"},
		{"no stop event", func(ev []predicate.Deployment) []predicate.Deployment {
			return ev[:9]
		}, provenance.VerifyOptions{}, "deployment.000010: chain"},
		{"stop totals", func(ev []predicate.Deployment) []predicate.Deployment {
			ev[9].Stop.Spent = 60
			return ev
		}, provenance.VerifyOptions{}, "deployment.000010: amounts"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.attestDeployment(t, "dep1", c.mutate(deploymentEvents()))
			rep, err := provenance.Verify(context.Background(), e.receipt(t, "dep1"), e.trust, c.opts)
			if err == nil || rep.OK {
				t.Fatalf("verified: %+v", rep)
			}
			if !strings.Contains(err.Error(), "stage "+c.want) {
				t.Fatalf("want a problem %q, got %v", c.want, err)
			}
		})
	}
}

func TestDeploymentReceiptIncompleteAndGaps(t *testing.T) {
	e := newEnv(t)
	e.attestDeployment(t, "dep1", deploymentEvents()[:6])
	r := e.receipt(t, "dep1")
	rep, err := provenance.Verify(context.Background(), r, e.trust, provenance.VerifyOptions{AllowIncomplete: true})
	if err != nil || rep.Complete {
		t.Fatalf("running deployment: %v, complete %t", err, rep.Complete)
	}
	// An event dropped from the receipt breaks the chain.
	gap := clone(t, r)
	gap.Attestations = append(gap.Attestations[:2], gap.Attestations[3:]...)
	_, err = provenance.Verify(context.Background(), gap, e.trust, provenance.VerifyOptions{AllowIncomplete: true})
	if err == nil || !strings.Contains(err.Error(), "stage deployment.000004: chain") {
		t.Fatalf("gap: %v", err)
	}
	// The chain cannot start anywhere but at 1 with the start event.
	if _, err := e.rec.Attest(context.Background(), provenance.AttestRequest{JobID: "dep9", Stage: provenance.DeploymentStage(2),
		Predicate: json.RawMessage(`{"event":"hold"}`)}); err == nil {
		t.Fatal("event 2 without event 1 was attested")
	}
}

// A deployment cannot write into a job's chain, nor a job into a
// deployment's: the names share the store.
func TestDeploymentAndJobNamesDoNotMix(t *testing.T) {
	e := newEnv(t)
	e.attestDeployment(t, "dep1", deploymentEvents()[:1])
	p := stagePredicates("dep1")[0]
	pb, _ := json.Marshal(p.pred)
	if _, err := e.rec.Attest(context.Background(), provenance.AttestRequest{JobID: "dep1", Stage: p.stage, Subjects: p.subjects, Predicate: pb}); err == nil {
		t.Fatal("a job stage was attested under a deployment's name")
	}
	e.recordJob(t, "job-1", nil)
	ev := deploymentEvents()[0]
	ev.Header = predicate.Header{JobID: "job-1"}
	ev.Seq = 1
	b, _ := json.Marshal(ev)
	if _, err := e.rec.Attest(context.Background(), provenance.AttestRequest{JobID: "job-1", Stage: provenance.DeploymentStage(1), Predicate: b}); err == nil {
		t.Fatal("a deployment event was attested under a job's ID")
	}
	if r := e.receipt(t, "job-1"); r.Attestations[0].Stage != provenance.StageSpec {
		t.Fatalf("job receipt starts at %s", r.Attestations[0].Stage)
	}
}
