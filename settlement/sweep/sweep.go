// Package sweep settles or refunds escrow that no workflow will: a job's
// money is held at placement and released by its workflow, but a workflow
// that was terminated, timed out, reset or lost (or whose worker state is
// gone) leaves the escrow held forever. A sweep finds escrow held longer than
// a minimum age (the ledger's own record, [settlement.Ledger.HeldEscrows])
// whose workflow is closed or unknown, and
//
//   - settles it when the job's execution is attested (a signed, trusted
//     execution stage in the provenance store, [Attestations]) and its
//     verification is not attested as failed: the negotiated price plus the
//     attested metered usage at the provider's rates, under the SLA terms the
//     provider agreed to, less the platform fee, the rest refunded: work
//     done is paid. A split job (job layout 10) is settled per part: each
//     provider that ran a part is paid on the usage it signed for its own
//     tasks, under its own terms, and nothing is paid unless every part's
//     signed statement verifies;
//   - refunds it otherwise: nothing attested, nothing paid.
//
// Quota follows the money: consumed by what was paid, or released.
//
// # Racing the workflow
//
// A sweep posts through the same ledger calls as the workflow's activities,
// with the same idempotency keys (settlement.Key(job, "settle"|"release",
// 1)). The ledger moves a job's escrow only while the job is held, in the
// database transaction that claims the key, so whichever of the sweep and a
// late workflow (a reset one, say) posts first wins and the other posts
// nothing (settlement.ErrJobState, settlement.ErrKeyReused, or a release that
// finds nothing held). A sweep that loses is dropped; the workflow attests
// its own settlement.
//
// # Crashes
//
// Each decision is journalled in the ledger ([settlement.Ledger.RecordSweep])
// before it is posted and marked with its attestation's digest after the
// attestation is logged. A pass first finishes every pending sweep (whose
// workflow has not been revived): it replays the journalled request (the ledger returns the original
// transaction, with Replayed set) and attests it (the recorder returns the
// envelope already stored for the stage). So a crash between posting and
// attesting is attested by the next pass, and a second sweep of a finished
// job does nothing: the job is no longer held and its sweep is attested.
//
// The package never imports Temporal: the workflow's state comes through
// [JobStates], which workers/jobclient implements over the Temporal client.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
)

// State is what a job's workflow is doing, as far as a sweep cares.
type State string

// Workflow states.
const (
	// Running: the workflow will settle or release the escrow itself.
	Running State = "running"
	// Closed: the workflow ended (completed, failed, cancelled, terminated,
	// timed out) and will not touch the escrow again.
	Closed State = "closed"
	// NotFound: no workflow has the job's ID (history deleted by
	// retention, another namespace, a lost cluster).
	NotFound State = "not-found"
)

// JobStates answers whether a job's workflow still runs.
type JobStates interface {
	JobState(ctx context.Context, jobID string) (State, error)
}

// Quota holds tenants' quota reservations (policies.Store implements it);
// both calls are idempotent by job ID.
type Quota interface {
	Release(ctx context.Context, jobID string) error
	Consume(ctx context.Context, jobID string, spend int64, gpuHours float64) error
}

// Attestor signs and logs a stage statement, idempotent by (job, stage):
// provenance.Recorder.
type Attestor interface {
	Attest(ctx context.Context, req provenance.AttestRequest) (*provenance.Attestation, error)
}

// Defaults.
const (
	// DefaultAfter is the minimum age of a hold before it is swept: far
	// longer than any stage's retries, so that a live workflow always acts
	// first.
	DefaultAfter = 24 * time.Hour
	// DefaultEvery is how often a worker sweeps.
	DefaultEvery = time.Hour
	// MinAfter is the smallest accepted minimum age.
	MinAfter = time.Minute
)

// Sweeper settles or refunds abandoned escrow. Ledger, Jobs, Evidence and
// Attestor are required.
type Sweeper struct {
	Ledger   *settlement.Ledger
	Jobs     JobStates
	Evidence Evidence
	Attestor Attestor
	Quota    Quota // optional
	// After is the minimum age of a hold (default DefaultAfter).
	After time.Duration
	// FeeBP and Rates are the platform fee and the providers' metered
	// rates, as the workflow's settle activity uses them (nil Rates: the
	// price alone).
	FeeBP int64
	Rates func(provider string) settlement.Rates
	Now   func() time.Time // default time.Now
	Log   *slog.Logger     // default slog.Default()
}

// Actions a sweep reports.
const (
	ActionSettle   = settlement.SweepSettle  // metered work paid, the rest refunded
	ActionRelease  = settlement.SweepRelease // the whole escrow refunded
	ActionReattest = "reattest"              // a crashed sweep's posting attested
	ActionLost     = "lost"                  // the workflow settled or released first
)

// Action is what a sweep did (or, in a dry run, would do) for one job.
type Action struct {
	Job      string    `json:"job"`
	Tenant   string    `json:"tenant"`
	Provider string    `json:"provider"`
	Currency string    `json:"currency"`
	Held     int64     `json:"held"`
	Since    time.Time `json:"since"`
	Workflow State     `json:"workflow,omitempty"`
	Action   string    `json:"action"`
	Reason   string    `json:"reason"`
	// Basis says what the decision rests on (attested execution or not).
	Basis       string `json:"basis,omitempty"`
	Paid        int64  `json:"paid"`
	Refunded    int64  `json:"refunded"`
	Attestation string `json:"attestation,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Report is one sweep pass.
type Report struct {
	DryRun  bool     `json:"dry_run"`
	After   string   `json:"after"`
	Actions []Action `json:"actions"`
	// Examined counts the holds older than After; Running those whose
	// workflow still runs (left alone).
	Examined   int `json:"examined"`
	Running    int `json:"running"`
	Settled    int `json:"settled"`
	Released   int `json:"released"`
	Reattested int `json:"reattested"`
	Lost       int `json:"lost"`
	Failed     int `json:"failed"`
}

// ErrConfig reports a sweeper without its required parts.
var ErrConfig = errors.New("sweep: invalid configuration")

func (s *Sweeper) check() error {
	switch {
	case s.Ledger == nil || s.Jobs == nil || s.Evidence == nil || s.Attestor == nil:
		return fmt.Errorf("%w: ledger, job states, evidence and attestor are required", ErrConfig)
	case s.After != 0 && s.After < MinAfter:
		return fmt.Errorf("%w: minimum age %s is under %s", ErrConfig, s.After, MinAfter)
	}
	return nil
}

func (s *Sweeper) after() time.Duration {
	if s.After == 0 {
		return DefaultAfter
	}
	return s.After
}

func (s *Sweeper) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Sweeper) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// Sweep runs one pass: it finishes pending sweeps, then settles or refunds
// every hold older than After whose workflow is closed or not found. A dry
// run decides and reports but posts, journals and attests nothing. Errors
// for one job are reported in its Action (and counted in Failed); the
// returned error is for failing to read the ledger at all.
func (s *Sweeper) Sweep(ctx context.Context, dryRun bool) (Report, error) {
	if err := s.check(); err != nil {
		return Report{}, err
	}
	r := Report{DryRun: dryRun, After: s.after().String(), Actions: []Action{}}
	pending, err := s.Ledger.PendingSweeps(ctx)
	if err != nil {
		return r, err
	}
	inPending := map[string]bool{}
	for _, sw := range pending {
		inPending[sw.Job] = true
		a := actionOf(sw)
		a.Action = ActionReattest
		// A workflow revived since (a reset) is left to act first; the
		// sweep finishes once it has closed again.
		if st, err := s.Jobs.JobState(ctx, sw.Job); err != nil {
			a.Error = fmt.Sprintf("workflow state: %v", err)
		} else if st == Running {
			r.Running++
			continue
		} else if !dryRun {
			a = s.finish(ctx, sw, a)
		}
		r.add(a)
	}
	held, err := s.Ledger.HeldEscrows(ctx, s.now().Add(-s.after()), 0)
	if err != nil {
		return r, err
	}
	for _, h := range held {
		if inPending[h.Job] {
			continue
		}
		r.Examined++
		if a, ok := s.sweepOne(ctx, h, dryRun); ok {
			r.add(a)
		} else {
			r.Running++
		}
	}
	return r, nil
}

func (r *Report) add(a Action) {
	switch {
	case a.Error != "":
		r.Failed++
	case a.Action == ActionSettle:
		r.Settled++
	case a.Action == ActionRelease:
		r.Released++
	case a.Action == ActionReattest:
		r.Reattested++
	case a.Action == ActionLost:
		r.Lost++
	}
	r.Actions = append(r.Actions, a)
}

// sweepOne decides and (unless dryRun) carries out the sweep of one hold;
// ok is false when the workflow still runs and the hold is left alone.
func (s *Sweeper) sweepOne(ctx context.Context, h settlement.HeldEscrow, dryRun bool) (Action, bool) {
	a := Action{Job: h.Job, Tenant: h.Tenant, Provider: h.Provider, Currency: h.Currency, Held: h.Held, Since: h.Since}
	state, err := s.Jobs.JobState(ctx, h.Job)
	if err != nil {
		a.Error = fmt.Sprintf("workflow state: %v", err)
		return a, true
	}
	if state == Running {
		return a, false
	}
	a.Workflow = state
	sw, basis, err := s.decide(ctx, h, state)
	a.Action, a.Reason, a.Basis = sw.Kind, sw.Reason, basis
	if err != nil {
		a.Error = err.Error()
		return a, true
	}
	if dryRun {
		a.Paid, a.Refunded = s.estimate(sw)
		return a, true
	}
	if sw, err = s.Ledger.RecordSweep(ctx, sw); err != nil {
		a.Error = err.Error()
		return a, true
	}
	return s.finish(ctx, sw, a), true
}

// estimate is a dry run's paid and refunded: exact for a release, the
// metered charge before SLA and capping for a settle.
func (s *Sweeper) estimate(sw settlement.Sweep) (paid, refunded int64) {
	if sw.Settle == nil {
		return 0, sw.Escrow.Held
	}
	charge, ok := metered(sw.Settle.Price, sw.Settle.Usage, sw.Settle.Rates)
	for _, p := range sw.Settle.Parts {
		c, pok := metered(p.Price, p.Usage, p.Rates)
		charge, ok = charge+c, ok && pok
	}
	if !ok {
		return 0, sw.Escrow.Held
	}
	paid = min(charge, sw.Escrow.Held)
	return paid, sw.Escrow.Held - paid
}

// metered is price plus the metered charge of usage at rates; ok is false
// when the usage cannot be metered.
func metered(price int64, u settlement.Usage, r settlement.Rates) (int64, bool) {
	m, err := settlement.Meter(u, r)
	if err != nil {
		return 0, false
	}
	return price + m.Total, true
}

func actionOf(sw settlement.Sweep) Action {
	h := sw.Escrow
	return Action{Job: sw.Job, Tenant: h.Tenant, Provider: h.Provider, Currency: h.Currency, Held: h.Held, Since: h.Since,
		Action: sw.Kind, Reason: sw.Reason}
}

// Reason is the attested reason of a sweep in workflow state st.
func Reason(st State) string {
	if st == NotFound {
		return "swept: workflow not found"
	}
	return "swept: workflow " + string(st)
}

// Run sweeps at once and then every every (default DefaultEvery) until ctx
// ends, logging each pass that did or failed anything.
func (s *Sweeper) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultEvery
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r, err := s.Sweep(ctx, false)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log().Warn("sweep: pass failed", "err", err)
		case r.Failed > 0:
			s.log().Warn("sweep: pass done with failures", "settled", r.Settled, "released", r.Released,
				"reattested", r.Reattested, "lost", r.Lost, "failed", r.Failed)
		case len(r.Actions) > 0:
			s.log().Info("sweep: pass done", "settled", r.Settled, "released", r.Released,
				"reattested", r.Reattested, "lost", r.Lost)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
