package workflows

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/runtimes"
	"github.com/accordmesh/accord/services"
	"github.com/accordmesh/accord/specs"
)

// The deployment workflow's layouts, versioned from its first release like
// the job's (docs/workflows.md): a change to the commands it issues goes
// behind workflow.GetVersion(ctx, deploymentChange, …) with a new
// constant, and testdata/deployment_*_layoutN.json keeps the histories.
const (
	deploymentChange = "deployment-layout"

	// deployLayout1: negotiate (the spec's replica-hour price, one
	// provider: the services host), open the endpoint, hold period 0,
	// start replicas, then a tick per probe period: check replicas,
	// restart dead ones, route, gate the canary, cut SLA windows, settle
	// periods; continue-as-new with the state.
	deployLayout1 workflow.Version = 1

	// deployLayout2: every event that moves money or traffic is attested
	// (deploy.Attest on the services queue, one statement per event,
	// chained): start, each period's hold and settlement, each SLA window,
	// a canary taking traffic, its gate with the measured figures, promote,
	// rollback, stop.
	deployLayout2 workflow.Version = 2

	// deployLayoutServedModel: a service's registry model is resolved per
	// release (deploy.ResolveModel: pinned, verified, fetched, priced)
	// before its replicas start, and every replica mounts it; the start
	// and canary events record it. Each period cuts the endpoint's
	// billing stream before the next hold (whose price gains twice the
	// period's inference fees) and settles the releases' successful
	// requests × their model's per-inference price with the period.
	deployLayoutServedModel workflow.Version = 3

	deployLayoutLatest = deployLayoutServedModel
)

// DeploymentCurrentLayout names the recorded deployment histories.
const DeploymentCurrentLayout = int(deployLayoutLatest)

// Deployment loop bounds.
const (
	// continueAfterEvents continues-as-new well under Temporal's history
	// limits (10,240 events warn, 51,200 fail).
	continueAfterEvents = 4000
	// continueAfterTicks bounds one run's ticks (about ten events each)
	// whatever the server reports.
	continueAfterTicks = 300
	// routeEvery re-applies the routes at least every so many ticks, so a
	// restarted services host gets them back.
	routeEvery = 10
	// graceRetryEvery retries a failed top-up every so many ticks.
	graceRetryEvery = 5
	stopGrace       = 5 * time.Second
)

var deployRetry = &temporal.RetryPolicy{
	InitialInterval:    500 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    10 * time.Second,
	MaximumAttempts:    5,
}

// Deployment is the deployment workflow: negotiate → place → start
// replicas → wait ready → serve, with canary updates, rollbacks, restarts,
// per-period settlement and SLA windows, until stopped.
func Deployment(ctx workflow.Context, in DeploymentInput) (DeploymentState, error) {
	d := &deployer{in: in, layout: workflow.GetVersion(ctx, deploymentChange, deployLayout1, deployLayoutLatest)}
	if err := workflow.SetQueryHandler(ctx, QueryDeployment, func() (DeploymentState, error) { return d.st, nil }); err != nil {
		return DeploymentState{}, err
	}
	d.update = workflow.GetSignalChannel(ctx, SignalDeployUpdate)
	d.rollback = workflow.GetSignalChannel(ctx, SignalDeployRollback)
	d.stop = workflow.GetSignalChannel(ctx, SignalDeployStop)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: TaskQueueServices, StartToCloseTimeout: 2 * time.Minute, RetryPolicy: deployRetry,
	})
	if in.State != nil {
		d.st = *in.State
		d.st.Runs++
		if err := d.reopen(ctx); err != nil {
			return d.st, err
		}
	} else if err := d.begin(ctx); err != nil {
		d.event(ctx, "failed", "%s", err.Error())
		d.teardown(ctx, "start failed: "+err.Error())
		return d.st, err
	}
	for {
		if err := d.wait(ctx); err != nil {
			return d.st, err
		}
		if d.st.Phase == PhaseStopped {
			return d.st, nil
		}
		info := workflow.GetInfo(ctx)
		if info.GetCurrentHistoryLength() > continueAfterEvents || info.GetContinueAsNewSuggested() || d.ticks >= continueAfterTicks {
			if d.pending() {
				continue
			}
			st := d.st
			return DeploymentState{}, workflow.NewContinueAsNewError(ctx, Deployment, DeploymentInput{
				ID: in.ID, Tenant: in.Tenant, Currency: in.Currency, Budget: in.Budget, Release: in.Release, State: &st,
			})
		}
	}
}

type deployer struct {
	in                     DeploymentInput
	layout                 workflow.Version
	st                     DeploymentState
	update, rollback, stop workflow.ReceiveChannel
	lastRoute              string
	ticks                  int // in this run
	// fees caches the open period's inference fees between its cut (before
	// the next hold) and its settlement, in the same tick.
	fees       []services.InferenceFee
	feesPeriod int
	feesCut    bool
}

func (d *deployer) svc() specs.Service { return d.st.Stable.Service }

func (d *deployer) event(ctx workflow.Context, kind, format string, args ...any) {
	d.st.Events = appendBounded(d.st.Events, Event{At: workflow.Now(ctx), Kind: kind, Msg: fmt.Sprintf(format, args...)}, maxEvents)
}

func appendBounded[T any](s []T, v T, n int) []T {
	s = append(s, v)
	if len(s) > n {
		s = slices.Clone(s[len(s)-n:])
	}
	return s
}

// begin negotiates, opens the endpoint, holds the first period and starts
// the stable release's replicas.
func (d *deployer) begin(ctx workflow.Context) error {
	in := d.in
	now := workflow.Now(ctx)
	rel := in.Release
	rel.N, rel.Created = 1, now
	d.st = DeploymentState{ID: in.ID, Tenant: in.Tenant, Currency: in.Currency, Budget: in.Budget,
		Phase: PhaseStarting, Stable: rel, Releases: 1, PeriodStart: now, WindowStart: now, LastTick: now}
	// Negotiation: one provider (the services host) at the tenant's
	// replica-hour price.
	d.st.Rate = rel.Service.Billing.ReplicaHour
	d.event(ctx, "negotiated", "%d %s per replica-hour, %d replicas, billing every %s", d.st.Rate, in.Currency, rel.Service.Replicas, rel.Service.Billing.Period)
	ep, err := OpenEndpoint.Run(ctx, services.EndpointRequest{Deployment: in.ID})
	if err != nil {
		return fmt.Errorf("open endpoint: %w", err)
	}
	d.st.Endpoint = ep.Addr
	d.event(ctx, "placed", "endpoint %s at %s", rel.Service.Endpoint, ep.Addr)
	if err := d.resolveModel(ctx, &d.st.Stable); err != nil {
		return err
	}
	rel = d.st.Stable
	if err := d.attest(ctx, predicate.Deployment{Event: predicate.DeployStart, Release: rel.N, Version: rel.Version, Start: d.startRecord(),
		Model: servedModel(rel.Model)}); err != nil {
		return err
	}
	held, ok, err := d.hold(ctx, 0)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("escrow: the tenant cannot fund the first billing period")
	}
	d.st.Held = held
	for slot := range rel.Service.Replicas {
		if err := d.startReplica(ctx, rel, slot, false); err != nil {
			return err
		}
	}
	return nil
}

// reopen re-opens the endpoint after continue-as-new (the host may have
// restarted) and forgets the applied routes so the next tick re-applies them.
func (d *deployer) reopen(ctx workflow.Context) error {
	ep, err := OpenEndpoint.Run(ctx, services.EndpointRequest{Deployment: d.st.ID})
	if err != nil {
		return fmt.Errorf("open endpoint: %w", err)
	}
	d.st.Endpoint = ep.Addr
	d.lastRoute = ""
	return nil
}

// hold tops up the escrow for period n and returns the amount held; false
// when the tenant or the budget cannot fund it.
func (d *deployer) hold(ctx workflow.Context, n int) (int64, bool, error) {
	s := d.svc()
	price := services.PeriodCharge(s.Replicas, s.Billing.Period, d.st.Rate)
	if d.layout >= deployLayoutServedModel && n > 0 {
		// Inference fees are paid from the same escrow: hold twice what
		// the last period's requests cost.
		price = min(price+2*d.st.LastModelFees, services.MaxAmount)
	}
	margin := int64(0)
	if s.Billing.Period > 0 {
		margin = int64(s.Billing.Grace * 10_000 / s.Billing.Period)
	}
	if d.st.Budget > 0 && d.st.Spent+price+price*margin/10_000 > d.st.Budget {
		d.event(ctx, "escrow", "period %d: budget %d would be exceeded (spent %d, period %d)", n, d.st.Budget, d.st.Spent, price)
		return 0, false, nil
	}
	r, err := HoldPeriod.Run(ctx, services.HoldPeriodRequest{Deployment: d.st.ID, Period: n, Tenant: d.st.Tenant,
		Currency: d.st.Currency, Price: price, MarginBP: margin})
	if err != nil {
		return 0, false, fmt.Errorf("hold period %d: %w", n, err)
	}
	if r.Insufficient {
		d.event(ctx, "escrow", "period %d: the tenant cannot fund %d %s", n, price, d.st.Currency)
		return 0, false, nil
	}
	d.event(ctx, "held", "period %d: %d %s in escrow (%s)", n, r.Held, d.st.Currency, r.Job)
	if err := d.attest(ctx, predicate.Deployment{Event: predicate.DeployHold, Hold: &predicate.PeriodHold{
		Period: n, Job: r.Job, Price: price, MarginBP: margin, Held: r.Held, Transaction: r.Transaction}}); err != nil {
		return 0, false, err
	}
	return r.Held, true, nil
}

func replicaID(dep string, rel, slot, gen int) string {
	return fmt.Sprintf("%s-r%d-s%d-g%d", dep, rel, slot, gen)
}

// startReplica starts a fresh replica in slot for release rel.
func (d *deployer) startReplica(ctx workflow.Context, rel ServiceRelease, slot int, canary bool) error {
	return d.launch(ctx, rel, slot, 0, canary)
}

// launch starts a replica under the next generation number: replica IDs
// are never reused within a deployment.
func (d *deployer) launch(ctx workflow.Context, rel ServiceRelease, slot, restarts int, canary bool) error {
	s := rel.Service
	gen := d.st.NextGen
	d.st.NextGen++
	id := replicaID(d.st.ID, rel.N, slot, gen)
	info, err := StartReplica.Run(ctx, services.ReplicaRequest{
		Deployment: d.st.ID, ID: id, Version: rel.Label(), Image: s.Image, Command: s.Command, Env: s.Env, Port: s.Port,
		Resources: runtimes.Resources{MilliCPU: s.Resources.MilliCPU, MemoryBytes: s.Resources.MemoryBytes,
			DiskBytes: s.Resources.DiskBytes, GPUs: s.Resources.GPU.Count, GPUModel: s.Resources.GPU.Model},
		Labels: map[string]string{"release": rel.Label()}, Model: replicaModel(rel.Model),
	})
	if err != nil {
		return fmt.Errorf("start replica %s: %w", id, err)
	}
	d.st.Replicas = append(d.st.Replicas, ReplicaState{ID: id, Release: rel.N, Slot: slot, Gen: gen, Addr: info.Addr,
		Canary: canary, State: string(info.State), Restarts: restarts, Started: workflow.Now(ctx)})
	d.event(ctx, "started", "replica %s (%s %s) at %s", id, rel.Label(), rel.Version, info.Addr)
	return nil
}

// wait blocks until the next tick or a signal, and handles it.
func (d *deployer) wait(ctx workflow.Context) error {
	tctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	timer := workflow.NewTimer(tctx, d.tickPeriod())
	sel := workflow.NewSelector(ctx)
	var err error
	sel.AddFuture(timer, func(workflow.Future) { err = d.tick(ctx) })
	sel.AddReceive(d.update, func(c workflow.ReceiveChannel, _ bool) {
		var u UpdateRequest
		c.Receive(ctx, &u)
		err = d.onUpdate(ctx, u)
	})
	sel.AddReceive(d.rollback, func(c workflow.ReceiveChannel, _ bool) {
		var r ReasonRequest
		c.Receive(ctx, &r)
		err = d.rollbackNow(ctx, "requested: "+r.Reason)
	})
	sel.AddReceive(d.stop, func(c workflow.ReceiveChannel, _ bool) {
		var r ReasonRequest
		c.Receive(ctx, &r)
		d.teardown(ctx, "stopped: "+r.Reason)
	})
	sel.Select(ctx)
	return err
}

// pending reports whether a signal waits (never continue-as-new over one).
func (d *deployer) pending() bool {
	return d.update.Len() > 0 || d.rollback.Len() > 0 || d.stop.Len() > 0
}

func (d *deployer) tickPeriod() time.Duration {
	s := d.svc()
	p := min(s.Readiness.Period, s.Liveness.Period)
	if d.st.Canary != nil {
		p = min(p, d.st.Canary.Service.Readiness.Period)
	}
	return max(p, 100*time.Millisecond)
}

// tick meters, checks replicas, restarts dead ones, routes, and advances
// the rollout, the SLA window and the billing period.
func (d *deployer) tick(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	d.meter(now)
	d.st.Ticks++
	d.ticks++
	if err := d.check(ctx); err != nil {
		return err
	}
	if err := d.route(ctx, false); err != nil {
		return err
	}
	if err := d.advanceRollout(ctx, now); err != nil {
		return err
	}
	if err := d.retire(ctx); err != nil {
		return err
	}
	if err := d.window(ctx, now); err != nil {
		return err
	}
	return d.billing(ctx, now)
}

// meter adds the time since the last tick of every running replica.
func (d *deployer) meter(now time.Time) {
	el := now.Sub(d.st.LastTick)
	d.st.LastTick = now
	if el <= 0 {
		return
	}
	for _, r := range d.st.Replicas {
		if r.State == string(runtimes.StateRunning) || r.State == string(runtimes.StatePending) {
			d.st.PeriodMillis += el.Milliseconds()
		}
	}
}

func (d *deployer) release(n int) *ServiceRelease {
	switch {
	case d.st.Stable.N == n:
		return &d.st.Stable
	case d.st.Canary != nil && d.st.Canary.N == n:
		return d.st.Canary
	case d.st.Previous != nil && d.st.Previous.N == n:
		return d.st.Previous
	}
	return nil
}

// check probes every replica and restarts the dead.
func (d *deployer) check(ctx workflow.Context) error {
	if len(d.st.Replicas) == 0 {
		return nil
	}
	s := d.svc()
	req := services.CheckRequest{
		Readiness: services.ProbeSpec{Path: s.Readiness.Path, Timeout: s.Readiness.Timeout},
		Liveness:  services.ProbeSpec{Path: s.Liveness.Path, Timeout: s.Liveness.Timeout},
	}
	for _, r := range d.st.Replicas {
		req.Replicas = append(req.Replicas, services.ReplicaInfo{ID: r.ID, Addr: r.Addr})
	}
	hs, err := CheckReplicas.Run(ctx, req)
	if err != nil {
		return fmt.Errorf("check replicas: %w", err)
	}
	var dead []int
	for i := range d.st.Replicas {
		if i >= len(hs) || hs[i].ID != d.st.Replicas[i].ID {
			continue
		}
		if d.observe(&d.st.Replicas[i], hs[i]) {
			dead = append(dead, i)
		}
	}
	return d.restart(ctx, dead)
}

// observe applies one health reading; it reports whether the replica must
// be restarted.
func (d *deployer) observe(r *ReplicaState, h services.Health) bool {
	rel := d.release(r.Release)
	if rel == nil {
		return false
	}
	p, l := rel.Service.Readiness, rel.Service.Liveness
	r.State = string(h.State)
	if runtimes.State(h.State).Terminal() {
		r.Ready = false
		return true
	}
	if h.Ready {
		r.OKs, r.Fails = r.OKs+1, 0
		if r.OKs >= p.SuccessThreshold {
			r.Ready = true
		}
	} else if h.State == runtimes.StateRunning {
		r.OKs, r.Fails = 0, r.Fails+1
		if r.Fails >= p.FailureThreshold {
			r.Ready = false
		}
	}
	// Liveness counts once the replica has been ready: a replica still
	// starting is not dead.
	switch {
	case h.Alive:
		r.Dead = 0
	case r.Served:
		r.Dead++
	}
	if r.Ready {
		r.Served = true
	}
	return r.Dead >= l.FailureThreshold
}

// restart replaces each dead replica with its next generation.
func (d *deployer) restart(ctx workflow.Context, idx []int) error {
	if len(idx) == 0 {
		return nil
	}
	var ids []string
	var next []ReplicaState
	for _, i := range idx {
		ids = append(ids, d.st.Replicas[i].ID)
		next = append(next, d.st.Replicas[i])
	}
	if _, err := StopReplicas.Run(ctx, services.StopRequest{IDs: ids, Grace: stopGrace}); err != nil {
		return fmt.Errorf("stop dead replicas: %w", err)
	}
	d.st.Replicas = slices.DeleteFunc(d.st.Replicas, func(r ReplicaState) bool { return slices.Contains(ids, r.ID) })
	for _, r := range next {
		rel := d.release(r.Release)
		d.event(ctx, "restart", "replica %s is %s; restarting (restart %d)", r.ID, r.State, r.Restarts+1)
		if err := d.launch(ctx, *rel, r.Slot, r.Restarts+1, r.Canary); err != nil {
			return err
		}
		if r.Canary && r.Restarts+1 > rel.Service.Rollback.MaxRestarts && rel.Service.Rollback.Automatic {
			return d.rollbackNow(ctx, fmt.Sprintf("canary restarted %d times", r.Restarts+1))
		}
	}
	return nil
}

// routes is the split the ready replicas allow.
func (d *deployer) routes() services.Routes {
	var rt services.Routes
	newReady := 0
	for _, r := range d.st.Replicas {
		if r.Ready && !r.Canary && !r.Retiring && r.Release == d.st.Stable.N {
			newReady++
		}
	}
	for _, r := range d.st.Replicas {
		if !r.Ready {
			continue
		}
		b := services.Backend{ID: r.ID, Addr: r.Addr, Version: "r" + fmt.Sprint(r.Release)}
		switch {
		case r.Canary:
			rt.Canary = append(rt.Canary, b)
		case r.Retiring:
			if newReady < d.svc().Replicas {
				rt.Stable = append(rt.Stable, b)
			}
		default:
			rt.Stable = append(rt.Stable, b)
		}
	}
	if d.st.Canary != nil && len(rt.Canary) > 0 {
		rt.CanaryPercent = d.st.Canary.Service.Rollout.CanaryPercent
	}
	return rt
}

func routeKey(rt services.Routes) string {
	var b strings.Builder
	for _, x := range rt.Stable {
		b.WriteString(x.ID + "," + x.Addr + ";")
	}
	b.WriteString("|")
	for _, x := range rt.Canary {
		b.WriteString(x.ID + "," + x.Addr + ";")
	}
	return fmt.Sprintf("%s|%d", b.String(), rt.CanaryPercent)
}

// route applies the split when it changed (or every routeEvery ticks).
func (d *deployer) route(ctx workflow.Context, force bool) error {
	if d.st.Phase == PhaseStopped {
		return nil
	}
	rt := d.routes()
	key := routeKey(rt)
	if !force && key == d.lastRoute && d.st.Ticks%routeEvery != 0 {
		return nil
	}
	if _, err := RouteEndpoint.Run(ctx, services.RouteRequest{Deployment: d.st.ID, Routes: rt}); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	if key != d.lastRoute {
		d.event(ctx, "routes", "%d stable, %d canary at %d%%", len(rt.Stable), len(rt.Canary), rt.CanaryPercent)
	}
	d.lastRoute, d.st.Routes = key, rt
	if d.st.Phase == PhaseStarting && len(rt.Stable) == d.svc().Replicas {
		d.st.Phase = PhaseServing
		d.event(ctx, "serving", "all %d replicas ready", len(rt.Stable))
	}
	return nil
}

// onUpdate starts a canary of the new release.
func (d *deployer) onUpdate(ctx workflow.Context, u UpdateRequest) error {
	if d.st.Phase == PhaseStopping || d.st.Phase == PhaseStopped {
		return nil
	}
	if d.st.Canary != nil {
		if err := d.rollbackNow(ctx, "superseded by update "+u.Version); err != nil {
			return err
		}
	}
	rel := ServiceRelease{N: d.st.Releases + 1, Version: u.Version, SpecDigest: u.SpecDigest, Service: u.Service, Created: workflow.Now(ctx)}
	if err := d.resolveModel(ctx, &rel); err != nil {
		// A model that does not resolve or verify refuses the update; the
		// stable release serves on.
		d.event(ctx, "update", "release %s (%s) refused: %v", rel.Label(), rel.Version, err)
		return nil
	}
	d.st.Releases++
	d.st.Canary = &rel
	d.st.CanaryStarted, d.st.CanaryCreated = time.Time{}, workflow.Now(ctx)
	d.st.Phase = PhaseCanary
	d.event(ctx, "update", "release %s (%s): canary at %d%% for %s", rel.Label(), rel.Version, rel.Service.Rollout.CanaryPercent, rel.Service.Rollout.Duration)
	return d.startReplica(ctx, rel, 0, true)
}

// advanceRollout opens the canary's gate window once it is ready and
// judges it when the window ends.
func (d *deployer) advanceRollout(ctx workflow.Context, now time.Time) error {
	c := d.st.Canary
	if c == nil {
		return nil
	}
	ro := c.Service.Rollout
	routed := len(d.st.Routes.Canary) > 0
	if d.st.CanaryStarted.IsZero() {
		if routed {
			// The gate window starts when the canary takes traffic.
			if _, err := MeasureWindow.Run(ctx, services.MeasureRequest{Deployment: d.st.ID, Stream: "rollout", Key: c.Label() + "-open"}); err != nil {
				return fmt.Errorf("open canary window: %w", err)
			}
			d.st.CanaryStarted = now
			d.event(ctx, "canary", "%s takes traffic; gate window of %s opens", c.Label(), ro.Duration)
			return d.attest(ctx, predicate.Deployment{Event: predicate.DeployCanary, Release: c.N, Version: c.Version, Model: servedModel(c.Model),
				Canary: &predicate.CanaryStart{Percent: ro.CanaryPercent, Duration: ro.Duration, Gates: gates(ro)}})
		} else if now.Sub(d.st.CanaryCreated) > ro.Duration {
			return d.rollbackNow(ctx, "canary never became ready")
		}
		return nil
	}
	if now.Sub(d.st.CanaryStarted) < ro.Duration {
		return nil
	}
	w, err := MeasureWindow.Run(ctx, services.MeasureRequest{Deployment: d.st.ID, Stream: "rollout", Key: c.Label() + "-gate"})
	if err != nil {
		return fmt.Errorf("measure canary: %w", err)
	}
	st := w.Versions[c.Label()]
	reason := gate(ro, st)
	res := RolloutResult{Release: c.N, Promoted: reason == "", Reason: reason, Canary: st, At: now}
	d.st.Rollouts = appendBounded(d.st.Rollouts, res, maxRollouts)
	if err := d.attest(ctx, predicate.Deployment{Event: predicate.DeployGate, Release: c.N, Version: c.Version, Reason: reason,
		Gate: &predicate.GateVerdict{Measured: measured(st), Gates: gates(ro), Passed: reason == ""}}); err != nil {
		return err
	}
	if reason == "" {
		return d.promote(ctx, st)
	}
	if !c.Service.Rollback.Automatic {
		d.event(ctx, "gate", "%s failed its gates (%s); automatic rollback is off", c.Label(), reason)
		d.st.CanaryStarted = now // judge again after another window
		return nil
	}
	return d.rollbackNow(ctx, "gate: "+reason)
}

// gate returns why a canary's window fails the rollout's gates, or "".
func gate(ro specs.Rollout, st services.Stats) string {
	switch {
	case st.Requests < int64(ro.MinRequests):
		return fmt.Sprintf("%d requests, fewer than the %d the gates need", st.Requests, ro.MinRequests)
	case st.SuccessBP < int64(ro.MinSuccessBP):
		return fmt.Sprintf("success %s%% below %s%%", bpString(st.SuccessBP), bpString(int64(ro.MinSuccessBP)))
	case ro.MaxP95 > 0 && st.P95 > ro.MaxP95:
		return fmt.Sprintf("p95 %s above %s", st.P95, ro.MaxP95)
	}
	return ""
}

func bpString(bp int64) string { return fmt.Sprintf("%d.%02d", bp/100, bp%100) }

// promote makes the canary's release stable: the canary becomes a stable
// replica, the other slots start on the new release, and the old
// release's replicas retire once the new ones are ready.
func (d *deployer) promote(ctx workflow.Context, st services.Stats) error {
	c := *d.st.Canary
	old := d.st.Stable
	d.st.Previous, d.st.Stable, d.st.Canary = &old, c, nil
	d.st.Phase = PhasePromote
	d.event(ctx, "promote", "%s (%s) promoted: %d requests, success %s%%, p95 %s", c.Label(), c.Version, st.Requests, bpString(st.SuccessBP), st.P95)
	if err := d.attest(ctx, predicate.Deployment{Event: predicate.DeployPromote, Release: c.N, Version: c.Version}); err != nil {
		return err
	}
	for i := range d.st.Replicas {
		r := &d.st.Replicas[i]
		if r.Release == c.N {
			r.Canary = false
		} else {
			r.Retiring = true
		}
	}
	for slot := 1; slot < c.Service.Replicas; slot++ {
		if err := d.startReplica(ctx, c, slot, false); err != nil {
			return err
		}
	}
	return d.route(ctx, true)
}

// retire stops the old release's replicas once the new ones all serve.
func (d *deployer) retire(ctx workflow.Context) error {
	if d.st.Phase != PhasePromote {
		return nil
	}
	ready := 0
	var old []string
	for _, r := range d.st.Replicas {
		switch {
		case r.Retiring:
			old = append(old, r.ID)
		case r.Ready && r.Release == d.st.Stable.N:
			ready++
		}
	}
	if ready < d.svc().Replicas {
		return nil
	}
	// Take them out of the routes first, then stop them.
	d.st.Replicas = slices.DeleteFunc(d.st.Replicas, func(r ReplicaState) bool { return r.Retiring })
	if err := d.route(ctx, true); err != nil {
		return err
	}
	if _, err := StopReplicas.Run(ctx, services.StopRequest{IDs: old, Grace: stopGrace}); err != nil {
		return fmt.Errorf("stop old replicas: %w", err)
	}
	d.st.Phase = PhaseServing
	d.event(ctx, "promoted", "%s serves on all %d replicas; stopped %d old", d.st.Stable.Label(), ready, len(old))
	return nil
}

// rollbackNow drops the canary, or after a promotion returns to the
// previous release.
func (d *deployer) rollbackNow(ctx workflow.Context, reason string) error {
	switch {
	case d.st.Canary != nil:
		c := d.st.Canary
		var ids []string
		for _, r := range d.st.Replicas {
			if r.Release == c.N {
				ids = append(ids, r.ID)
			}
		}
		d.st.Replicas = slices.DeleteFunc(d.st.Replicas, func(r ReplicaState) bool { return r.Release == c.N })
		d.st.Canary = nil
		if err := d.route(ctx, true); err != nil {
			return err
		}
		if _, err := StopReplicas.Run(ctx, services.StopRequest{IDs: ids, Grace: stopGrace}); err != nil {
			return fmt.Errorf("stop canary: %w", err)
		}
		if n := len(d.st.Rollouts); n == 0 || d.st.Rollouts[n-1].Release != c.N {
			d.st.Rollouts = appendBounded(d.st.Rollouts, RolloutResult{Release: c.N, Reason: reason, At: workflow.Now(ctx)}, maxRollouts)
		}
		d.st.Phase = PhaseServing
		d.event(ctx, "rollback", "%s (%s) rolled back: %s", c.Label(), c.Version, reason)
		return d.attest(ctx, predicate.Deployment{Event: predicate.DeployRollback, Release: c.N, Version: c.Version, Reason: reason})
	case d.st.Previous != nil:
		prev := *d.st.Previous
		cur := d.st.Stable
		d.st.Stable, d.st.Previous = prev, nil
		d.st.Phase = PhasePromote
		for i := range d.st.Replicas {
			d.st.Replicas[i].Retiring = d.st.Replicas[i].Release != prev.N
		}
		for slot := range prev.Service.Replicas {
			if err := d.startReplica(ctx, prev, slot, false); err != nil {
				return err
			}
		}
		d.event(ctx, "rollback", "returning from %s (%s) to %s (%s): %s", cur.Label(), cur.Version, prev.Label(), prev.Version, reason)
		return d.attest(ctx, predicate.Deployment{Event: predicate.DeployRollback, Release: cur.N, Version: cur.Version, Reason: reason})
	default:
		d.event(ctx, "rollback", "nothing to roll back (%s)", reason)
	}
	return nil
}

// window closes the SLA window when it ends and judges it.
func (d *deployer) window(ctx workflow.Context, now time.Time) error {
	sla := d.svc().SLA
	if sla.Window <= 0 || now.Sub(d.st.WindowStart) < sla.Window {
		return nil
	}
	w, err := MeasureWindow.Run(ctx, services.MeasureRequest{Deployment: d.st.ID, Stream: "sla", Key: fmt.Sprintf("w%d", d.st.Window)})
	if err != nil {
		return fmt.Errorf("measure SLA window %d: %w", d.st.Window, err)
	}
	sw := SLAWindow{N: d.st.Window, Period: d.st.Period, Stats: w.Total, Unrouted: w.Unrouted}
	sw.Reasons = slaBreaches(d.svc().SLA, w.Total)
	sw.Breached = len(sw.Reasons) > 0
	d.st.Windows = appendBounded(d.st.Windows, sw, maxWindows)
	if sw.Breached {
		d.st.PeriodBreached = true
		d.st.PeriodReasons = append(d.st.PeriodReasons, sw.Reasons...)
		d.event(ctx, "sla", "window %d breached: %s", sw.N, strings.Join(sw.Reasons, "; "))
	}
	d.st.Window++
	d.st.WindowStart = now
	return d.attest(ctx, predicate.Deployment{Event: predicate.DeployWindow, Window: &predicate.SLAWindow{
		N: sw.N, Period: sw.Period, Measured: measured(w.Total), Unrouted: w.Unrouted, Terms: slaTerms(sla),
		Breached: sw.Breached, Reasons: sw.Reasons}})
}

// slaBreaches lists the terms a window missed.
func slaBreaches(t specs.ServiceSLA, st services.Stats) []string {
	var out []string
	if t.AvailabilityBP > 0 && st.Requests > 0 && st.SuccessBP < int64(t.AvailabilityBP) {
		out = append(out, fmt.Sprintf("availability %s%% below %s%%", bpString(st.SuccessBP), bpString(int64(t.AvailabilityBP))))
	}
	if t.P95Latency > 0 && st.Requests > 0 && st.P95 > t.P95Latency {
		out = append(out, fmt.Sprintf("p95 %s above %s", st.P95, t.P95Latency))
	}
	return out
}

// billing settles the period when it ends, after topping up the next one;
// when the top-up fails the deployment serves for the grace period, then
// stops (the current period's hold includes the grace margin).
func (d *deployer) billing(ctx workflow.Context, now time.Time) error {
	b := d.svc().Billing
	if now.Sub(d.st.PeriodStart) < b.Period {
		return nil
	}
	if d.st.Phase == PhaseGrace {
		if !now.Before(d.st.GraceUntil) {
			d.teardown(ctx, "escrow dry: grace period over")
			return nil
		}
		if d.st.Ticks%graceRetryEvery != 0 {
			return nil
		}
	}
	if err := d.cutFees(ctx); err != nil {
		return err
	}
	held, ok, err := d.hold(ctx, d.st.Period+1)
	if err != nil {
		return err
	}
	if !ok {
		if d.st.Phase != PhaseGrace {
			d.st.GraceUntil = now.Add(b.Grace)
			d.st.Phase = PhaseGrace
			d.event(ctx, "grace", "escrow dry: serving until %s, then stopping", d.st.GraceUntil.Format(time.RFC3339))
		}
		return nil
	}
	if d.st.Phase == PhaseGrace {
		d.st.Phase, d.st.GraceUntil = PhaseServing, time.Time{}
	}
	if err := d.settle(ctx); err != nil {
		return err
	}
	d.st.Period++
	d.st.PeriodStart, d.st.Held = now, held
	return nil
}

// settle settles the current period with what was metered in it.
func (d *deployer) settle(ctx workflow.Context) error {
	s := d.svc()
	req := services.SettlePeriodRequest{Deployment: d.st.ID, Period: d.st.Period, ReplicaMillis: d.st.PeriodMillis,
		ReplicaHour: d.st.Rate, Breached: d.st.PeriodBreached, Reasons: d.st.PeriodReasons}
	if d.st.PeriodBreached {
		req.RefundPercent, req.SlashPercent, req.Stake = s.SLA.RefundPercent, s.SLA.SlashPercent, s.SLA.Stake
	}
	if err := d.cutFees(ctx); err != nil {
		return err
	}
	req.Inferences = d.fees
	ps, err := SettlePeriod.Run(ctx, req)
	if err != nil {
		return fmt.Errorf("settle period %d: %w", d.st.Period, err)
	}
	d.st.Settlements = appendBounded(d.st.Settlements, ps, maxSettlements)
	d.st.Spent += ps.Charge - ps.SLARefund + ps.ModelFeeTotal
	d.st.ModelFees += ps.ModelFeeTotal
	d.prunePins()
	d.feesCut = false
	d.st.Refunded += ps.SLARefund
	d.st.Slashed += ps.Slashed
	d.st.PeriodMillis, d.st.PeriodBreached, d.st.PeriodReasons, d.st.Held = 0, false, nil, 0
	d.event(ctx, "settled", "period %d: charge %d, model fees %d, SLA refund %d, slashed %d, refund %d (%s)", req.Period, ps.Charge, ps.ModelFeeTotal, ps.SLARefund, ps.Slashed, ps.Refund, ps.Key)
	d.st.Settled++
	return d.attest(ctx, predicate.Deployment{Event: predicate.DeploySettle, Reason: strings.Join(req.Reasons, "; "), Settle: &predicate.PeriodSettlement{
		Period: req.Period, Job: ps.Job, ReplicaMillis: req.ReplicaMillis, ReplicaHour: req.ReplicaHour,
		Breached: req.Breached, Reasons: req.Reasons, RefundPercent: req.RefundPercent, SlashPercent: req.SlashPercent, Stake: req.Stake,
		Held: ps.Held, Charge: ps.Charge, SLARefund: ps.SLARefund, ProviderPay: ps.ProviderPay, PlatformFee: ps.PlatformFee,
		Refund: ps.Refund, Slashed: ps.Slashed, Transaction: ps.Transaction, Key: ps.Key,
		Inferences: inferenceRecords(req.Inferences), ModelFees: paidRecords(ps.ModelFees), ModelFeeTotal: ps.ModelFeeTotal, Capped: ps.Capped}})
}

// teardown drains the endpoint, stops every replica, settles the open
// period and closes the endpoint. Compensations run on a disconnected
// context so a cancelled workflow still cleans up.
func (d *deployer) teardown(ctx workflow.Context, reason string) {
	if d.st.Phase == PhaseStopped {
		return
	}
	ctx, _ = workflow.NewDisconnectedContext(ctx)
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		TaskQueue: TaskQueueServices, StartToCloseTimeout: 2 * time.Minute,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second},
	})
	d.st.Phase, d.st.StopReason = PhaseStopping, reason
	d.event(ctx, "stop", "%s", reason)
	d.meter(workflow.Now(ctx))
	if d.st.Endpoint != "" {
		if _, err := RouteEndpoint.Run(ctx, services.RouteRequest{Deployment: d.st.ID}); err != nil {
			d.event(ctx, "error", "drain: %v", err)
		}
	}
	var ids []string
	for _, r := range d.st.Replicas {
		ids = append(ids, r.ID)
	}
	if len(ids) > 0 {
		if _, err := StopReplicas.Run(ctx, services.StopRequest{IDs: ids, Grace: stopGrace}); err != nil {
			d.event(ctx, "error", "stop replicas: %v", err)
		}
	}
	d.st.Replicas, d.st.Canary, d.st.Routes = nil, nil, services.Routes{}
	if d.st.Held > 0 {
		if err := d.settle(ctx); err != nil {
			d.event(ctx, "error", "final settlement: %v", err)
		}
	}
	if d.st.Endpoint != "" {
		if _, err := CloseEndpoint.Run(ctx, services.EndpointRequest{Deployment: d.st.ID}); err != nil {
			d.event(ctx, "error", "close endpoint: %v", err)
		}
	}
	d.st.Phase = PhaseStopped
	d.event(ctx, "stopped", "deployment stopped; spent %d %s", d.st.Spent, d.st.Currency)
	if d.st.Attested > 0 {
		if err := d.attest(ctx, predicate.Deployment{Event: predicate.DeployStop, Reason: reason, Stop: &predicate.DeploymentStop{
			Spent: d.st.Spent, Refunded: d.st.Refunded, Slashed: d.st.Slashed, Periods: d.st.Settled}}); err != nil {
			d.event(ctx, "error", "%v", err)
		}
	}
}
