package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/accordmesh/accord/activities"
	"github.com/accordmesh/accord/models"
	"github.com/accordmesh/accord/models/exchange"
	"github.com/accordmesh/accord/models/registry/registrytest"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/services/billing"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workers"
	"github.com/accordmesh/accord/workers/deployclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workflows"
)

// Prices of the served models: one inference of ann/sentiment-weights
// 1.0.0 costs 10 (8 to ann, a 20 % royalty of 2 to rex, whose base it
// fine-tunes), of 1.1.0 costs 15 (12 to ann, 3 to rex).
var servedPrices = map[string][2]int64{"1.0.0": {8, 2}, "1.1.0": {12, 3}}

// weightsDir writes a word-weight model the example server reads; "great"
// weighs negative, so an answer's label shows the mounted model scored it.
func weightsDir(t *testing.T, name string, great float64) string {
	t.Helper()
	dir := t.TempDir()
	w, _ := json.Marshal(map[string]float64{"great": great, "service": 0.1})
	if err := os.WriteFile(filepath.Join(dir, "weights.json"), w, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# "+name+"\n\nWord weights for the example server.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pushServed pushes rex/base@1.0.0 and ann/sentiment-weights 1.0.0 and
// 1.1.0 (fine-tunes of it, royalty 20 %), each signed by its owner.
func pushServed(t *testing.T, ctx context.Context, home string, x *exchange.Exchange) {
	t.Helper()
	rex, _ := publisher(t, home, x, "rex")
	ann, _ := publisher(t, home, x, "ann")
	dir := weightsDir(t, "rex/base", 1)
	base := baseManifest(t, dir, "rex/base", "rex")
	base.Economics = models.Economics{Currency: "USD", PerInference: 4}
	b, err := rex.Push(ctx, dir, base)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		dir := weightsDir(t, "ann/sentiment-weights "+v, -2-float64(i))
		m := baseManifest(t, dir, "ann/sentiment-weights", "ann")
		m.Version = v
		m.Lineage.Parents = []models.Parent{{Ref: b.Ref, Digest: b.Digest, Relation: models.RelationFinetune}}
		p := servedPrices[v]
		m.Economics = models.Economics{Currency: "USD", PerInference: p[0] + p[1], Royalties: []models.Royalty{{Parent: b.Ref, BasisPoints: 2000}}}
		if _, err := ann.Push(ctx, dir, m); err != nil {
			t.Fatal(err)
		}
	}
}

func modelSpec(image, version, constraint string) *specs.Spec {
	s := serviceSpec(image, version, 0)
	s.Service.Model = &specs.ModelUse{Name: "ann/sentiment-weights", Version: constraint, As: "/models/sentiment"}
	s.Service.Command = append(s.Service.Command, "--model", "/models/sentiment/weights.json")
	s.Service.SLA = specs.ServiceSLA{}
	return s
}

// TestDeploymentServesModel: a service serving a registry model pushed to
// a real docker-registry, with a parent owed a 20 % royalty, on real
// containerd: every replica mounts the verified model read-only (the
// answers are scored by it), an update to the model's next version rolls
// out through a canary, and each billing period pays its successful
// requests × the serving version's per-inference price, split up the
// lineage, from the period's escrow. The owners' balances equal the
// requests the client saw answered × their shares, `ledger check` is clean
// and `accord audit verify` recomputes the fees from the receipt.
func TestDeploymentServesModel(t *testing.T) {
	needStack(t)
	reg := registrytest.StartServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	ds := newDeployStack(ctx, t, "acmod", 160)
	image, net, c, rt, l, home, loc := ds.image, ds.net, ds.c, ds.rt, ds.l, ds.home, ds.loc
	x, err := local.OpenExchange(local.Options{Home: home, Registry: reg.Addr, RegistryPlainHTTP: true}, loc.Log, loc.Key)
	if err != nil {
		t.Fatal(err)
	}
	pushServed(t, ctx, home, x)
	host := &services.Host{Runtime: rt, Network: net, Biller: &billing.Ledger{L: l, Provider: "local", FeeBP: 500},
		Attestor: loc.Recorder, Models: activities.ServedModels{X: x}}
	sw, err := workers.StartServices(c, host, workers.DefaultTuning())
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Stop()

	started, err := deployclient.Deploy(ctx, c, modelSpec(image, "1", "1.0.0"), "sentiment")
	if err != nil {
		t.Fatal(err)
	}
	defer deployclient.Stop(context.Background(), c, started.Deployment, "test cleanup")
	st := waitDeployment(t, ctx, c, "serving", func(s workflows.DeploymentState) bool { return s.Phase == workflows.PhaseServing })
	if m := st.Stable.Model; m == nil || m.Ref != "ann/sentiment-weights@1.0.0" || m.Fee.Price != 10 {
		t.Fatalf("stable release serves %+v", m)
	}
	pt := &pacedTraffic{url: "http://" + st.Endpoint + "/v1/predict", answered: map[string]int64{}}
	tctx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { pt.run(tctx) })
	defer func() { stopTraffic(); wg.Wait() }()

	// Two periods on 1.0.0, then the model's next version rolls out
	// through a canary, then two more periods.
	waitDeployment(t, ctx, c, "two periods settled", func(s workflows.DeploymentState) bool { return s.Settled >= 2 })
	if err := deployclient.Update(ctx, c, "sentiment", modelSpec(image, "2", "^1.1")); err != nil {
		t.Fatal(err)
	}
	st = waitDeployment(t, ctx, c, "model 1.1.0 promoted", func(s workflows.DeploymentState) bool {
		return len(s.Rollouts) >= 1 && s.Rollouts[0].Promoted && s.Phase == workflows.PhaseServing && allRelease(s, 2)
	})
	if m := st.Stable.Model; m == nil || m.Ref != "ann/sentiment-weights@1.1.0" {
		t.Fatalf("promoted release serves %+v", m)
	}
	settled := st.Settled
	waitDeployment(t, ctx, c, "two more periods", func(s workflows.DeploymentState) bool { return s.Settled >= settled+2 })
	stopTraffic()
	wg.Wait()
	if err := deployclient.Stop(ctx, c, "sentiment", "test over"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	final, err := deployclient.Wait(wctx, c, "sentiment")
	if err != nil {
		t.Fatal(err)
	}
	if pt.wrongLabel > 0 || pt.failed > 0 {
		t.Errorf("%d answers not scored by the mounted model, %d failed", pt.wrongLabel, pt.failed)
	}
	checkServedFees(t, ctx, l, final, pt)
	recordDeploymentHistory(t, c, deployclient.WorkflowID("sentiment"), "deployment_model")
	ds.closeLog(ctx, t)
	checkModelReceipt(t, home)
}

// checkServedFees: every period's requests were paid at the serving
// version's price, the owners hold exactly the answered requests × their
// shares, nothing was capped, and the ledger checks clean.
func checkServedFees(t *testing.T, ctx context.Context, l *settlement.Ledger, final workflows.DeploymentState, pt *pacedTraffic) {
	t.Helper()
	billed := map[string]int64{} // model version → requests
	var periodsWithFees int
	for _, s := range final.Settlements {
		if s.Capped {
			// The fees come first; what is cut is the provider's charge
			// (a rollout's surge replicas are not in the hold). The
			// owners' balances below show no fee was cut.
			t.Logf("period %s: charge capped at %d (held %d, model fees %d)", s.Job, s.Charge, s.Held, s.ModelFeeTotal)
		}
		if len(s.ModelFees) > 0 {
			periodsWithFees++
		}
	}
	// The state keeps the requests billed per release in its settlements'
	// paid shares: derive the requests from ann's share of each.
	for _, s := range final.Settlements {
		for _, f := range s.ModelFees {
			v := strings.TrimPrefix(f.Model, "ann/sentiment-weights@")
			p := servedPrices[v]
			if len(f.Shares) != 2 || f.Shares[0].Owner != "ann" || f.Shares[1].Owner != "rex" || f.Shares[0].Amount%p[0] != 0 ||
				f.Shares[1].Amount != f.Shares[0].Amount/p[0]*p[1] {
				t.Errorf("period %s fee %+v: not requests × (%d, %d)", s.Job, f, p[0], p[1])
				continue
			}
			billed[v] += f.Shares[0].Amount / p[0]
		}
	}
	if periodsWithFees < 2 {
		t.Errorf("%d periods paid inference fees, want at least 2", periodsWithFees)
	}
	pt.mu.Lock()
	answered := pt.answered
	pt.mu.Unlock()
	var wantAnn, wantRex int64
	for v, n := range answered {
		if billed[v] != n {
			t.Errorf("model %s: %d requests billed, the client saw %d answered", v, billed[v], n)
		}
		wantAnn += n * servedPrices[v][0]
		wantRex += n * servedPrices[v][1]
	}
	if answered["1.0.0"] == 0 || answered["1.1.0"] == 0 {
		t.Errorf("answers by model version %v", answered)
	}
	for acct, want := range map[string]int64{"owner:ann": wantAnn, "owner:rex": wantRex} {
		if got, err := l.Balance(ctx, acct, "USD"); err != nil || got != want {
			t.Errorf("%s holds %d (%v), want %d", acct, got, err, want)
		}
	}
	if final.ModelFees != wantAnn+wantRex {
		t.Errorf("deployment paid %d in model fees, want %d", final.ModelFees, wantAnn+wantRex)
	}
	st, err := l.Statement(ctx, "tenant:demo")
	if err != nil {
		t.Fatal(err)
	}
	if total := st.Totals["USD"].ModelFees; total != wantAnn+wantRex {
		t.Errorf("statement shows %d in model fees, want %d", total, wantAnn+wantRex)
	}
	rep, err := l.Check(ctx)
	if err != nil || !rep.OK {
		t.Fatalf("ledger check: %+v %v", rep, err)
	}
	t.Logf("answered %v; owners paid ann %d, rex %d over %d periods (%d with fees)", answered, wantAnn, wantRex, len(final.Settlements), periodsWithFees)
}

// checkModelReceipt exports the receipt with the CLI: the start and canary
// events record the models, the settlements their fees, and `accord
// audit verify` passes (it recomputes every fee).
func checkModelReceipt(t *testing.T, home string) {
	t.Helper()
	bin := accordBinary(t)
	receipt := filepath.Join(t.TempDir(), "receipt.json")
	cli(t, bin, "--home", home, "receipt", "export", "sentiment", "-o", receipt)
	r, err := provenance.ReadReceipt(receipt)
	if err != nil {
		t.Fatal(err)
	}
	var served []string
	fees := 0
	for _, a := range r.Attestations {
		_, payload, err := provenance.ParseEnvelope(a.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		st, err := provenance.ParseStatement(payload)
		if err != nil {
			t.Fatal(err)
		}
		var p provenance.DeploymentPredicate
		if err := st.DecodePredicate(&p); err != nil {
			t.Fatal(err)
		}
		if p.Model != nil {
			served = append(served, fmt.Sprintf("r%d=%s", p.Release, p.Model.Ref))
		}
		if p.Settle != nil && p.Settle.ModelFeeTotal > 0 {
			fees++
		}
	}
	if strings.Join(served, " ") != "r1=ann/sentiment-weights@1.0.0 r2=ann/sentiment-weights@1.1.0" || fees < 2 {
		t.Errorf("receipt records models %v and %d settlements with fees", served, fees)
	}
	out, code, stderr := cliExit(t, bin, "--home", home, "audit", "verify", receipt, "--json")
	var rep provenance.Report
	if err := json.Unmarshal([]byte(lastLine(out)), &rep); err != nil || code != 0 || !rep.OK || !rep.Complete {
		t.Fatalf("audit verify: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	t.Logf("receipt: %d events, models %v; audit verify OK", len(rep.Stages), served)
}

// pacedTraffic posts a prediction every 20 ms and counts, per model
// version, the answers that succeeded (what the tenant owes for).
type pacedTraffic struct {
	url                string
	mu                 sync.Mutex
	answered           map[string]int64 // model version → successful answers
	failed, wrongLabel int64
}

func (pt *pacedTraffic) run(ctx context.Context) {
	cl := &http.Client{Timeout: 5 * time.Second}
	versions := map[string]string{"1": "1.0.0", "2": "1.1.0"} // the spec version each release serves
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pt.url, strings.NewReader(`{"text":"great service"}`))
		resp, err := cl.Do(req)
		if ctx.Err() != nil {
			return
		}
		pt.mu.Lock()
		switch {
		case err != nil:
			pt.failed++
		default:
			var a struct{ Label, Version string }
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode >= 500 || json.Unmarshal(b, &a) != nil {
				pt.failed++
				break
			}
			pt.answered[versions[a.Version]]++
			if a.Label != "negative" {
				pt.wrongLabel++
			}
		}
		pt.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}
