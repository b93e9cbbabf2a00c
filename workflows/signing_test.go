package workflows

import (
	"slices"
	"strings"
	"testing"

	"github.com/accordmesh/accord/provenance/predicate"
)

// runLostSigner runs dagPlan awarded as award, with lost's agent gone
// (its heartbeat stopped) and its SignStage of stage never picked up;
// renegotiations award the first of order not excluded.
func runLostSigner(t *testing.T, award NegotiateOutput, stage, lost string, order ...string) (*harness, *disputes, JobResult) {
	t.Helper()
	h := newHarness(t, dagPlan())
	d := watchDisputes(h, func(p string) bool { return p != lost }, order...)
	d.unserved = func(in AttestInput) bool { return in.Stage == stage && in.Provider == lost }
	h.on(Negotiate.Name).Return(award, nil)
	d.runsOn(h, func(string) string { return "cc" })
	return h, d, h.run()
}

// An awarded agent lost before it accepts the placement is failed over
// before anything runs: the replacement accepts a placement on its own
// pool that names the failover (with the terms the replacement agreed
// to), runs every task and is paid; the lost provider runs nothing.
func TestJobPlacementSignerLost(t *testing.T) {
	h, d, res := runLostSigner(t, awardTo("gpu-a"), predicate.StagePlacement, "gpu-a", "gpu-a", "gpu-b")
	if res.Status != StatusSettled || res.Provider != "gpu-b" {
		t.Fatalf("status %s provider %s: %s", res.Status, res.Provider, res.Error)
	}
	if len(d.renegotiate) != 1 || d.renegotiate[0].Lost != "gpu-a" {
		t.Errorf("renegotiations %+v, want one without gpu-a", d.renegotiate)
	}
	if len(d.reassign) != 1 || d.reassign[0].From != "gpu-a" || d.reassign[0].To != "gpu-b" {
		t.Errorf("reassign %+v", d.reassign)
	}
	if got := d.runs[ExecQueue("gpu-a")]; len(got) != 0 {
		t.Errorf("runs on the lost provider: %v", got)
	}
	if got := d.runs[ExecQueue("gpu-b")]; len(got) != 4 {
		t.Errorf("runs on gpu-b %v, want the four tasks", got)
	}
	var pl predicate.Placement
	h.predicate(predicate.StagePlacement, &pl)
	if pl.Provider != "gpu-b" || pl.Pool != "gpu-b" || pl.Node != "gpu-b" || pl.Reservation != "job-1@gpu-b" ||
		len(pl.Failovers) != 1 || pl.Failovers[0].Lost != "gpu-a" || pl.Failovers[0].Provider != "gpu-b" || pl.Failovers[0].RunID != "" ||
		pl.Failovers[0].SLA == nil || *pl.Failovers[0].SLA != *awardTo("gpu-b").SLA || pl.At.IsZero() {
		t.Errorf("placement predicate %+v", pl)
	}
	for _, a := range h.attests {
		if a.Stage == predicate.StagePlacement && (a.Signed == nil || a.Provider != "gpu-b" || !strings.Contains(string(a.Signed.Envelope), `"signed_by":"gpu-b"`)) {
			t.Errorf("placement logged as %+v, want gpu-b's envelope", a)
		}
	}
	var ex predicate.Execution
	h.predicate(predicate.StageExecution, &ex)
	if ex.Provider != "gpu-b" || len(ex.Failovers) != 1 || !strings.Contains(ex.Failovers[0].Reason, "heartbeat stopped") {
		t.Errorf("execution predicate %+v", ex)
	}
	if len(h.settled) != 1 || h.settled[0].Award.Provider != "gpu-b" {
		t.Errorf("settled %+v, want with gpu-b", h.settled)
	}
	if len(res.Failovers) != 1 || !strings.Contains(res.Error+res.Failovers[0].Reason, "not served") {
		t.Errorf("failovers %+v", res.Failovers)
	}
}

// An agent lost after its tasks ran but before it signed their execution
// is failed over: every task runs again on the replacement, which signs;
// the work counts once, with the replacement.
func TestJobExecutionSignerLost(t *testing.T) {
	h, d, res := runLostSigner(t, awardTo("gpu-a"), predicate.StageExecution, "gpu-a", "gpu-a", "gpu-b")
	if res.Status != StatusSettled || res.Provider != "gpu-b" {
		t.Fatalf("status %s provider %s: %s", res.Status, res.Provider, res.Error)
	}
	onA, onB := d.runs[ExecQueue("gpu-a")], d.runs[ExecQueue("gpu-b")]
	if len(onA) != 4 || len(onB) != 4 || onB[0] != "job-1.prepare.2" {
		t.Errorf("runs on gpu-a %v and gpu-b %v, want the four tasks on each, run 2 on gpu-b", onA, onB)
	}
	var ex predicate.Execution
	h.predicate(predicate.StageExecution, &ex)
	if ex.Provider != "gpu-b" || len(ex.Failovers) != 1 || ex.Failovers[0].Lost != "gpu-a" {
		t.Errorf("execution predicate %+v", ex)
	}
	var pl predicate.Placement
	h.predicate(predicate.StagePlacement, &pl)
	if pl.Provider != "gpu-a" || len(pl.Failovers) != 0 {
		t.Errorf("placement predicate %+v, want gpu-a's acceptance", pl)
	}
	if len(h.settled) != 1 || h.settled[0].Award.Provider != "gpu-b" {
		t.Errorf("settled %+v, want with gpu-b", h.settled)
	}
}

// A split part's provider lost before it accepts its part is failed over
// alone; the placement lists the replacement's acceptance and names the
// failover.
func TestJobSplitPlacementSignerLost(t *testing.T) {
	h, d, res := runLostSigner(t, splitAward(), predicate.StagePlacement, "gpu-b", "gpu-a", "gpu-b", "gpu-c")
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if len(d.renegotiate) != 1 || !slices.Equal(d.renegotiate[0].Tasks, []string{"train-b", "eval"}) {
		t.Errorf("renegotiations %+v", d.renegotiate)
	}
	if got := d.runs[ExecQueue("gpu-b")]; len(got) != 0 {
		t.Errorf("runs on the lost provider: %v", got)
	}
	var pl predicate.Placement
	h.predicate(predicate.StagePlacement, &pl)
	if pl.Provider != "gpu-a" || len(pl.Parts) != 2 || pl.Parts[1].Provider != "gpu-c" ||
		len(pl.Failovers) != 1 || pl.Failovers[0].Provider != "gpu-c" || !slices.Equal(pl.Failovers[0].Tasks, []string{"train-b", "eval"}) {
		t.Errorf("placement predicate %+v", pl)
	}
	if len(h.settled) != 1 || h.settled[0].Award.Parts[1].Provider != "gpu-c" {
		t.Errorf("settled %+v", h.settled)
	}
}

// A split part's provider lost before it signs its execution: its tasks
// run again on a replacement when no other part depends on them (gpu-b's
// train-b and eval), and the job fails when one does (gpu-a's prepare
// feeds gpu-b's tasks, whose provider signs over their results).
func TestJobSplitExecutionSignerLost(t *testing.T) {
	t.Run("rerun", func(t *testing.T) {
		h, d, res := runLostSigner(t, splitAward(), predicate.StageExecution, "gpu-b", "gpu-a", "gpu-b", "gpu-c")
		if res.Status != StatusSettled {
			t.Fatalf("status %s: %s", res.Status, res.Error)
		}
		if got := d.runs[ExecQueue("gpu-c")]; len(got) != 2 || !strings.Contains(strings.Join(got, " "), "train-b.2") {
			t.Errorf("runs on gpu-c %v, want train-b (run 2) and eval", got)
		}
		if got := d.runs[ExecQueue("gpu-a")]; len(got) != 2 {
			t.Errorf("runs on gpu-a %v, want its two tasks once", got)
		}
		var ex predicate.Execution
		h.predicate(predicate.StageExecution, &ex)
		if len(ex.Parts) != 2 || ex.Parts[1].Provider != "gpu-c" || len(ex.Failovers) != 1 || ex.Failovers[0].Lost != "gpu-b" {
			t.Errorf("execution predicate %+v", ex)
		}
		if len(h.settled) != 1 || h.settled[0].Award.Parts[1].Provider != "gpu-c" {
			t.Errorf("settled %+v", h.settled)
		}
	})
	t.Run("depended on", func(t *testing.T) {
		h, d, res := runLostSigner(t, splitAward(), predicate.StageExecution, "gpu-a", "gpu-a", "gpu-b", "gpu-c")
		if res.Status != StatusFailed || !strings.Contains(res.Error, "depends on its tasks") {
			t.Fatalf("status %s: %s", res.Status, res.Error)
		}
		if len(d.renegotiate) != 0 || len(h.settled) != 0 || len(h.released) != 1 {
			t.Errorf("renegotiated %d, settled %d, released %d: want the escrow released, nothing else", len(d.renegotiate), len(h.settled), len(h.released))
		}
	})
}
