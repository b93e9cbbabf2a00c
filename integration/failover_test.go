package integration

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/examples/images"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/market/agents"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/apijobs"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// mesh is a control plane (Temporal, worker, API, ledger, log) with
// provider agents, each an `accord provider serve` process with its own
// home, containerd and key, trusted for its own stages.
type mesh struct {
	t     *testing.T
	image string
	bin   string
	home  string
	st    *stack.Stack
	api   *httptest.Server
	reg   *agents.Registry
	prov  *provenance.Local
}

type failAgent struct {
	name, home, log string
	cmd             *exec.Cmd
	key             *provenance.Key
}

func newMesh(t *testing.T) *mesh {
	m := &mesh{t: t, image: needStack(t), bin: accordBinary(t), home: newHome(t)}
	m.st = startStack(t, m.home, 0, false)
	t.Cleanup(m.st.Stop)
	m.reg = agents.Open(m.home)
	m.prov = &provenance.Local{Home: m.home, Log: m.st.Local.Log, Store: provenance.NewStore(provenance.DefaultStoreDir(m.home))}
	m.api = httptest.NewServer(apiserver.New(&apijobs.Jobs{Client: m.st.Client, Home: m.home, Prov: m.prov}, m.st.Local.Store,
		apiserver.WithProviders(m.reg), apiserver.WithRateLimit(0, 0)))
	t.Cleanup(m.api.Close)
	return m
}

// agent starts provider name's agent (wrap, when set, is a command the
// agent runs under) and trusts its key for provider:<name> once it beats.
func (m *mesh) agent(name string, wrap []string, stake int64) *failAgent {
	t := m.t
	t.Helper()
	a := &failAgent{name: name, home: newHome(t)}
	tok, err := m.st.Local.Store.CreateToken(context.Background(), policies.Principal{Role: policies.RoleProvider, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	tokFile := filepath.Join(a.home, "provider.token")
	if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a.log = filepath.Join(a.home, "agent.log")
	logf, err := os.Create(a.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logf.Close() })
	args := append(append([]string(nil), wrap...), m.bin, "provider", "serve", "--name", name, "--home", a.home,
		"--temporal-address", m.st.Server.Address(), "--api", m.api.URL, "--token-file", tokFile, "--heartbeat", "1s",
		"--artifacts", artifacts.DefaultDir(m.home), "--host-inputs", filepath.Dir(m.image), "--stake", fmt.Sprint(stake))
	a.cmd = exec.Command(args[0], args[1:]...)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.kill)
	waitFor(t, 2*time.Minute, name+"'s first heartbeat", func() bool { _, ok := m.reg.Live(name); return ok })
	if a.key, err = provenance.LoadKey(filepath.Join(a.home, "keys", "provider.key")); err != nil {
		t.Fatal(err)
	}
	ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(m.home))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ts.Add(a.key.PublicPEM(), "agent "+name, provenance.ProviderScope(name)); err != nil {
		t.Fatal(err)
	}
	if err := ts.Save(provenance.DefaultTrustPath(m.home)); err != nil {
		t.Fatal(err)
	}
	return a
}

// kill is SIGKILL: the agent gets no chance to say goodbye.
func (a *failAgent) kill() {
	if a.cmd.ProcessState == nil {
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		_, _ = a.cmd.Process.Wait()
	}
}

func (a *failAgent) logged(s string) bool {
	b, _ := os.ReadFile(a.log)
	return strings.Contains(string(b), s)
}

// failoverSpec is a one-task trainer job that any of providers may run; the
// task sleeps first, so that it is running long enough to be interrupted.
func failoverSpec(t *testing.T, name, image string, providers []string, sleep int, verification, slash string) string {
	t.Helper()
	task := trainerTask("train", image, []string{"sh", "-c", fmt.Sprintf("sleep %d && exec trainer train --samples 200 --epochs 3", sleep)},
		"  outputs: [metrics.json, model.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 10m}\n")
	doc := fmt.Sprintf("---\naccord: v1\nname: %s\nversion: 1.0.0\ntenant: mesh\n---\n\n# %s\n\n## Tasks\n\n```yaml\n%s```\n\n"+
		"## Placement\n\n```yaml\nallow_providers: [%s]\n```\n\n"+
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\npreference: cheapest\n```\n\n"+
		"## Settlement\n\n```yaml\npay_on_success: true\n%s```\n", name, name, task, strings.Join(providers, ", "), slash)
	if verification != "" {
		doc += "\n## Verification\n\n```yaml\n" + verification + "\n```\n"
	}
	p := filepath.Join(t.TempDir(), name+".md")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (m *mesh) balance(l *settlement.Ledger, account string) int64 {
	b, err := l.Balance(context.Background(), account, "USD")
	if err != nil {
		m.t.Fatal(err)
	}
	return b
}

// verifyReceipt checks the job's receipt against the control plane's trust
// store (every agent's key scoped to its own provider).
func (m *mesh) verifyReceipt(jobID string) *provenance.Receipt {
	ctx := context.Background()
	rc, err := provenance.BuildReceipt(ctx, jobID, m.prov.Store, m.st.Local.Log)
	if err != nil {
		m.t.Fatal(err)
	}
	ts, err := provenance.LoadTrustStore(provenance.DefaultTrustPath(m.home))
	if err != nil {
		m.t.Fatal(err)
	}
	rep, err := provenance.Verify(ctx, rc, ts, provenance.VerifyOptions{})
	if err != nil || !rep.OK {
		m.t.Errorf("receipt of %s: %v %+v", jobID, err, rep)
	}
	return rc
}

func stagePredicate(t *testing.T, rc *provenance.Receipt, stage string, into any) {
	t.Helper()
	for _, a := range rc.Attestations {
		if a.Stage == stage {
			_, payload, err := provenance.ParseEnvelope(a.Envelope)
			if err != nil {
				t.Fatal(err)
			}
			st, err := provenance.ParseStatement(payload)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.DecodePredicate(into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("no %s attestation in the receipt", stage)
}

// A provider agent SIGKILLed mid-task (and not restarted) is abandoned: the
// task fails over to the other agent and the job settles there; the lost
// provider is paid nothing, its reputation is lower, and the execution
// attestation, signed by the new provider, names the failover.
func TestProviderFailover(t *testing.T) {
	m := newMesh(t)
	ctx := context.Background()
	fund(t, m.home, "mesh", 1000)
	lost := m.agent("gpu-a", nil, 0)
	sub, err := jobclient.Submit(ctx, m.st.Client, failoverSpec(t, "failover", m.image, []string{"gpu-a", "gpu-b"}, 20, "", ""), "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "the task started on gpu-a", func() bool { return lost.logged("task started") })
	m.agent("gpu-b", nil, 0)
	lost.kill()
	res := result(t, m.st.Client, sub.JobID, 8*time.Minute)
	if res.Status != workflows.StatusSettled || res.Provider != "gpu-b" || res.Paid <= 0 {
		t.Fatalf("job: %+v", res)
	}
	recordHistory(t, m.st.Client, sub.JobID, "job_failover")
	if len(res.Failovers) != 1 || res.Failovers[0].Lost != "gpu-a" || res.Failovers[0].Provider != "gpu-b" ||
		res.Failovers[0].RunID != workflows.RunID(sub.JobID, "train", 1) {
		t.Errorf("failovers %+v", res.Failovers)
	}
	l := ledgerCheck(t, m.home)
	if got := m.balance(l, settlement.ProviderAccount("gpu-a")); got != 0 {
		t.Errorf("the lost provider was paid %d", got)
	}
	if got := m.balance(l, settlement.ProviderAccount("gpu-b")); got <= 0 {
		t.Errorf("the provider that ran the task was paid %d", got)
	}
	if rep, err := m.reg.Reputation("gpu-a"); err != nil || rep >= 1 {
		t.Errorf("gpu-a's reputation %v %v, want below 1", rep, err)
	}
	if rep, _ := m.reg.Reputation("gpu-b"); rep != 1 {
		t.Errorf("gpu-b's reputation %v", rep)
	}
	rc := m.verifyReceipt(sub.JobID)
	var ex predicate.Execution
	stagePredicate(t, rc, predicate.StageExecution, &ex)
	if ex.Provider != "gpu-b" || len(ex.Failovers) != 1 || ex.Failovers[0].Lost != "gpu-a" || ex.Failovers[0].Reason == "" {
		t.Errorf("execution predicate %+v", ex)
	}
}

// A provider agent SIGKILLed after it won the job but before it accepted
// the placement (the job waits at its approval gate meanwhile) is failed
// over before anything runs (job layout 11): the placement is accepted and
// signed by the other agent and names the failover, the task runs there
// once, the lost provider runs nothing and is paid nothing, and the
// receipt verifies with each party's key.
func TestProviderLostBeforePlacement(t *testing.T) {
	m := newMesh(t)
	ctx := context.Background()
	fund(t, m.home, "mesh", 1000)
	lost := m.agent("gpu-a", nil, 0)
	spec := failoverSpec(t, "placed-late", m.image, []string{"gpu-a", "gpu-b"}, 0, "", "")
	f, err := os.OpenFile(spec, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n## Approval\n\n```yaml\nrequired: true\napprovers: [alice]\n```\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	sub, err := jobclient.Submit(ctx, m.st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the approval gate, the job awarded to gpu-a", func() bool {
		return jobStatus(t, m.st.Client, sub.JobID).Status == workflows.StatusAwaitingApproval
	})
	m.agent("gpu-b", nil, 0)
	lost.kill()
	if err := jobclient.Approve(ctx, m.st.Client, sub.JobID, workflows.ApproveInput{By: "alice", Reason: "test"}); err != nil {
		t.Fatal(err)
	}
	res := result(t, m.st.Client, sub.JobID, 8*time.Minute)
	if res.Status != workflows.StatusSettled || res.Provider != "gpu-b" || res.Paid <= 0 {
		t.Fatalf("job: %+v", res)
	}
	recordHistory(t, m.st.Client, sub.JobID, "job_placement_lost")
	if len(res.Failovers) != 1 || res.Failovers[0].Lost != "gpu-a" || res.Failovers[0].Provider != "gpu-b" || res.Failovers[0].RunID != "" {
		t.Errorf("failovers %+v, want gpu-a to gpu-b before any run", res.Failovers)
	}
	if lost.logged("task started") {
		t.Error("the lost provider started the task")
	}
	l := ledgerCheck(t, m.home)
	if got := m.balance(l, settlement.ProviderAccount("gpu-a")); got != 0 {
		t.Errorf("the lost provider was paid %d", got)
	}
	if rep, err := m.reg.Reputation("gpu-a"); err != nil || rep >= 1 {
		t.Errorf("gpu-a's reputation %v %v, want below 1", rep, err)
	}
	rc := m.verifyReceipt(sub.JobID)
	var pl predicate.Placement
	stagePredicate(t, rc, predicate.StagePlacement, &pl)
	if pl.Provider != "gpu-b" || len(pl.Failovers) != 1 || pl.Failovers[0].Lost != "gpu-a" || !strings.Contains(pl.Failovers[0].Reason, "not served") {
		t.Errorf("placement predicate %+v", pl)
	}
	var ex predicate.Execution
	stagePredicate(t, rc, predicate.StageExecution, &ex)
	if ex.Provider != "gpu-b" || len(ex.Failovers) != 1 || ex.Tasks["train"].RunID != workflows.RunID(sub.JobID, "train", 1) {
		t.Errorf("execution predicate %+v, want train's first run on gpu-b", ex)
	}
}

// cheatTrainer builds a trainer image whose `trainer` fabricates its
// outputs. The cheat lives here: a provider that runs it (under a mount
// namespace where it replaces the trainer archive) returns made-up
// results for the task.
func cheatTrainer(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "examples", "images", "trainer")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		filepath.Join(dir, "go.mod"): "module cheat\n\ngo 1.24\n",
		filepath.Join(src, "main.go"): `package main

import (
	"os"
	"path/filepath"
)

func main() {
	out := os.Getenv("ACCORD_OUTPUT_DIR")
	if out == "" {
		out = "/out"
	}
	_ = os.MkdirAll(out, 0o755)
	_ = os.WriteFile(filepath.Join(out, "metrics.json"), []byte("{\"accuracy\": 0.999}\n"), 0o644)
	_ = os.WriteFile(filepath.Join(out, "model.json"), []byte("{\"weights\": []}\n"), 0o644)
}
`,
	}
	for p, body := range files {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := images.BuildTrainer(context.Background(), images.Options{RepoDir: dir, Out: filepath.Join(dir, "cheat.tar"), Busybox: images.DefaultBusybox()})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Three agents; the job's provider cheats (its trainer archive is replaced
// by one that fabricates outputs, inside its own mount namespace). The spot
// check runs the task on a second agent, the digests differ, a third run
// decides against the cheat: it is paid nothing and slashed under its
// agreed stake, the job settles with the honest checker, and the ledger and
// the receipt show the verdict and the slash.
func TestSpotCheckCheat(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("the cheating agent runs under unshare (util-linux)")
	}
	m := newMesh(t)
	ctx := context.Background()
	fund(t, m.home, "mesh", 1000)
	l := ledgerCheck(t, m.home)
	if _, err := l.DepositBond(ctx, settlement.BondRequest{Provider: "gpu-c", Currency: "USD", Amount: 1000, Key: "bond-gpu-c"}); err != nil {
		t.Fatal(err)
	}
	cheat := cheatTrainer(t)
	wrap := []string{"unshare", "-m", "--propagation", "private", "sh", "-c",
		fmt.Sprintf("mount --bind %s %s && exec \"$@\"", cheat, m.image), "cheat"}
	cheater := m.agent("gpu-c", wrap, 200)
	spec := failoverSpec(t, "spot", m.image, []string{"gpu-a", "gpu-b", "gpu-c"}, 20, "spot_check: 1", "sla: {slash_percent: 50}\n")
	sub, err := jobclient.Submit(ctx, m.st.Client, spec, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "the task started on gpu-c", func() bool { return cheater.logged("task started") })
	m.agent("gpu-a", nil, 200)
	m.agent("gpu-b", nil, 200)
	res := result(t, m.st.Client, sub.JobID, 10*time.Minute)
	if res.Status != workflows.StatusSettled || res.SpotCheck == nil {
		t.Fatalf("job: %+v", res)
	}
	recordHistory(t, m.st.Client, sub.JobID, "job_spotcheck")
	sc := res.SpotCheck
	if sc.Verdict != predicate.SpotReversed || sc.Minority != "gpu-c" || len(sc.Runs) != 3 || sc.Slashed != 100 ||
		sc.Paid == "gpu-c" || res.Provider != sc.Paid {
		t.Fatalf("spot check %+v, provider %s", sc, res.Provider)
	}
	if sc.Runs[1].OutputsDigest != sc.Runs[2].OutputsDigest || sc.Runs[0].OutputsDigest == sc.Runs[1].OutputsDigest {
		t.Errorf("digests %s %s %s", sc.Runs[0].OutputsDigest, sc.Runs[1].OutputsDigest, sc.Runs[2].OutputsDigest)
	}
	l = ledgerCheck(t, m.home)
	if got := m.balance(l, settlement.ProviderAccount("gpu-c")); got != 0 {
		t.Errorf("the cheat was paid %d", got)
	}
	if got := m.balance(l, settlement.BondAccount("gpu-c")); got != 900 {
		t.Errorf("the cheat's bond holds %d, want 900 (50%% of a 200 stake slashed)", got)
	}
	if got := m.balance(l, settlement.ProviderAccount(sc.Paid)); got <= 0 {
		t.Errorf("the honest provider %s was paid %d", sc.Paid, got)
	}
	if rep, _ := m.reg.Reputation("gpu-c"); rep >= 1 {
		t.Errorf("the cheat's reputation %v", rep)
	}
	rc := m.verifyReceipt(sub.JobID)
	var ver predicate.Verification
	stagePredicate(t, rc, predicate.StageVerification, &ver)
	if ver.SpotCheck == nil || ver.SpotCheck.Verdict != predicate.SpotReversed || ver.SpotCheck.Slashed != 100 {
		t.Fatalf("verification predicate %+v", ver.SpotCheck)
	}
	// Each checker signed its own run (layout 9); verifyReceipt checked
	// those signatures against the checkers' trusted keys.
	for _, r := range ver.SpotCheck.Runs[1:] {
		if len(r.Signed) == 0 {
			t.Errorf("the %s run of %s carries no signature of its provider", r.Role, r.Provider)
		}
	}
	var set predicate.Settlement
	stagePredicate(t, rc, predicate.StageSettlement, &set)
	if !strings.Contains(string(set.Record), `"provider":"`+sc.Paid+`"`) {
		t.Errorf("settlement record pays %s? %s", sc.Paid, set.Record)
	}
}
