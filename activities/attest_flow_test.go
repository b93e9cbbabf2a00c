package activities

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	_ "github.com/accordmesh/accord/provenance/tlog/embedded"
	"github.com/accordmesh/accord/workflows"
)

// The job workflow's attestations, as the workflow fills them in, go
// through the real attest activity, recorder and embedded log, and the
// receipt they make passes provenance.Verify: one predicate contract on both
// sides.
func TestWorkflowAttestationsVerify(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	lg, err := tlog.Open(ctx, tlog.Config{Kind: tlog.KindEmbedded, Home: home})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := lg.(interface{ Close(context.Context) error }); ok {
		defer c.Close(ctx)
	}
	key, err := provenance.GenerateKey(provenance.AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	store := provenance.NewStore(filepath.Join(home, "provenance"))
	a := &Activities{
		Artifacts: artifacts.Local{Dir: filepath.Join(home, "artifacts")},
		Attestor:  RecorderAttestor{R: provenance.NewRecorder(lg, key, store)},
	}

	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	workflows.Register(env)
	a.RegisterControl(env)
	a.RegisterExecution(env)
	plan := workflows.PlanSummary{
		Name: "flow", Version: "1.0.0", Tenant: "acme", Currency: "USD", MaxCost: 500, HasTests: true,
		DocumentDigest: artifacts.Digest([]byte("spec")), ContractDigest: artifacts.Digest([]byte("contract")),
		Tasks: []workflows.PlanTask{{Name: "train", Attempts: 1}},
	}
	on := func(name string, out any) { env.OnActivity(name, mock.Anything, mock.Anything).Return(out, nil) }
	on(workflows.Compile.Name, workflows.CompileOutput{Plan: plan, PlanRef: artifacts.Digest([]byte("plan"))})
	on(workflows.Admit.Name, workflows.AdmitOutput{Allowed: true})
	on(workflows.Negotiate.Name, workflows.NegotiateOutput{Provider: "local", Pool: "local", Runtime: "containerd", Price: 400, Currency: "USD"})
	on(workflows.Place.Name, workflows.PlaceOutput{Reservation: "r", HoldID: "h", Held: 480, Currency: "USD", Node: "local"})
	on(workflows.RunTask.Name, workflows.RunTaskOutput{State: "exited", Usage: workflows.Usage{WallSeconds: 2, CPUSeconds: 1},
		Outputs: []workflows.OutputArtifact{{Path: "model.json", SHA256: strings.Repeat("ab", 32), Size: 10}}})
	on(workflows.Verify.Name, workflows.VerifyOutput{Passed: true, Tests: []workflows.TestResult{{Name: "accuracy", Passed: true}}})
	on(workflows.Settle.Name, workflows.SettleOutput{Paid: 400, Refunded: 80, Currency: "USD"})
	env.ExecuteWorkflow(workflows.JobWorkflowName, workflows.JobInput{JobID: "job-flow", SpecPath: "/specs/flow.md"})
	var res workflows.JobResult
	if err := env.GetWorkflowResult(&res); err != nil || res.Status != workflows.StatusSettled {
		t.Fatalf("job: %+v %v", res, err)
	}

	r, err := provenance.BuildReceipt(ctx, "job-flow", store, lg)
	if err != nil {
		t.Fatal(err)
	}
	trust := provenance.NewTrustStore()
	logPEM, err := lg.PublicKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add(key.PublicPEM(), "worker", provenance.ScopeStage); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Add(logPEM, "log", provenance.ScopeLog); err != nil {
		t.Fatal(err)
	}
	rep, err := provenance.Verify(ctx, r, trust, provenance.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK {
		t.Fatalf("receipt does not verify: %+v", rep.Problems)
	}
	var exec provenance.ExecutionPredicate
	for _, e := range r.Attestations {
		if e.Stage == provenance.StageExecution {
			_, payload, _ := provenance.ParseEnvelope(e.Envelope)
			st, _ := provenance.ParseStatement(payload)
			if err := st.DecodePredicate(&exec); err != nil {
				t.Fatal(err)
			}
		}
	}
	if exec.Tasks["train"].Outputs[0].Path != "model.json" || exec.Runtime != "containerd" {
		t.Errorf("execution predicate lost the sealed results: %+v", exec)
	}
}
