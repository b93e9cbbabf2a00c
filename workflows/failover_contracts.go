package workflows

import (
	"encoding/json"
	"time"

	"github.com/accordmesh/accord/provenance/predicate"
	"github.com/accordmesh/accord/settlement/sla"
)

// The contract of failover and spot checks (layout 6): the control-plane
// activities that check a provider's liveness, renegotiate without some
// providers, move a held job to another provider and slash a spot check's
// minority.

// ErrTypeProviderLost marks a provider abandoned mid-job: its queue was not
// served within ProviderLossTimeout and its heartbeat had stopped.
const ErrTypeProviderLost = "AccordProviderLost"

// ProviderLossTimeout is how long a provider agent's execution activity
// may wait on its queue for the agent to pick it up (ScheduleToStart,
// layout 6) before the workflow asks whether the agent is alive; an agent
// lost mid-task is found after its heartbeat timeout plus this.
const ProviderLossTimeout = time.Minute

// maxLiveWaits bounds how many ProviderLossTimeout windows a task waits on
// a provider that still heartbeats but does not serve its queue: after
// them it is abandoned as lost.
const maxLiveWaits = 30

// maxFailovers bounds the failovers of one job.
const maxFailovers = 3

// ProviderLiveInput / ProviderLiveOutput: is a provider agent alive (its
// last heartbeat fresh)? Read-only.
type ProviderLiveInput struct {
	JobID    string `json:"job_id"`
	Provider string `json:"provider"`
}

type ProviderLiveOutput struct {
	Live     bool      `json:"live"`
	LastSeen time.Time `json:"last_seen,omitzero"`
	Reason   string    `json:"reason,omitempty"`
}

// RenegotiateInput / RenegotiateOutput: negotiate again without the
// providers in Exclude (name -> why). Lost, when set, is a provider
// abandoned mid-job: it is penalized once per (job, N) before the market
// runs, so its reputation is lower for this and every later negotiation.
// Like Negotiate, the negotiation is a pure function of the plan and the
// offers; only the award the workflow records counts.
type RenegotiateInput struct {
	JobID string `json:"job_id"`
	PlanInput
	Exclude    map[string]string `json:"exclude"`
	Lost       string            `json:"lost,omitempty"`
	LostReason string            `json:"lost_reason,omitempty"`
	// N numbers the job's renegotiations from 1 (the penalty's key).
	N int `json:"n"`
	// Tasks, for a split job's part (layout 10), limits the negotiation
	// to the part's tasks, placed whole; empty: the whole job.
	Tasks []string `json:"tasks,omitempty"`
	// Keep are the providers of a split job's other parts: they stay
	// awarded the job (its artifacts) beside the winner.
	Keep []string `json:"keep,omitempty"`
}

type RenegotiateOutput struct {
	Award NegotiateOutput `json:"award"`
	// Reputation is Lost's reputation after the penalty.
	Reputation float64 `json:"reputation,omitempty"`
}

// ReassignInput / ReassignOutput: the held job is paid to To instead of
// From when it settles. Idempotent by (job, N).
type ReassignInput struct {
	JobID  string `json:"job_id"`
	From   string `json:"from"`
	To     string `json:"to"`
	N      int    `json:"n"`
	Reason string `json:"reason"`
}

type ReassignOutput struct {
	Record json.RawMessage `json:"record,omitempty"`
}

// SlashInput / SlashOutput: a spot check's verdict against Provider: the
// slash its agreed Terms set (nil: nothing at stake), and a reputation
// penalty. Idempotent by (job, provider).
type SlashInput struct {
	JobID    string     `json:"job_id"`
	Provider string     `json:"provider"`
	Terms    *sla.Terms `json:"terms,omitempty"`
	Reason   string     `json:"reason"`
}

type SlashOutput struct {
	Slashed    int64           `json:"slashed"`
	Currency   string          `json:"currency,omitempty"`
	Reputation float64         `json:"reputation"`
	Record     json.RawMessage `json:"record,omitempty"`
}

// SpotCheck is a spot check's record (predicate.SpotCheck).
type SpotCheck = predicate.SpotCheck

// Failover is a failover's record (predicate.Failover).
type Failover = predicate.Failover

// The failover and spot-check activities (layout 6), control plane.
var (
	ProviderLive  = Activity[ProviderLiveInput, ProviderLiveOutput]{Name: "ProviderLive"}
	Renegotiate   = Activity[RenegotiateInput, RenegotiateOutput]{Name: "Renegotiate"}
	Reassign      = Activity[ReassignInput, ReassignOutput]{Name: "Reassign"}
	SlashProvider = Activity[SlashInput, SlashOutput]{Name: "SlashProvider"}
)
