package workflows

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement/sla"
)

func providerLiveAct(context.Context, ProviderLiveInput) (ProviderLiveOutput, error) { panic("mocked") }
func renegotiateAct(context.Context, RenegotiateInput) (RenegotiateOutput, error)    { panic("mocked") }
func reassignAct(context.Context, ReassignInput) (ReassignOutput, error)             { panic("mocked") }
func slashAct(context.Context, SlashInput) (SlashOutput, error)                      { panic("mocked") }

// disputes records the failover and spot-check activities of one test.
type disputes struct {
	mu          sync.Mutex
	live        []ProviderLiveInput
	renegotiate []RenegotiateInput
	reassign    []ReassignInput
	slash       []SlashInput
	runs        map[string][]string   // queue -> run IDs
	spotSigned  []predicate.Execution // spot-check runs signed (layout 9)
	refuseSign  string                // a provider whose SignStage of a spot run fails
	signed      []AttestInput         // every SignStage input
	// unserved reports a SignStage nobody picks up (layout 11): its
	// provider's queue is unserved.
	unserved func(in AttestInput) bool
}

// watchDisputes registers the layout-6 activities on h: Renegotiate awards
// the first of order not excluded, Reassign and SlashProvider succeed, and
// ProviderLive answers live.
func watchDisputes(h *harness, live func(string) bool, order ...string) *disputes {
	d := &disputes{runs: map[string][]string{}}
	ProviderLive.Register(h.env, providerLiveAct)
	Renegotiate.Register(h.env, renegotiateAct)
	Reassign.Register(h.env, reassignAct)
	SlashProvider.Register(h.env, slashAct)
	watchQueues(h)
	h.on(SignStage.Name).Return(func(_ context.Context, in AttestInput) (SignedStage, error) {
		d.mu.Lock()
		d.signed = append(d.signed, in)
		lost := d.unserved != nil && d.unserved(in)
		d.mu.Unlock()
		if lost {
			return SignedStage{}, temporal.NewTimeoutError(enums.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		var ex predicate.Execution
		if in.Stage == predicate.StageExecution {
			if err := json.Unmarshal(in.Predicate, &ex); err != nil {
				return SignedStage{}, err
			}
		}
		if ex.SpotRole == "" {
			return SignedStage{Envelope: []byte(`{"signed_by":"` + in.Provider + `","stage":"` + in.Stage + `"}`), Digest: "sha256:env", SignerPublicKey: "PEM"}, nil
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if ex.Provider != in.Provider || len(in.Results) != 1 || in.Previous == "" {
			return SignedStage{}, temporal.NewNonRetryableApplicationError("bad spot-run signing request", ErrTypeExecution, nil)
		}
		if in.Provider == d.refuseSign {
			return SignedStage{}, temporal.NewNonRetryableApplicationError("not run here", ErrTypeExecution, nil)
		}
		d.spotSigned = append(d.spotSigned, ex)
		return SignedStage{Envelope: []byte(`{"signed_by":"` + in.Provider + `"}`), Digest: "sha256:env", SignerPublicKey: "PEM"}, nil
	})
	h.on(ProviderLive.Name).Return(func(_ context.Context, in ProviderLiveInput) (ProviderLiveOutput, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.live = append(d.live, in)
		if live(in.Provider) {
			return ProviderLiveOutput{Live: true}, nil
		}
		return ProviderLiveOutput{Reason: "heartbeat stopped"}, nil
	})
	h.on(Renegotiate.Name).Return(func(_ context.Context, in RenegotiateInput) (RenegotiateOutput, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.renegotiate = append(d.renegotiate, in)
		for _, p := range order {
			if _, out := in.Exclude[p]; !out {
				return RenegotiateOutput{Award: awardTo(p), Reputation: 0.8}, nil
			}
		}
		return RenegotiateOutput{}, temporal.NewNonRetryableApplicationError("no offers", ErrTypeNoOffers, nil)
	})
	h.on(Reassign.Name).Return(func(_ context.Context, in ReassignInput) (ReassignOutput, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.reassign = append(d.reassign, in)
		return ReassignOutput{}, nil
	})
	h.on(SlashProvider.Name).Return(func(_ context.Context, in SlashInput) (SlashOutput, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.slash = append(d.slash, in)
		return SlashOutput{Slashed: in.Terms.Stake * int64(in.Terms.SlashPercent) / 100, Currency: "USD", Reputation: 0.8}, nil
	})
	return d
}

// awardTo is an award to provider agent p, with a stake at risk.
func awardTo(p string) NegotiateOutput {
	return NegotiateOutput{Provider: p, Pool: p, Runtime: "containerd", Price: 400, Currency: "USD",
		Queue: ExecQueue(p), SLA: &sla.Terms{SlashPercent: 50, Stake: 200}}
}

// runsOn answers RunTask per queue: out(queue) is the outputs digest, or ""
// for a queue nobody serves (a ScheduleToStart timeout).
func (d *disputes) runsOn(h *harness, out func(queue string) string) {
	h.on(RunTask.Name).Return(func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
		d.mu.Lock()
		d.runs[in.Award.Queue] = append(d.runs[in.Award.Queue], in.RunID)
		d.mu.Unlock()
		digest := out(in.Award.Queue)
		if digest == "" {
			return RunTaskOutput{}, temporal.NewTimeoutError(enums.TIMEOUT_TYPE_SCHEDULE_TO_START, nil)
		}
		return RunTaskOutput{State: "exited", Outputs: []OutputArtifact{{Path: "out.json", SHA256: digest}},
			Usage: Usage{WallSeconds: 1}}, nil
	})
}

func (h *harness) predicate(stage string, into any) {
	h.t.Helper()
	for _, a := range h.attests {
		if a.Stage == stage {
			if err := json.Unmarshal(a.Predicate, into); err != nil {
				h.t.Fatal(err)
			}
			return
		}
	}
	h.t.Fatalf("no %s attestation", stage)
}

// The awarded agent never picks its tasks up and its heartbeat stopped:
// the job renegotiates without it, moves the escrow to the new provider,
// runs every task there under new run IDs, and settles with it; the
// execution attestation (signed on the new provider's queue) names the
// failover.
func TestJobFailover(t *testing.T) {
	h := newHarness(t, dagPlan())
	d := watchDisputes(h, func(p string) bool { return p != "gpu-a" }, "gpu-a", "gpu-b")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-a") {
			return ""
		}
		return "cc"
	})
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "gpu-b" {
		t.Fatalf("status %s provider %s: %s", res.Status, res.Provider, res.Error)
	}
	if len(d.live) != 1 || d.live[0].Provider != "gpu-a" {
		t.Errorf("liveness checks %+v, want one of gpu-a", d.live)
	}
	if len(d.renegotiate) != 1 || d.renegotiate[0].Lost != "gpu-a" || d.renegotiate[0].N != 1 ||
		!strings.Contains(d.renegotiate[0].Exclude["gpu-a"], "lost") {
		t.Errorf("renegotiation %+v", d.renegotiate)
	}
	if len(d.reassign) != 1 || d.reassign[0] != (ReassignInput{JobID: "job-1", From: "gpu-a", To: "gpu-b", N: 1, Reason: d.reassign[0].Reason}) {
		t.Errorf("reassign %+v", d.reassign)
	}
	if len(h.settled) != 1 || h.settled[0].Award.Provider != "gpu-b" {
		t.Fatalf("settled %+v, want with gpu-b", h.settled)
	}
	// Only prepare was started on gpu-a; every task ran on gpu-b under a
	// run ID that gpu-a never had.
	if got := d.runs[ExecQueue("gpu-a")]; len(got) != 1 || got[0] != "job-1.prepare.1" {
		t.Errorf("runs on gpu-a %v", got)
	}
	onB := d.runs[ExecQueue("gpu-b")]
	if len(onB) != 4 || onB[0] != "job-1.prepare.2" {
		t.Errorf("runs on gpu-b %v, want all four tasks, prepare as run 2", onB)
	}
	for _, c := range res.Compensated {
		if strings.HasPrefix(c, "stop:") {
			t.Errorf("a stop was sent to the lost provider: %v", res.Compensated)
		}
	}
	if len(res.Failovers) != 1 || res.Failovers[0].Lost != "gpu-a" || res.Failovers[0].Provider != "gpu-b" ||
		res.Failovers[0].RunID != "job-1.prepare.1" || res.Failovers[0].At.IsZero() || res.Failovers[0].Reputation != 0.8 {
		t.Errorf("failovers %+v", res.Failovers)
	}
	var ex predicate.Execution
	h.predicate(predicate.StageExecution, &ex)
	if ex.Provider != "gpu-b" || len(ex.Failovers) != 1 || ex.Failovers[0].Lost != "gpu-a" ||
		!strings.Contains(ex.Failovers[0].Reason, "heartbeat stopped") {
		t.Errorf("execution predicate %+v", ex)
	}
}

// An agent that heartbeats is waited for (the same run, not a new one);
// one that never serves its queue is abandoned after maxLiveWaits.
func TestJobProviderLiveIsWaitedFor(t *testing.T) {
	h := newHarness(t, PlanSummary{Name: "one", Tenant: "acme", Currency: "USD", MaxCost: 1000,
		Tasks: []PlanTask{{Name: "train", Attempts: 1}}})
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	slow := 0
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-a") && slow < 2 {
			slow++
			return ""
		}
		return "cc"
	})
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "gpu-a" || len(res.Failovers) != 0 {
		t.Fatalf("res %+v", res)
	}
	if got := d.runs[ExecQueue("gpu-a")]; len(got) != 3 || got[0] != got[2] {
		t.Errorf("runs %v, want one run retried", got)
	}
	if len(d.renegotiate) != 0 || len(d.reassign) != 0 {
		t.Errorf("a live provider was abandoned: %+v %+v", d.renegotiate, d.reassign)
	}

	h = newHarness(t, PlanSummary{Name: "one", Tenant: "acme", Currency: "USD", MaxCost: 1000,
		Tasks: []PlanTask{{Name: "train", Attempts: 1}}})
	d = watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-a") {
			return ""
		}
		return "cc"
	})
	res = h.run()
	if res.Status != StatusSettled || res.Provider != "gpu-b" || len(d.live) != maxLiveWaits {
		t.Fatalf("res %s %s after %d liveness checks", res.Status, res.Provider, len(d.live))
	}
	if !strings.Contains(res.Failovers[0].Reason, "heartbeating") {
		t.Errorf("reason %q", res.Failovers[0].Reason)
	}
}

// With nobody left to fail over to the job fails as no_offers and the
// escrow is refunded: the lost provider is paid nothing.
func TestJobFailoverNoProviderLeft(t *testing.T) {
	h := newHarness(t, dagPlan())
	d := watchDisputes(h, func(string) bool { return false }, "gpu-a")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(string) string { return "" })
	res := h.run()
	if res.Status != StatusFailed || res.Class != ClassNoOffers {
		t.Fatalf("res %s %s: %s", res.Status, res.Class, res.Error)
	}
	if len(h.settled) != 0 || len(h.released) != 1 || res.Paid != 0 {
		t.Errorf("settled %v released %v paid %d", h.settled, h.released, res.Paid)
	}
	if len(d.reassign) != 0 {
		t.Errorf("reassigned with no provider: %+v", d.reassign)
	}
}

func spotPlan() PlanSummary {
	return PlanSummary{Name: "spot", Tenant: "acme", Currency: "USD", MaxCost: 1000, SpotCheck: 1,
		Tasks: []PlanTask{{Name: "train", Attempts: 1}}}
}

// A spot check whose outputs agree: one more run on another provider, no
// dispute, the job settles with its own provider.
func TestJobSpotCheckAgrees(t *testing.T) {
	h := newHarness(t, spotPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b", "gpu-c")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(string) string { return "cc" })
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "gpu-a" {
		t.Fatalf("res %s %s %s", res.Status, res.Provider, res.Error)
	}
	sc := res.SpotCheck
	if sc == nil || sc.Verdict != predicate.SpotAgree || len(sc.Runs) != 2 || sc.Runs[1].Provider != "gpu-b" ||
		sc.Runs[1].RunIDs["train"] != "job-1.train.2" || sc.Paid != "gpu-a" || sc.Minority != "" {
		t.Fatalf("spot check %+v", sc)
	}
	if len(d.slash) != 0 || len(d.reassign) != 0 || h.settled[0].Award.Provider != "gpu-a" {
		t.Errorf("slash %v reassign %v settled %+v", d.slash, d.reassign, h.settled)
	}
	var ver predicate.Verification
	h.predicate(predicate.StageVerification, &ver)
	if ver.SpotCheck == nil || ver.SpotCheck.Verdict != predicate.SpotAgree {
		t.Errorf("verification predicate %+v", ver)
	}
}

// The job's own provider cheats: the checker disagrees, the third run
// sides with the checker; the cheat is slashed under its terms, paid
// nothing, and the job settles with the checker on the checker's results.
func TestJobSpotCheckReversed(t *testing.T) {
	h := newHarness(t, spotPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b", "gpu-c")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-a") {
			return "fabricated"
		}
		return "cc"
	})
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "gpu-b" {
		t.Fatalf("res %s %s %s", res.Status, res.Provider, res.Error)
	}
	sc := res.SpotCheck
	if sc == nil || sc.Verdict != predicate.SpotReversed || len(sc.Runs) != 3 || sc.Minority != "gpu-a" ||
		sc.Paid != "gpu-b" || sc.Slashed != 100 || sc.Runs[2].Provider != "gpu-c" || sc.Runs[2].Role != predicate.SpotTiebreak {
		t.Fatalf("spot check %+v", sc)
	}
	if len(d.slash) != 1 || d.slash[0].Provider != "gpu-a" || d.slash[0].Terms.Stake != 200 {
		t.Errorf("slash %+v", d.slash)
	}
	if len(d.reassign) != 1 || d.reassign[0].From != "gpu-a" || d.reassign[0].To != "gpu-b" {
		t.Errorf("reassign %+v", d.reassign)
	}
	if len(h.settled) != 1 || h.settled[0].Award.Provider != "gpu-b" {
		t.Errorf("settled %+v", h.settled)
	}
	// Each checker signed its own run (layout 9), on its own queue.
	if len(d.spotSigned) != 2 || d.spotSigned[0].Provider != "gpu-b" || d.spotSigned[0].SpotRole != predicate.SpotCheckRun ||
		d.spotSigned[1].Provider != "gpu-c" || d.spotSigned[1].SpotRole != predicate.SpotTiebreak {
		t.Errorf("spot runs signed %+v", d.spotSigned)
	}
	if string(sc.Runs[0].Signed) != "" || string(sc.Runs[1].Signed) != `{"signed_by":"gpu-b"}` || string(sc.Runs[2].Signed) != `{"signed_by":"gpu-c"}` {
		t.Errorf("signed runs: primary %s, check %s, tiebreak %s", sc.Runs[0].Signed, sc.Runs[1].Signed, sc.Runs[2].Signed)
	}
	// The checks excluded the providers that already ran the job.
	if len(d.renegotiate) != 2 || len(d.renegotiate[1].Exclude) != 2 || d.renegotiate[0].Lost != "" {
		t.Errorf("renegotiations %+v", d.renegotiate)
	}
	// Verification attests the checker's sealed results, not the cheat's.
	var ver *AttestInput
	for i := range h.attests {
		if h.attests[i].Stage == predicate.StageVerification {
			ver = &h.attests[i]
		}
	}
	if ver == nil || len(ver.Results) != 1 || ver.Results[0] != h.sealedRef(1) {
		t.Errorf("verification results %+v, want the check run's %s", ver, h.sealedRef(1))
	}
}

// A checker that will not sign its run has no say: the run counts as
// failed, the check is undecided and nobody is slashed.
func TestJobSpotCheckUnsignedRun(t *testing.T) {
	h := newHarness(t, spotPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b", "gpu-c")
	d.refuseSign = "gpu-b"
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-b") {
			return "other"
		}
		return "cc"
	})
	res := h.run()
	if res.Status != StatusSettled || res.Provider != "gpu-a" {
		t.Fatalf("res %s %s %s", res.Status, res.Provider, res.Error)
	}
	sc := res.SpotCheck
	if sc == nil || sc.Verdict != predicate.SpotNoQuorum || len(sc.Runs) != 2 ||
		!strings.Contains(sc.Runs[1].Failed, "did not sign its run") || len(sc.Runs[1].Signed) != 0 {
		t.Fatalf("spot check %+v", sc)
	}
	if len(d.slash) != 0 || len(d.reassign) != 0 {
		t.Errorf("slash %v reassign %v", d.slash, d.reassign)
	}
}

// A checker that cheats is outvoted: it is slashed, the job's provider is
// paid.
func TestJobSpotCheckUpheld(t *testing.T) {
	h := newHarness(t, spotPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b", "gpu-c")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-b") {
			return "fabricated"
		}
		return "cc"
	})
	res := h.run()
	sc := res.SpotCheck
	if res.Status != StatusSettled || res.Provider != "gpu-a" || sc == nil || sc.Verdict != predicate.SpotUpheld ||
		sc.Minority != "gpu-b" || sc.Paid != "gpu-a" {
		t.Fatalf("res %s %s spot %+v", res.Status, res.Provider, sc)
	}
	if len(d.slash) != 1 || d.slash[0].Provider != "gpu-b" || len(d.reassign) != 0 || h.settled[0].Award.Provider != "gpu-a" {
		t.Errorf("slash %+v reassign %+v settled %+v", d.slash, d.reassign, h.settled)
	}
}

// With no second provider the check is undecided: nobody is slashed and
// the job settles as it ran.
func TestJobSpotCheckNoChecker(t *testing.T) {
	h := newHarness(t, spotPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(string) string { return "cc" })
	res := h.run()
	if res.Status != StatusSettled || res.SpotCheck == nil || res.SpotCheck.Verdict != predicate.SpotNoQuorum ||
		!strings.Contains(res.SpotCheck.Runs[1].Failed, "no provider") || len(d.slash) != 0 {
		t.Fatalf("res %s spot %+v slash %v", res.Status, res.SpotCheck, d.slash)
	}
}

// The draw depends on the job ID only, and its rate is the probability.
func TestDrawSpotCheck(t *testing.T) {
	if drawSpotCheck("job-1", 0) || !drawSpotCheck("job-1", 1) || drawSpotCheck("job-1", math.NaN()) {
		t.Fatal("bounds")
	}
	n, hits := 20000, 0
	for i := range n {
		id := fmt.Sprintf("job-%d", i)
		a := drawSpotCheck(id, 0.1)
		if a != drawSpotCheck(id, 0.1) {
			t.Fatalf("%s drew differently twice", id)
		}
		if a {
			hits++
		}
	}
	if rate := float64(hits) / float64(n); rate < 0.09 || rate > 0.11 {
		t.Errorf("rate %.3f for p 0.1", rate)
	}
}

// A job without spot_check runs exactly as layout 5 did: no check.
func TestJobNoSpotCheck(t *testing.T) {
	h := newHarness(t, dagPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-a", "gpu-b")
	h.on(Negotiate.Name).Return(awardTo("gpu-a"), nil)
	d.runsOn(h, func(string) string { return "cc" })
	res := h.run()
	if res.Status != StatusSettled || res.SpotCheck != nil || len(d.renegotiate) != 0 {
		t.Fatalf("res %s spot %+v renegotiations %d", res.Status, res.SpotCheck, len(d.renegotiate))
	}
}

// sealedRef is the ref the harness's SealResults mock gave its i-th call
// (from 0).
func (h *harness) sealedRef(i int) string { return fmt.Sprintf("sha256:results%d", i+1) }
