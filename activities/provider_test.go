package activities

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/tlog"
	"github.com/accordmesh/accord/workflows"
)

// agentFlow runs a layout 5 job whose award names provider agent gpu-a:
// the agent's activities (its own key, records and attestation store) sign
// the execution stage, the control plane's check and log it.
type agentFlow struct {
	ctx        context.Context
	lg         tlog.Log
	control    *provenance.Store
	ctlKey     *provenance.Key
	agentKey   *provenance.Key
	trust      *provenance.TrustStore
	agent      *Activities
	res        workflows.JobResult
	runOutputs []workflows.OutputArtifact // what RunTask reports to the workflow
}

func newAgentFlow(t *testing.T) *agentFlow {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	lg, err := tlog.Open(ctx, tlog.Config{Kind: tlog.KindEmbedded, Home: home})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := lg.(interface{ Close(context.Context) error }); ok {
		t.Cleanup(func() { c.Close(ctx) })
	}
	f := &agentFlow{ctx: ctx, lg: lg, control: provenance.NewStore(filepath.Join(home, "provenance")), trust: provenance.NewTrustStore()}
	if f.ctlKey, err = provenance.GenerateKey(provenance.AlgECDSAP256); err != nil {
		t.Fatal(err)
	}
	if f.agentKey, err = provenance.GenerateKey(provenance.AlgECDSAP256); err != nil {
		t.Fatal(err)
	}
	store := artifacts.Local{Dir: filepath.Join(home, "artifacts")}
	agentRec := provenance.NewRecorder(nil, f.agentKey, provenance.NewStore(filepath.Join(home, "agent", "provenance")))
	f.agent = &Activities{Artifacts: store, Signer: RecorderAttestor{R: agentRec}, ProviderName: "gpu-a", JobsDir: filepath.Join(home, "agent", "jobs")}
	f.runOutputs = []workflows.OutputArtifact{{Path: "model.json", SHA256: strings.Repeat("ab", 32), Size: 10}}
	return f
}

func (f *agentFlow) run(t *testing.T) {
	t.Helper()
	control := &Activities{
		Artifacts: f.agent.Artifacts,
		Attestor: RecorderAttestor{R: provenance.NewRecorder(f.lg, f.ctlKey, f.control),
			Trust: func() (*provenance.TrustStore, error) { return f.trust, nil }},
	}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	workflows.Register(env)
	control.RegisterControl(env)
	f.agent.RegisterProvider(env)
	plan := workflows.PlanSummary{
		Name: "flow", Version: "1.0.0", Tenant: "acme", Currency: "USD", MaxCost: 500,
		DocumentDigest: artifacts.Digest([]byte("spec")), ContractDigest: artifacts.Digest([]byte("contract")),
		Tasks: []workflows.PlanTask{{Name: "train", Attempts: 1}},
	}
	on := func(name string, out any) { env.OnActivity(name, mock.Anything, mock.Anything).Return(out, nil) }
	on(workflows.Compile.Name, workflows.CompileOutput{Plan: plan, PlanRef: artifacts.Digest([]byte("plan"))})
	on(workflows.Admit.Name, workflows.AdmitOutput{Allowed: true})
	on(workflows.Negotiate.Name, workflows.NegotiateOutput{Provider: "gpu-a", Pool: "gpu-a", Runtime: "containerd",
		Price: 400, Currency: "USD", Queue: workflows.ExecQueue("gpu-a")})
	on(workflows.Place.Name, workflows.PlaceOutput{Reservation: "r", HoldID: "h", Held: 480, Currency: "USD", Node: "gpu-a"})
	// The agent records what it ran (as its RunTask does); the workflow
	// hears f.runOutputs.
	env.OnActivity(workflows.RunTask.Name, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in workflows.RunTaskInput) (workflows.RunTaskOutput, error) {
			rec := workflows.RunTaskOutput{State: "exited", Usage: workflows.Usage{WallSeconds: 2},
				Outputs: []workflows.OutputArtifact{{Path: "model.json", SHA256: strings.Repeat("ab", 32), Size: 10}}}
			if err := f.agent.writeResult(in.JobID, in.RunID, rec); err != nil {
				return rec, err
			}
			out := rec
			out.Outputs = f.runOutputs
			return out, nil
		})
	on(workflows.Settle.Name, workflows.SettleOutput{Paid: 400, Refunded: 80, Currency: "USD"})
	env.ExecuteWorkflow(workflows.JobWorkflowName, workflows.JobInput{JobID: "job-agent", SpecPath: "/specs/flow.md"})
	if err := env.GetWorkflowResult(&f.res); err != nil {
		t.Fatal(err)
	}
}

// signer returns the key ID that signed the control plane's stored stage.
func (f *agentFlow) signer(t *testing.T, stage string) string {
	t.Helper()
	a, err := f.control.Get("job-agent", stage)
	if err != nil {
		t.Fatalf("%s: %v", stage, err)
	}
	ids, err := provenance.EnvelopeSignerIDs(a.Envelope)
	if err != nil || len(ids) != 1 {
		t.Fatalf("%s signers %v %v", stage, ids, err)
	}
	return ids[0]
}

func TestProviderSignsExecution(t *testing.T) {
	f := newAgentFlow(t)
	if _, err := f.trust.Add(f.agentKey.PublicPEM(), "agent gpu-a", provenance.ScopeProviderPrefix+"gpu-a"); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	if f.res.Status != workflows.StatusSettled {
		t.Fatalf("job: %+v", f.res)
	}
	for _, stage := range []string{provenance.StagePlacement, provenance.StageExecution} {
		if got := f.signer(t, stage); got != f.agentKey.ID() {
			t.Errorf("%s signed by %s, want the agent's key %s", stage, got, f.agentKey.ID())
		}
	}
	for _, stage := range []string{provenance.StageSpec, provenance.StageVerification, provenance.StageSettlement} {
		if got := f.signer(t, stage); got != f.ctlKey.ID() {
			t.Errorf("%s signed by %s, want the control plane's key", stage, got)
		}
	}
	// The chain holds and every envelope is logged: the receipt verifies
	// with each party's key trusted for its own role only (--parties).
	r, err := provenance.BuildReceipt(f.ctx, "job-agent", f.control, f.lg)
	if err != nil {
		t.Fatal(err)
	}
	trust := provenance.NewTrustStore()
	logPEM, _ := f.lg.PublicKey(f.ctx)
	for _, k := range []struct {
		pem   []byte
		scope string
	}{{f.ctlKey.PublicPEM(), provenance.ScopeOperator}, {f.agentKey.PublicPEM(), provenance.ProviderScope("gpu-a")}, {logPEM, provenance.ScopeLog}} {
		if _, err := trust.Add(k.pem, "k", k.scope); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := provenance.Verify(f.ctx, r, trust, provenance.VerifyOptions{Parties: true})
	if err != nil || !rep.OK {
		t.Fatalf("receipt: %v %+v", err, rep)
	}
}

// A provider key not trusted for provider:gpu-a cannot have its stage
// logged: the job fails and nothing is paid.
func TestProviderUntrustedKeyRefused(t *testing.T) {
	f := newAgentFlow(t)
	if _, err := f.trust.Add(f.agentKey.PublicPEM(), "agent gpu-b", provenance.ScopeProviderPrefix+"gpu-b"); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	if f.res.Status != workflows.StatusFailed || !strings.Contains(f.res.Error, "may not sign") {
		t.Fatalf("job: %s %s", f.res.Status, f.res.Error)
	}
	if _, err := f.control.Get("job-agent", provenance.StageExecution); !errors.Is(err, provenance.ErrNotFound) {
		t.Errorf("refused envelope stored: %v", err)
	}
	if f.res.Paid != 0 {
		t.Errorf("paid %d", f.res.Paid)
	}
}

// A statement naming outputs the agent did not record is refused by the
// agent: it signs only what it ran.
func TestProviderRefusesForeignOutputs(t *testing.T) {
	f := newAgentFlow(t)
	if _, err := f.trust.Add(f.agentKey.PublicPEM(), "agent gpu-a", provenance.ScopeProviderPrefix+"gpu-a"); err != nil {
		t.Fatal(err)
	}
	f.runOutputs = []workflows.OutputArtifact{{Path: "model.json", SHA256: strings.Repeat("cd", 32), Size: 10}}
	f.run(t)
	if f.res.Status != workflows.StatusFailed || !strings.Contains(f.res.Error, "not executed here as stated") {
		t.Fatalf("job: %s %s", f.res.Status, f.res.Error)
	}
}

// A provider signs only a placement that names it, for an award to it.
func TestProviderSignsOnlyItsPlacement(t *testing.T) {
	a := &Activities{ProviderName: "gpu-a", Signer: RecorderAttestor{}}
	for _, tc := range []struct{ named, award string }{{"gpu-b", "gpu-b"}, {"gpu-a", "gpu-b"}, {"gpu-b", "gpu-a"}} {
		pred, _ := json.Marshal(map[string]any{"provider": tc.named, "held": 10})
		_, err := a.SignStage(context.Background(), workflows.AttestInput{JobID: "j", Stage: provenance.StagePlacement, Provider: tc.award, Predicate: pred})
		if !errors.Is(err, ErrNotRun) || appErrType(err) != workflows.ErrTypeExecution {
			t.Errorf("placement naming %s, award %s: %v, want a permanent refusal", tc.named, tc.award, err)
		}
	}
}
