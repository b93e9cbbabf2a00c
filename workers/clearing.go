package workers

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/accordmesh/accord/workflows"
)

// Bounds of the clearing schedule's interval.
const (
	DefaultClearEvery = time.Minute
	MinClearEvery     = time.Second
	MaxClearEvery     = 24 * time.Hour
)

// ErrNoSchedule reports that the clearing schedule does not exist.
var ErrNoSchedule = errors.New("workers: no market clearing schedule")

// ClearingSchedule describes the market clearing schedule.
type ClearingSchedule struct {
	ID     string        `json:"id"`
	Every  time.Duration `json:"-"`
	EveryS string        `json:"every"`
	Paused bool          `json:"paused"`
	// Actions is how many clearings it started; Skipped how many it
	// skipped because the previous one still ran (overlap policy skip).
	Actions int         `json:"actions"`
	Skipped int         `json:"skipped_overlap"`
	Next    []time.Time `json:"next,omitempty"`
	Recent  []string    `json:"recent_workflow_ids,omitempty"`
}

// EnsureClearingSchedule creates the Temporal schedule that starts the
// MarketClearing workflow every interval on the control queue, overlap
// policy skip (a clearing still running when the next is due makes that
// one a no-op). Idempotent: an existing schedule keeps running, its
// interval set to every when it differs. created reports whether this
// call made it.
func EnsureClearingSchedule(ctx context.Context, c client.Client, every time.Duration) (created bool, err error) {
	if every < MinClearEvery || every > MaxClearEvery {
		return false, fmt.Errorf("%w: clearing interval %s outside [%s, %s]", ErrConfig, every, MinClearEvery, MaxClearEvery)
	}
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: every}}}
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      workflows.ClearingScheduleID,
		Spec:    spec,
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Action: &client.ScheduleWorkflowAction{
			ID:        workflows.ClearingScheduleID,
			Workflow:  workflows.ClearingWorkflowName,
			Args:      []any{workflows.ClearingInput{}},
			TaskQueue: workflows.TaskQueueControl,
			// A clearing that cannot finish in this long is stuck; the
			// next one starts afresh from the queue.
			WorkflowExecutionTimeout: 30 * time.Minute,
		},
		Note: "Accord: periodic clearing of batch-mode jobs (negotiation.mode: batch)",
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("workers: create clearing schedule: %w", err)
	}
	h := c.ScheduleClient().GetHandle(ctx, workflows.ClearingScheduleID)
	err = h.Update(ctx, client.ScheduleUpdateOptions{DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
		s := in.Description.Schedule
		if s.Spec != nil && len(s.Spec.Intervals) == 1 && s.Spec.Intervals[0].Every == every {
			return nil, temporal.ErrSkipScheduleUpdate
		}
		s.Spec = &spec
		return &client.ScheduleUpdate{Schedule: &s}, nil
	}})
	if err != nil && !errors.Is(err, temporal.ErrSkipScheduleUpdate) {
		return false, fmt.Errorf("workers: update clearing schedule: %w", err)
	}
	return false, nil
}

// DescribeClearingSchedule describes the clearing schedule; ErrNoSchedule
// when there is none.
func DescribeClearingSchedule(ctx context.Context, c client.Client) (ClearingSchedule, error) {
	d, err := c.ScheduleClient().GetHandle(ctx, workflows.ClearingScheduleID).Describe(ctx)
	if err != nil {
		return ClearingSchedule{}, scheduleErr("describe", err)
	}
	out := ClearingSchedule{ID: workflows.ClearingScheduleID, Actions: d.Info.NumActions,
		Skipped: d.Info.NumActionsSkippedOverlap, Next: d.Info.NextActionTimes}
	if sp := d.Schedule.Spec; sp != nil && len(sp.Intervals) > 0 {
		out.Every = sp.Intervals[0].Every
		out.EveryS = out.Every.String()
	}
	if st := d.Schedule.State; st != nil {
		out.Paused = st.Paused
	}
	for _, a := range d.Info.RecentActions {
		if a.StartWorkflowResult != nil {
			out.Recent = append(out.Recent, a.StartWorkflowResult.WorkflowID)
		}
	}
	return out, nil
}

// DeleteClearingSchedule deletes the clearing schedule (queued jobs then
// wait out their batch_wait); ErrNoSchedule when there is none.
func DeleteClearingSchedule(ctx context.Context, c client.Client) error {
	if err := c.ScheduleClient().GetHandle(ctx, workflows.ClearingScheduleID).Delete(ctx); err != nil {
		return scheduleErr("delete", err)
	}
	return nil
}

func scheduleErr(op string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%w: %s: %v", ErrNoSchedule, op, err)
	}
	return fmt.Errorf("workers: %s clearing schedule: %w", op, err)
}
