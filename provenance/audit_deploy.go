package provenance

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/accordmesh/accord/provenance/predicate"
)

// A deployment's receipt holds its events (DeploymentStage 1, 2, …) instead
// of a job's stages. Verify checks each envelope, statement and log entry as
// for a job, and then the chain: events numbered 1..n with none missing,
// each linking the previous envelope, start first and stop (if any) last,
// signed by the operator or the provider the start event names; and the
// figures: each period held once and settled once against that hold, the
// charge recomputed from the metered replica time and rate, the SLA refund,
// fee split and slash from the period's windows, each window's and gate's
// verdict from its measurements, a promotion only after a passed gate, and
// the stop's totals equal to the settlements'.

// isDeploymentReceipt reports whether r holds a deployment's events.
func isDeploymentReceipt(r *Receipt) bool {
	if len(r.Attestations) == 0 {
		return false
	}
	_, ok := DeploymentSeq(r.Attestations[0].Stage)
	return ok
}

// runDeployment verifies a deployment's receipt.
func (a *auditor) runDeployment(opts VerifyOptions) {
	var prevDigest string
	var events []*DeploymentPredicate
	var signed []signedStage
	for i, att := range a.r.Attestations {
		stage := att.Stage
		if stage == "" {
			stage = fmt.Sprintf("#%d", i)
		}
		envDigest := Digest(att.Envelope)
		sr := StageReport{Stage: stage, Digest: envDigest}
		switch seq, ok := DeploymentSeq(att.Stage); {
		case !ok:
			a.fail(stage, "chain", "%q is not a deployment event", att.Stage)
		case seq != i+1:
			a.fail(stage, "chain", "event %d at position %d: events missing or out of order", seq, i+1)
		}
		if att.JobID != "" && att.JobID != a.r.JobID {
			a.fail(stage, "job", "attestation is for %s, receipt is for %s", att.JobID, a.r.JobID)
		}
		if att.Digest != "" && att.Digest != envDigest {
			a.fail(stage, "envelope", "recorded digest %s does not match the envelope (%s)", att.Digest, envDigest)
		}
		payload, signer := a.envelope(stage, att)
		sr.Signer = signer
		if payload != nil {
			signed = append(signed, signedStage{stage: stage, report: i, keyID: signer})
			if ev := a.deploymentEvent(stage, att.Stage, payload, i, prevDigest); ev != nil {
				events = append(events, ev)
			}
		}
		a.entry(stage, att, payload, &sr)
		a.rep.Stages = append(a.rep.Stages, sr)
		prevDigest = envDigest
	}
	a.deploymentSigners(signed, events, opts.Parties)
	(&deployChecker{a: a}).run(events)
	a.witnessed(opts)
	n := len(events)
	a.rep.Complete = n > 0 && n == len(a.r.Attestations) && events[n-1].Event == DeployStop
	if !a.rep.Complete && !opts.AllowIncomplete {
		a.fail(DeploymentStage(len(a.r.Attestations)+1), "chain", "the deployment's stop event is missing (a deployment still running needs --allow-incomplete)")
	}
}

// Deployment event kinds (predicate.DeployStart, …).
const (
	DeployStart    = predicate.DeployStart
	DeployHold     = predicate.DeployHold
	DeploySettle   = predicate.DeploySettle
	DeployWindow   = predicate.DeployWindow
	DeployCanary   = predicate.DeployCanary
	DeployGate     = predicate.DeployGate
	DeployPromote  = predicate.DeployPromote
	DeployRollback = predicate.DeployRollback
	DeployStop     = predicate.DeployStop
)

// deploymentEvent checks one event's statement and chain link.
func (a *auditor) deploymentEvent(stage, want string, payload []byte, i int, prevDigest string) *DeploymentPredicate {
	st := a.statement(stage, want, payload)
	if st == nil {
		return nil
	}
	h, _ := st.Header()
	switch {
	case i == 0 && h.Previous != "":
		a.fail(stage, "chain", "first event links a previous envelope %s", h.Previous)
	case i > 0 && h.Previous != prevDigest:
		a.fail(stage, "chain", "previous digest %s does not match the previous event's envelope (%s)", orNone(h.Previous), prevDigest)
	}
	var p DeploymentPredicate
	if err := st.DecodePredicate(&p); err != nil {
		a.fail(stage, "statement", "%v", err)
		return nil
	}
	if p.Stage != want || DeploymentStage(p.Seq) != want {
		a.fail(stage, "statement", "event seq %d does not match its stage %s", p.Seq, want)
	}
	return &p
}

// deploymentSigners checks each event was signed by the operator or the
// provider the start event names (or a key trusted for ScopeStage unless
// parties).
func (a *auditor) deploymentSigners(signed []signedStage, events []*DeploymentPredicate, parties bool) {
	allowed := []string{ScopeOperator}
	if len(events) > 0 && events[0].Start != nil && events[0].Start.Provider != "" {
		allowed = append(allowed, ProviderScope(events[0].Start.Provider))
	}
	if !parties {
		allowed = append(allowed, ScopeStage)
	}
	for _, s := range signed {
		if party := a.party(s, allowed); party != "" {
			a.rep.Stages[s.report].Party = party
			continue
		}
		a.fail(s.stage, "signer", "must be signed by %s, signed by key %s (%s)", strings.Join(allowed, " or "), s.keyID, a.scopesOf(s.keyID))
	}
}

// deployChecker cross-checks a deployment's figures.
type deployChecker struct {
	a        *auditor
	start    *DeploymentPredicate
	holds    map[int]int64 // period → held
	settled  map[int]bool
	breached map[int]bool // period → an SLA window in it breached
	passed   map[int]bool // release → its gate passed
	spent    int64
	refunded int64
	slashed  int64
	models   map[int]*predicate.ServedModel // release → the model it serves
}

func (c *deployChecker) fail(ev *DeploymentPredicate, format string, args ...any) {
	c.a.fail(ev.Stage, "amounts", format, args...)
}

func (c *deployChecker) run(events []*DeploymentPredicate) {
	c.holds, c.settled, c.breached, c.passed = map[int]int64{}, map[int]bool{}, map[int]bool{}, map[int]bool{}
	c.models = map[int]*predicate.ServedModel{}
	for i, ev := range events {
		if (i == 0) != (ev.Event == DeployStart) {
			c.a.fail(ev.Stage, "chain", "event %s: a deployment's first event, and only it, is start", ev.Event)
		}
		if ev.Event == DeployStop && i != len(events)-1 {
			c.a.fail(ev.Stage, "chain", "events follow the stop event")
		}
		c.event(ev)
	}
}

func (c *deployChecker) event(ev *DeploymentPredicate) {
	var missing bool
	switch ev.Event {
	case DeployStart:
		missing = ev.Start == nil
		c.start = ev
		c.model(ev)
	case DeployHold:
		missing = ev.Hold == nil
		if !missing {
			c.hold(ev)
		}
	case DeploySettle:
		missing = ev.Settle == nil
		if !missing {
			c.settle(ev)
		}
	case DeployWindow:
		missing = ev.Window == nil
		if !missing {
			c.window(ev)
		}
	case DeployCanary:
		missing = ev.Canary == nil
		c.model(ev)
	case DeployGate:
		missing = ev.Gate == nil
		if !missing {
			c.gate(ev)
		}
	case DeployPromote:
		if !c.passed[ev.Release] {
			c.a.fail(ev.Stage, "chain", "release r%d promoted without a passed gate", ev.Release)
		}
	case DeployRollback:
	case DeployStop:
		missing = ev.Stop == nil
		if !missing {
			c.stop(ev)
		}
	default:
		c.a.fail(ev.Stage, "statement", "unknown deployment event %q", ev.Event)
	}
	if missing {
		c.a.fail(ev.Stage, "statement", "%s event without its %s record", ev.Event, ev.Event)
	}
}

func (c *deployChecker) hold(ev *DeploymentPredicate) {
	h := ev.Hold
	if _, dup := c.holds[h.Period]; dup {
		c.fail(ev, "period %d held twice", h.Period)
	}
	if want := fmt.Sprintf("%s-p%d", c.a.r.JobID, h.Period); h.Job != want {
		c.fail(ev, "period %d held as ledger job %s, want %s", h.Period, h.Job, want)
	}
	if h.Held < h.Price || h.Price < 0 {
		c.fail(ev, "period %d: held %d is less than its price %d", h.Period, h.Held, h.Price)
	}
	c.holds[h.Period] = h.Held
}

func (c *deployChecker) settle(ev *DeploymentPredicate) {
	s := ev.Settle
	held, ok := c.holds[s.Period]
	switch {
	case !ok:
		c.fail(ev, "period %d settled but never held", s.Period)
	case s.Held != held:
		c.fail(ev, "period %d settled %d held, the hold was %d", s.Period, s.Held, held)
	}
	if c.settled[s.Period] {
		c.fail(ev, "period %d settled twice", s.Period)
	}
	c.settled[s.Period] = true
	if c.start != nil && c.start.Start != nil && s.ReplicaHour != c.start.Start.ReplicaHour {
		c.fail(ev, "period %d at %d per replica-hour, negotiated %d", s.Period, s.ReplicaHour, c.start.Start.ReplicaHour)
	}
	if s.Breached != c.breached[s.Period] {
		c.fail(ev, "period %d settled as breached=%t, its SLA windows say %t", s.Period, s.Breached, c.breached[s.Period])
	}
	fees, capped := c.inferences(ev)
	metered, ok := meter(s.ReplicaMillis, s.ReplicaHour)
	if !ok {
		c.fail(ev, "period %d: replica time %d ms at %d does not meter", s.Period, s.ReplicaMillis, s.ReplicaHour)
	} else if want := min(metered, s.Held-fees); s.Charge != want {
		c.fail(ev, "period %d: charge %d, %d replica-ms at %d per replica-hour capped at held %d less model fees %d gives %d", s.Period, s.Charge, s.ReplicaMillis, s.ReplicaHour, s.Held, fees, want)
	} else if capped = capped || metered > s.Held-fees; len(s.Inferences) > 0 && capped != s.Capped {
		c.fail(ev, "period %d: capped=%t, the fees and the charge against held %d give %t", s.Period, s.Capped, s.Held, capped)
	}
	refund, slash := 0, 0
	if s.Breached {
		refund, slash = s.RefundPercent, s.SlashPercent
	}
	if want := s.Charge * int64(refund) / 100; s.SLARefund != want {
		c.fail(ev, "period %d: SLA refund %d, want %d %% of %d = %d", s.Period, s.SLARefund, refund, s.Charge, want)
	}
	payable := s.Charge - s.SLARefund
	if s.PlatformFee < 0 || s.ProviderPay < 0 || s.ProviderPay+s.PlatformFee != payable {
		c.fail(ev, "period %d: provider %d + fee %d is not the payable %d", s.Period, s.ProviderPay, s.PlatformFee, payable)
	}
	if s.Refund != s.Held-fees-payable {
		c.fail(ev, "period %d: refund %d, held %d less model fees %d less payable %d is %d", s.Period, s.Refund, s.Held, fees, payable, s.Held-fees-payable)
	}
	if most := s.Stake * int64(slash) / 100; s.Slashed < 0 || s.Slashed > most {
		c.fail(ev, "period %d: slashed %d, at most %d %% of stake %d = %d", s.Period, s.Slashed, slash, s.Stake, most)
	}
	c.spent += payable + fees
	c.refunded += s.SLARefund
	c.slashed += s.Slashed
}

// measuredOK checks the success share follows from the counts.
func (c *deployChecker) measuredOK(ev *DeploymentPredicate, m Measured) {
	want := int64(10000)
	if m.Requests > 0 {
		want = (m.Requests - m.Errors) * 10000 / m.Requests
	}
	if m.Requests < 0 || m.Errors < 0 || m.Errors > m.Requests || m.SuccessBP != want {
		c.a.fail(ev.Stage, "measurements", "%d requests, %d errors: success %d bp, want %d", m.Requests, m.Errors, m.SuccessBP, want)
	}
}

func (c *deployChecker) window(ev *DeploymentPredicate) {
	w := ev.Window
	c.measuredOK(ev, w.Measured)
	m, t := w.Measured, w.Terms
	breach := m.Requests > 0 && ((t.AvailabilityBP > 0 && m.SuccessBP < int64(t.AvailabilityBP)) || (t.P95Latency > 0 && m.P95 > t.P95Latency))
	if breach != w.Breached {
		c.a.fail(ev.Stage, "verdict", "window %d judged breached=%t; its measurements against its terms give %t", w.N, w.Breached, breach)
	}
	if w.Breached {
		c.breached[w.Period] = true
	}
}

func (c *deployChecker) gate(ev *DeploymentPredicate) {
	g := ev.Gate
	c.measuredOK(ev, g.Measured)
	m := g.Measured
	pass := m.Requests >= int64(g.Gates.MinRequests) && m.SuccessBP >= int64(g.Gates.MinSuccessBP) &&
		(g.Gates.MaxP95 <= 0 || m.P95 <= g.Gates.MaxP95)
	if pass != g.Passed {
		c.a.fail(ev.Stage, "verdict", "gate of r%d judged passed=%t; its measurements against its gates give %t", ev.Release, g.Passed, pass)
	}
	if g.Passed {
		c.passed[ev.Release] = true
	}
}

func (c *deployChecker) stop(ev *DeploymentPredicate) {
	s := ev.Stop
	if s.Spent != c.spent || s.Refunded != c.refunded || s.Slashed != c.slashed || s.Periods != len(c.settled) {
		c.fail(ev, "stop totals spent %d, refunded %d, slashed %d over %d periods; the settlements give %d, %d, %d over %d",
			s.Spent, s.Refunded, s.Slashed, s.Periods, c.spent, c.refunded, c.slashed, len(c.settled))
	}
	var open []int
	for p := range c.holds {
		if !c.settled[p] {
			open = append(open, p)
		}
	}
	slices.Sort(open)
	if len(open) > 0 {
		c.fail(ev, "periods %v held and never settled", open)
	}
}

// model records the registry model a release serves (start: release 1;
// canary: the update's release) and checks its price is its split's sum.
func (c *deployChecker) model(ev *DeploymentPredicate) {
	m := ev.Model
	if m == nil {
		return
	}
	var sum int64
	for _, sh := range m.Shares {
		if sh.Amount <= 0 || sh.Amount > settlementMaxAmount {
			c.fail(ev, "model %s: share %+v", m.Ref, sh)
			return
		}
		sum += sh.Amount
	}
	if sum != m.PerInference {
		c.fail(ev, "model %s: one inference's shares add up to %d, its price is %d", m.Ref, sum, m.PerInference)
	}
	c.models[ev.Release] = m
}

// settlementMaxAmount is the ledger's largest amount (settlement.MaxAmount).
const settlementMaxAmount = 1_000_000_000_000_000

// inferences recomputes a period's per-inference model fees: each
// release's requests × the price its model recorded when it started, each
// owner paid requests × its share of one inference, paid in order from the
// escrow and cut to what it held. It returns the total paid and whether
// the escrow cut a share.
func (c *deployChecker) inferences(ev *DeploymentPredicate) (int64, bool) {
	s := ev.Settle
	var owed []predicate.ModelShare
	for _, f := range s.Inferences {
		rel, err := strconv.Atoi(strings.TrimPrefix(f.Release, "r"))
		m := c.models[rel]
		switch {
		case err != nil || !strings.HasPrefix(f.Release, "r") || m == nil:
			c.fail(ev, "period %d: inferences of %s, which serves no recorded model", s.Period, f.Release)
			return s.ModelFeeTotal, s.Capped
		case f.Model != m.Ref || f.Digest != m.Digest || f.Price != m.PerInference || !slices.Equal(f.Shares, m.Shares):
			c.fail(ev, "period %d: %s billed as %s %s at %d, it serves %s %s at %d", s.Period, f.Release, f.Model, f.Digest, f.Price, m.Ref, m.Digest, m.PerInference)
		case f.Requests < 0:
			c.fail(ev, "period %d: %s: %d requests", s.Period, f.Release, f.Requests)
			return s.ModelFeeTotal, s.Capped
		}
		for _, sh := range m.Shares {
			amt, ok := mulAmount(f.Requests, sh.Amount)
			if !ok {
				c.fail(ev, "period %d: %s: %d requests × %d exceed the ledger's largest amount", s.Period, f.Release, f.Requests, sh.Amount)
				return s.ModelFeeTotal, s.Capped
			}
			if amt > 0 {
				owed = append(owed, predicate.ModelShare{Owner: sh.Owner, Model: sh.Model, Amount: amt})
			}
		}
	}
	var paid []predicate.ModelShare
	for _, f := range s.ModelFees {
		paid = append(paid, f.Shares...)
	}
	var total int64
	capped := false
	for i, o := range owed {
		amt := min(o.Amount, s.Held-total)
		capped = capped || amt < o.Amount
		total += amt
		if i >= len(paid) || paid[i].Owner != o.Owner || paid[i].Model != o.Model || paid[i].Amount != amt {
			c.fail(ev, "period %d: model fee share %d paid %+v, owed %s %d for %s (of %d)", s.Period, i, at(paid, i), o.Owner, amt, o.Model, o.Amount)
			return s.ModelFeeTotal, s.Capped
		}
	}
	if len(paid) != len(owed) || total != s.ModelFeeTotal {
		c.fail(ev, "period %d: model fees paid %d in %d shares, recomputed %d in %d", s.Period, s.ModelFeeTotal, len(paid), total, len(owed))
	}
	return total, capped
}

func at(s []predicate.ModelShare, i int) any {
	if i < len(s) {
		return s[i]
	}
	return "nothing"
}

// mulAmount multiplies two non-negative amounts, failing past the ledger's
// largest amount.
func mulAmount(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > settlementMaxAmount {
		return 0, false
	}
	return int64(lo), true
}
