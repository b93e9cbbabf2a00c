package activities

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/worker"

	"github.com/accordmesh/accord/internal/names"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workflows"
)

// ProviderRegistry is what failover and spot checks need of the provider
// agents' registry (market/agents.Registry): liveness by heartbeat and
// the reputation the control plane keeps.
type ProviderRegistry interface {
	// LastSeen reports when the agent last beat and whether that is
	// fresh now; ok false when no agent of that name ever beat.
	LastSeen(name string) (last time.Time, fresh, ok bool)
	Penalize(name, key, reason string) (float64, error)
}

// ExcludingNegotiator negotiates without some providers (name -> why).
type ExcludingNegotiator interface {
	NegotiateExcluding(ctx context.Context, jobID string, plan *specs.Plan, exclude map[string]string) (Award, error)
}

// DisputeLedger moves a held job to another provider and slashes a spot
// check's minority; both idempotent (settlement.Ledger's keys).
type DisputeLedger interface {
	Reassign(ctx context.Context, r settlement.ReassignRequest) (*settlement.Reassignment, error)
	Slash(ctx context.Context, r settlement.SlashRequest) (*settlement.Slash, error)
}

// ErrNoRegistry refuses failover and spot checks on a worker without the
// provider agents' registry or a ledger that can reassign and slash.
var ErrNoRegistry = errors.New("activities: no provider registry or dispute ledger")

// RegisterFailover registers the failover and spot-check activities (job
// layout 6) on the control worker.
func (a *Activities) RegisterFailover(w worker.ActivityRegistry) {
	workflows.ProviderLive.Register(w, a.ProviderLive)
	workflows.Renegotiate.Register(w, a.Renegotiate)
	workflows.Reassign.Register(w, a.Reassign)
	workflows.SlashProvider.Register(w, a.SlashProvider)
}

// ProviderLive reports whether a provider agent's heartbeat is fresh. It
// only reads.
func (a *Activities) ProviderLive(ctx context.Context, in workflows.ProviderLiveInput) (workflows.ProviderLiveOutput, error) {
	if a.Providers == nil {
		return workflows.ProviderLiveOutput{}, permanent(workflows.ErrTypeExecution, ErrNoRegistry)
	}
	if err := names.Provider(in.Provider); err != nil {
		return workflows.ProviderLiveOutput{}, permanent(workflows.ErrTypeExecution, fmt.Errorf("provider live: %w", err))
	}
	last, fresh, ok := a.Providers.LastSeen(in.Provider)
	out := workflows.ProviderLiveOutput{Live: fresh, LastSeen: last}
	switch {
	case !ok:
		out.Reason = "no heartbeat was ever received"
	case !fresh:
		out.Reason = "heartbeat stopped; last seen " + last.UTC().Format(time.RFC3339)
	}
	a.logger(ctx, in.JobID).Info("provider liveness", "provider", in.Provider, "live", out.Live, "last_seen", last)
	return out, nil
}

// Renegotiate penalizes the lost provider, if any, then runs the market
// without the excluded providers, and grants the winner's agent the job's
// plan and inputs in the artifact store (and the right to push its
// outputs). The penalty is idempotent by (job, N, provider); the
// negotiation is pure, as Negotiate's, and grants are idempotent, so a
// retry is harmless. No provider left is a permanent ErrTypeNoOffers.
func (a *Activities) Renegotiate(ctx context.Context, in workflows.RenegotiateInput) (workflows.RenegotiateOutput, error) {
	neg, ok := a.Negotiator.(ExcludingNegotiator)
	if !ok {
		return workflows.RenegotiateOutput{}, permanent(workflows.ErrTypeNoOffers, errors.New("renegotiate: the negotiator cannot exclude providers"))
	}
	if len(in.Exclude) > 64 || len(in.Keep) > 64 {
		return workflows.RenegotiateOutput{}, permanent(workflows.ErrTypeInvalidSpec, fmt.Errorf("renegotiate: %d providers excluded and %d kept, at most 64 each", len(in.Exclude), len(in.Keep)))
	}
	plan, err := a.plan(ctx, in.PlanInput)
	if err != nil {
		return workflows.RenegotiateOutput{}, err
	}
	var out workflows.RenegotiateOutput
	if in.Lost != "" {
		if a.Providers == nil {
			return out, permanent(workflows.ErrTypeExecution, ErrNoRegistry)
		}
		key := in.JobID + "/lost/" + strconv.Itoa(in.N) + "/" + in.Lost
		if out.Reputation, err = a.Providers.Penalize(in.Lost, key, in.LostReason); err != nil {
			return out, fmt.Errorf("renegotiate %s: penalize %s: %w", in.JobID, in.Lost, err)
		}
	}
	// A failover or spot check places what it renegotiates whole: the
	// job, or the lost part's tasks.
	aw, err := neg.NegotiateExcluding(ctx, in.JobID, WholePlan(plan, in.Tasks), in.Exclude)
	if err != nil {
		if errors.Is(err, ErrNoOffers) {
			return out, permanent(workflows.ErrTypeNoOffers, err)
		}
		return out, fmt.Errorf("renegotiate %s: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("renegotiated", "provider", aw.Provider, "price", aw.Price, "lost", in.Lost, "excluded", len(in.Exclude))
	out.Award = negotiated(aw)
	// The new provider's agent reads the job's plan and inputs, and pushes
	// its outputs, through the artifact store: grant them as placement
	// does (the failover's replacement, or the spot check's checker),
	// beside the agents of a split job's other parts.
	if err := a.grantAgent(ctx, workflows.PlaceInput{JobID: in.JobID, PlanInput: in.PlanInput, Award: out.Award}, plan, in.Keep...); err != nil {
		return out, fmt.Errorf("renegotiate %s: %w", in.JobID, err)
	}
	return out, nil
}

// Reassign makes the held job payable to in.To: the provider that took
// over (failover) or the spot check's majority. Idempotent by the ledger's
// key (job, reassign, N).
func (a *Activities) Reassign(ctx context.Context, in workflows.ReassignInput) (workflows.ReassignOutput, error) {
	l, ok := a.Ledger.(DisputeLedger)
	if !ok {
		return workflows.ReassignOutput{}, permanent(workflows.ErrTypeExecution, ErrNoRegistry)
	}
	r, err := l.Reassign(ctx, settlement.ReassignRequest{Job: in.JobID, From: in.From, To: in.To, N: in.N, Reason: in.Reason})
	if errors.Is(err, settlement.ErrBadRequest) || errors.Is(err, settlement.ErrKeyReused) {
		return workflows.ReassignOutput{}, permanent(workflows.ErrTypeExecution, err)
	}
	if err != nil {
		return workflows.ReassignOutput{}, fmt.Errorf("reassign %s: %w", in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("reassigned", "from", in.From, "to", in.To, "reason", in.Reason)
	return workflows.ReassignOutput{Record: record(r)}, nil
}

// SlashProvider carries out a spot check's verdict against in.Provider:
// the slash its agreed terms set, out of its bond to the tenant, and a
// reputation penalty. Idempotent: the ledger's key (job, slash-provider)
// and the penalty's key (job/spot/provider).
func (a *Activities) SlashProvider(ctx context.Context, in workflows.SlashInput) (workflows.SlashOutput, error) {
	l, ok := a.Ledger.(DisputeLedger)
	if !ok || a.Providers == nil {
		return workflows.SlashOutput{}, permanent(workflows.ErrTypeExecution, ErrNoRegistry)
	}
	req := settlement.SlashRequest{Job: in.JobID, Provider: in.Provider, Reason: in.Reason}
	if in.Terms != nil {
		req.Stake, req.SlashPercent = in.Terms.Stake, in.Terms.SlashPercent
	}
	s, err := l.Slash(ctx, req)
	if errors.Is(err, settlement.ErrBadRequest) || errors.Is(err, settlement.ErrKeyReused) {
		return workflows.SlashOutput{}, permanent(workflows.ErrTypeExecution, err)
	}
	if err != nil {
		return workflows.SlashOutput{}, fmt.Errorf("slash %s in %s: %w", in.Provider, in.JobID, err)
	}
	rep, err := a.Providers.Penalize(in.Provider, in.JobID+"/spot/"+in.Provider, in.Reason)
	if err != nil {
		return workflows.SlashOutput{}, fmt.Errorf("slash %s in %s: penalize: %w", in.Provider, in.JobID, err)
	}
	a.logger(ctx, in.JobID).Info("slashed", "provider", in.Provider, "amount", s.Slashed, "reason", in.Reason)
	return workflows.SlashOutput{Slashed: s.Slashed, Currency: s.Currency, Reputation: rep, Record: record(s)}, nil
}

// NegotiateExcluding implements ExcludingNegotiator over the broker.
func (m MarketNegotiator) NegotiateExcluding(ctx context.Context, jobID string, plan *specs.Plan, exclude map[string]string) (Award, error) {
	return m.negotiate(ctx, jobID, plan, exclude)
}

// Reassign implements DisputeLedger.
func (s SettlementLedger) Reassign(ctx context.Context, r settlement.ReassignRequest) (*settlement.Reassignment, error) {
	return s.L.Reassign(ctx, r)
}

// Slash implements DisputeLedger.
func (s SettlementLedger) Slash(ctx context.Context, r settlement.SlashRequest) (*settlement.Slash, error) {
	return s.L.Slash(ctx, r)
}
