package workflows

import "time"

// The contract of batch-mode negotiation (negotiation.mode: batch, job
// layout 9) and of the periodic market clearing: the job queues itself,
// the MarketClearing workflow (started by a Temporal schedule) clears
// every queued job in one auction and signals each placed job its award.

// ClearingWorkflowName is the registered name of the clearing workflow;
// ClearingScheduleID names its schedule, and every run's workflow ID
// starts with it.
const (
	ClearingWorkflowName = "accord.MarketClearing"
	ClearingScheduleID   = "accord-market-clearing"
)

// SignalClearingAward delivers a clearing's award to a queued job;
// SignalClearingNote tells a queued job why a clearing left it unplaced.
const (
	SignalClearingAward = "clearing-award"
	SignalClearingNote  = "clearing-note"
)

// ClearingNote is SignalClearingNote's payload. A clearing sends it only
// when the reason changed, at most MaxClearingNotes times per job, so a
// long wait does not grow the job's history without bound.
type ClearingNote struct {
	JobID    string `json:"job_id"`
	Clearing string `json:"clearing"`
	Reason   string `json:"reason"`
}

// MaxClearingNotes bounds the notes one queued job is sent; MaxNoteReason
// the reason a job keeps, in bytes.
const (
	MaxClearingNotes = 20
	MaxNoteReason    = 4096
)

// ClearingStatus is a queued job's place in the clearing (JobStatus): when
// its wait ends, and the last clearing that left it unplaced, when, and
// why (the market's diagnostics).
type ClearingStatus struct {
	WaitUntil    time.Time `json:"wait_until"`
	LastClearing string    `json:"last_clearing,omitempty"`
	NotedAt      time.Time `json:"noted_at,omitzero"`
	Reason       string    `json:"reason,omitempty"`
}

// Bounds of the clearing.
const (
	// DefaultBatchWait bounds a batch-mode job's wait when its plan does
	// not say (specs.DefaultBatchWait).
	DefaultBatchWait = 10 * time.Minute
	// DefaultClearingJobs is how many queued jobs one clearing takes
	// (oldest first) when its input does not say; MaxClearingJobs bounds
	// it, so that a clearing's output stays well inside one history
	// event's payload limit.
	DefaultClearingJobs = 100
	MaxClearingJobs     = 500
	// ClearingTimeLimit bounds a clearing's winner determination (and
	// again its price re-solves).
	ClearingTimeLimit = 2 * time.Minute
)

// ClearingAward is SignalClearingAward's payload: the award of the job it
// names, made by the clearing Clearing (the digest of its whole record in
// the artifact store). The job takes it only if it names the job.
type ClearingAward struct {
	JobID    string          `json:"job_id"`
	Clearing string          `json:"clearing"`
	Award    NegotiateOutput `json:"award"`
}

// EnqueueInput queues a batch-mode job for clearing until Deadline
// (workflow time, so a retry writes the same entry).
type EnqueueInput struct {
	JobID  string `json:"job_id"`
	Tenant string `json:"tenant,omitempty"`
	PlanInput
	Enqueued time.Time `json:"enqueued"`
	Deadline time.Time `json:"deadline"`
}

// EnqueueOutput is empty: the entry is queued.
type EnqueueOutput struct{}

// DequeueInput takes jobs off the clearing queue.
type DequeueInput struct {
	JobIDs []string `json:"job_ids"`
}

// DequeueOutput says, for each job taken off that a clearing had left
// unplaced, why.
type DequeueOutput struct {
	Reasons map[string]string `json:"reasons,omitempty"`
}

// ClearMarketInput is one clearing's bounds (zero: the defaults).
type ClearMarketInput struct {
	MaxJobs   int           `json:"max_jobs,omitempty"`
	TimeLimit time.Duration `json:"time_limit,omitempty"`
}

// ClearedJob is one placed job of a clearing and its award.
type ClearedJob struct {
	JobID string          `json:"job_id"`
	Award NegotiateOutput `json:"award"`
}

// UnplacedJob is a queued job a clearing left in the queue, and why.
type UnplacedJob struct {
	JobID  string `json:"job_id"`
	Reason string `json:"reason"`
	// Notify: the reason changed since the job was last told (and it has
	// not been told MaxClearingNotes times yet).
	Notify bool `json:"notify,omitempty"`
}

// ClearMarketOutput is a clearing: the digest of its whole record in the
// artifact store (empty when no job was queued), the jobs it cleared
// together, the placed ones with their awards, and the unplaced.
type ClearMarketOutput struct {
	Clearing  string        `json:"clearing,omitempty"`
	Jobs      []string      `json:"jobs"`
	Placed    []ClearedJob  `json:"placed,omitempty"`
	Unplaced  []UnplacedJob `json:"unplaced,omitempty"`
	Objective float64       `json:"objective_minor,omitempty"`
	Optimal   bool          `json:"optimal,omitempty"`
}

// ClearingInput is the clearing workflow's input (the schedule's action).
type ClearingInput struct {
	MaxJobs int `json:"max_jobs,omitempty"`
}

// ClearingResult is the clearing workflow's result: the clearing, the
// jobs delivered their award, those whose workflow was gone (taken off
// the queue too), and those left queued.
type ClearingResult struct {
	Clearing  string        `json:"clearing,omitempty"`
	Jobs      []string      `json:"jobs"`
	Delivered []string      `json:"delivered,omitempty"`
	Gone      []string      `json:"gone,omitempty"`
	Unplaced  []UnplacedJob `json:"unplaced,omitempty"`
}

// The clearing's activities, all on the control queue.
var (
	EnqueueClearing = Activity[EnqueueInput, EnqueueOutput]{Name: "EnqueueClearing"}
	DequeueClearing = Activity[DequeueInput, DequeueOutput]{Name: "DequeueClearing"}
	ClearMarket     = Activity[ClearMarketInput, ClearMarketOutput]{Name: "ClearMarket"}
)
