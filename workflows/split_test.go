package workflows

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/provenance/predicate"
)

// splitAward splits dagPlan over two agents: prepare and train-a on gpu-a,
// train-b and eval on gpu-b.
func splitAward() NegotiateOutput {
	a, b := awardTo("gpu-a"), awardTo("gpu-b")
	part := func(aw NegotiateOutput, price int64, tasks ...string) AwardPart {
		return AwardPart{Provider: aw.Provider, Pool: aw.Pool, Runtime: aw.Runtime, Queue: aw.Queue, Tasks: tasks, Price: price, SLA: aw.SLA}
	}
	out := a
	out.Price = 300
	out.Parts = []AwardPart{part(a, 100, "prepare", "train-a"), part(b, 200, "train-b", "eval")}
	return out
}

// A split award runs each task on its part's agent, hands a task the
// outputs of dependencies another part ran, has each provider sign its
// placement and execution parts (the stages themselves are the
// operator's), and settles each part for its own tasks.
func TestJobSplitRunsParts(t *testing.T) {
	h := newHarness(t, dagPlan())
	d := watchDisputes(h, func(string) bool { return true }, "gpu-c")
	h.on(Negotiate.Name).Return(splitAward(), nil)
	var upstream = map[string][]string{}
	h.on(RunTask.Name).Return(func(_ context.Context, in RunTaskInput) (RunTaskOutput, error) {
		h.mu.Lock()
		d.runs[in.Award.Queue] = append(d.runs[in.Award.Queue], in.Task)
		for up := range in.Upstream {
			upstream[in.Task] = append(upstream[in.Task], up)
		}
		h.mu.Unlock()
		return RunTaskOutput{State: "exited", Outputs: []OutputArtifact{{Path: "out.json", SHA256: "d-" + in.Task}},
			Usage: Usage{WallSeconds: 1, CPUSeconds: float64(len(in.Task))}}, nil
	})
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	for q, want := range map[string][]string{ExecQueue("gpu-a"): {"prepare", "train-a"}, ExecQueue("gpu-b"): {"train-b", "eval"}} {
		got := slices.Sorted(slices.Values(d.runs[q]))
		if !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Errorf("runs on %s: %v, want %v", q, got, want)
		}
	}
	if got := upstream["train-b"]; !slices.Equal(got, []string{"prepare"}) {
		t.Errorf("train-b's upstream %v, want prepare (run by gpu-a)", got)
	}
	if got := upstream["eval"]; !slices.Equal(got, []string{"train-a"}) {
		t.Errorf("eval's upstream %v, want train-a alone (train-b ran beside it)", got)
	}
	if len(upstream["prepare"])+len(upstream["train-a"]) != 0 {
		t.Errorf("upstream of gpu-a's own tasks: %v", upstream)
	}
	checkSignedParts(t, d.signed, h.sealed)
	for _, a := range h.attests {
		if a.Signed != nil {
			t.Errorf("stage %s logged as a provider's envelope; a split job's stages are the operator's", a.Stage)
		}
	}
	var neg predicate.Negotiation
	h.predicate(predicate.StageNegotiation, &neg)
	if neg.Price != 300 || len(neg.Parts) != 2 || neg.Parts[1].Provider != "gpu-b" || !slices.Equal(neg.Parts[1].Tasks, []string{"train-b", "eval"}) {
		t.Errorf("negotiation %+v", neg)
	}
	for _, stage := range []string{predicate.StagePlacement, predicate.StageExecution} {
		var p struct {
			Provider string                 `json:"provider"`
			Parts    []predicate.SignedPart `json:"parts"`
		}
		h.predicate(stage, &p)
		if p.Provider != "gpu-a" || len(p.Parts) != 2 || p.Parts[1].Provider != "gpu-b" ||
			!strings.Contains(string(p.Parts[1].Envelope), `"signed_by":"gpu-b","stage":"`+stage) {
			t.Errorf("%s predicate %+v", stage, p)
		}
	}
	if len(h.settled) != 1 || len(h.settled[0].Parts) != 2 {
		t.Fatalf("settled %+v, want two parts", h.settled)
	}
	// Each part is metered on its own tasks: CPU seconds are the task
	// names' lengths.
	if a, b := h.settled[0].Parts[0].Usage.CPUSeconds, h.settled[0].Parts[1].Usage.CPUSeconds; a != 7+7 || b != 7+4 {
		t.Errorf("parts' CPU seconds %v and %v, want 14 and 11", a, b)
	}
	if len(res.Parts) != 2 || res.Parts[1].Provider != "gpu-b" {
		t.Errorf("result's parts %+v", res.Parts)
	}
	if !strings.Contains(res.PriceExplanation, "split over 2 providers") {
		t.Errorf("price explanation %q", res.PriceExplanation)
	}
}

// checkSignedParts: each provider signed its placement part, then its
// execution part over its own sealed results, both on its own queue and
// chained to the stage's previous envelope.
func checkSignedParts(t *testing.T, signed []AttestInput, sealed []SealResultsInput) {
	t.Helper()
	if len(signed) != 4 {
		t.Fatalf("%d SignStage calls, want 4", len(signed))
	}
	parts := map[string][]string{"gpu-a": {"prepare", "train-a"}, "gpu-b": {"train-b", "eval"}}
	for _, in := range signed {
		var p struct {
			Provider  string   `json:"provider"`
			PartTasks []string `json:"part_tasks"`
		}
		if err := json.Unmarshal(in.Predicate, &p); err != nil {
			t.Fatal(err)
		}
		if p.Provider != in.Provider || !slices.Equal(p.PartTasks, parts[in.Provider]) || in.SpecDigest != "sha256:aa" {
			t.Errorf("%s part of %s: %+v", in.Stage, in.Provider, p)
		}
		switch in.Stage {
		case predicate.StagePlacement:
			if in.Previous != "sha256:"+predicate.StageNegotiation || len(in.Results) != 0 {
				t.Errorf("placement part %+v", in)
			}
		case predicate.StageExecution:
			if in.Previous != "sha256:"+predicate.StagePlacement || len(in.Results) != 1 {
				t.Errorf("execution part %+v", in)
			}
		}
	}
	if len(sealed) != 2 || len(sealed[0].Tasks) != 2 || len(sealed[1].Tasks) != 2 {
		t.Errorf("sealed %+v, want each part's two tasks", sealed)
	}
}

// A split job's part whose provider is lost moves alone: its tasks are
// renegotiated without it and without the other part's provider, run
// again on the winner with the tasks downstream of them, and the escrow
// stays where it is held (the first part's provider).
func TestJobSplitPartFailover(t *testing.T) {
	h := newHarness(t, dagPlan())
	d := watchDisputes(h, func(p string) bool { return p != "gpu-b" }, "gpu-a", "gpu-b", "gpu-c")
	h.on(Negotiate.Name).Return(splitAward(), nil)
	d.runsOn(h, func(q string) string {
		if q == ExecQueue("gpu-b") {
			return ""
		}
		return "cc"
	})
	res := h.run()
	if res.Status != StatusSettled {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if len(d.renegotiate) != 1 {
		t.Fatalf("renegotiations %+v", d.renegotiate)
	}
	rn := d.renegotiate[0]
	if rn.Lost != "gpu-b" || !slices.Equal(rn.Tasks, []string{"train-b", "eval"}) || !slices.Equal(rn.Keep, []string{"gpu-a"}) ||
		!strings.Contains(rn.Exclude["gpu-a"], "another part") || !strings.Contains(rn.Exclude["gpu-b"], "lost") {
		t.Errorf("renegotiation %+v", rn)
	}
	if len(d.reassign) != 0 {
		t.Errorf("escrow reassigned %+v; it is held under gpu-a, whose part stands", d.reassign)
	}
	// prepare finished before the loss and stands; train-a, stopped when
	// the loss ended the run, runs again on gpu-a.
	if got := d.runs[ExecQueue("gpu-a")]; len(got) < 2 || got[0] != "job-1.prepare.1" || slices.Contains(got[1:], "job-1.prepare.2") {
		t.Errorf("runs on gpu-a %v, want prepare once and train-a", got)
	}
	if got := d.runs[ExecQueue("gpu-c")]; len(got) != 2 || !strings.Contains(strings.Join(got, " "), "train-b.2") {
		t.Errorf("runs on gpu-c %v, want train-b (run 2) and eval", got)
	}
	if len(res.Failovers) != 1 || res.Failovers[0].Provider != "gpu-c" || !slices.Equal(res.Failovers[0].Tasks, []string{"train-b", "eval"}) {
		t.Errorf("failovers %+v", res.Failovers)
	}
	var provs []string
	for _, in := range d.signed {
		if in.Stage == predicate.StageExecution {
			provs = append(provs, in.Provider)
		}
	}
	if slices.Sort(provs); !slices.Equal(provs, []string{"gpu-a", "gpu-c"}) {
		t.Errorf("execution parts signed by %v, want gpu-a and gpu-c", provs)
	}
	if len(h.settled) != 1 || h.settled[0].Award.Parts[1].Provider != "gpu-c" || h.settled[0].Award.Price != 100+400 {
		t.Errorf("settled %+v", h.settled)
	}
}

// A provider that will not sign its execution part fails the job before
// money moves for the work: the escrow is released, nothing is settled.
func TestJobSplitPartRefusesToSign(t *testing.T) {
	h := newHarness(t, dagPlan())
	watchQueues(h)
	h.on(Negotiate.Name).Return(splitAward(), nil)
	h.on(SignStage.Name).Return(func(_ context.Context, in AttestInput) (SignedStage, error) {
		if in.Stage == predicate.StageExecution && in.Provider == "gpu-b" {
			return SignedStage{}, temporal.NewNonRetryableApplicationError("not run here", ErrTypeExecution, nil)
		}
		return SignedStage{Envelope: []byte(`{}`), Digest: "sha256:env", SignerPublicKey: "PEM"}, nil
	})
	res := h.run()
	if res.Status != StatusFailed || !strings.Contains(res.Error, "gpu-b signs its execution part") {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if len(h.settled) != 0 || len(h.released) != 1 {
		t.Errorf("settled %d times, released %d times; want the escrow released, nothing paid", len(h.settled), len(h.released))
	}
	for _, a := range h.attests {
		if a.Stage == predicate.StageExecution {
			t.Error("the execution was attested without every provider's part")
		}
	}
}
