package nomadtest

import (
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"
)

// evaluate creates an evaluation for the job and places an allocation, or
// leaves the evaluation blocked until capacity appears. prev is the
// allocation being replaced, if any.
func (s *Server) evaluate(job *api.Job, trigger string, prev *api.Allocation, reschedule bool) *api.Evaluation {
	s.seq++
	s.bump()
	ev := &api.Evaluation{
		ID: fmt.Sprintf("eval-%06d", s.seq), Priority: 50, Type: *job.Type, TriggeredBy: trigger,
		Namespace: "default", JobID: *job.ID, JobModifyIndex: *job.JobModifyIndex,
		Status: "complete", CreateIndex: s.index, ModifyIndex: s.index,
	}
	s.evals[ev.ID] = ev
	p, metric := s.schedule(job)
	if p == nil {
		ev.Status = "blocked"
		ev.FailedTGAllocs = map[string]*api.AllocationMetric{*job.TaskGroups[0].Name: metric}
		ev.QueuedAllocations = map[string]int{*job.TaskGroups[0].Name: 1}
		s.blockedPrev[ev.ID] = blockedFor{prev: prev, reschedule: reschedule}
		s.updateJobStatus(*job.ID)
		return ev
	}
	s.allocate(job, ev, p, prev, reschedule)
	return ev
}

type blockedFor struct {
	prev       *api.Allocation
	reschedule bool
}

// retryBlocked re-runs blocked evaluations after capacity changed.
func (s *Server) retryBlocked() {
	for id, b := range s.blockedPrev {
		ev := s.evals[id]
		if ev == nil || ev.Status != "blocked" {
			delete(s.blockedPrev, id)
			continue
		}
		job := s.jobs[ev.JobID]
		if job == nil || (job.Stop != nil && *job.Stop) {
			ev.Status = "cancelled"
			delete(s.blockedPrev, id)
			continue
		}
		p, _ := s.schedule(job)
		if p == nil {
			continue
		}
		ev.Status = "complete"
		ev.FailedTGAllocs = nil
		delete(s.blockedPrev, id)
		s.allocate(job, ev, p, b.prev, b.reschedule)
	}
}

func (s *Server) allocate(job *api.Job, ev *api.Evaluation, p *placement, prev *api.Allocation, reschedule bool) {
	s.seq++
	tg := job.TaskGroups[0]
	id := fmt.Sprintf("a110c000-0000-4000-8000-%012d", s.seq)
	a := &api.Allocation{
		ID: id, Namespace: "default", EvalID: ev.ID, Name: fmt.Sprintf("%s.%s[0]", *job.ID, *tg.Name),
		NodeID: p.node.ID, NodeName: p.node.Name, JobID: *job.ID, Job: job, TaskGroup: *tg.Name,
		AllocatedResources: p.resources, DesiredStatus: api.AllocDesiredStatusRun,
		ClientStatus: api.AllocClientStatusPending, TaskStates: map[string]*api.TaskState{},
		Metrics:    &api.AllocationMetric{NodesEvaluated: 1, NodePool: p.node.NodePool},
		CreateTime: time.Now().UnixNano(),
	}
	for _, t := range tg.Tasks {
		a.TaskStates[t.Name] = &api.TaskState{State: "pending", Events: []*api.TaskEvent{{Type: "Received", Time: time.Now().UnixNano(), DisplayMessage: "Task received by client"}}}
	}
	if prev != nil {
		a.PreviousAllocation = prev.ID
		tracker := &api.RescheduleTracker{}
		if prev.RescheduleTracker != nil {
			tracker.Events = append(tracker.Events, prev.RescheduleTracker.Events...)
		}
		if reschedule {
			tracker.Events = append(tracker.Events, &api.RescheduleEvent{RescheduleTime: time.Now().UnixNano(), PrevAllocID: prev.ID, PrevNodeID: prev.NodeID})
		}
		a.RescheduleTracker = tracker
		prev.NextAllocation = id
		s.touch(prev)
	}
	s.bump()
	a.CreateIndex = s.index
	s.allocs[id] = a
	attempt := s.attempts[*job.ID]
	s.attempts[*job.ID]++
	run := s.behavior(job, copyAlloc(a), attempt)
	if run.StartDelay == 0 {
		run.StartDelay = 5 * time.Millisecond
	}
	if run.RunFor == 0 {
		run.RunFor = 20 * time.Millisecond
	}
	r := &allocRun{run: run, files: map[string][]byte{}}
	s.runs[id] = r
	s.touch(a)
	r.timer = time.AfterFunc(run.StartDelay, func() { s.started(id) })
}

func (s *Server) started(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, r := s.allocs[id], s.runs[id]
	if s.closed || a == nil || r == nil || a.ClientStatus != api.AllocClientStatusPending {
		return
	}
	now := time.Now()
	if r.run.DriverFail != "" {
		r.timer = nil
		a.ClientStatus = api.AllocClientStatusFailed
		a.ClientDescription = "Failed tasks"
		for _, ts := range a.TaskStates {
			ts.State, ts.Failed, ts.FinishedAt = "dead", true, now
			ts.Events = append(ts.Events, &api.TaskEvent{Type: "Driver Failure", Time: now.UnixNano(), DisplayMessage: r.run.DriverFail, DriverError: r.run.DriverFail, FailsTask: true})
		}
		s.touch(a)
		s.replace(a, true)
		return
	}
	a.ClientStatus = api.AllocClientStatusRunning
	a.ClientDescription = "Tasks are running"
	for _, ts := range a.TaskStates {
		ts.State, ts.StartedAt = "running", now
		ts.Events = append(ts.Events,
			&api.TaskEvent{Type: "Task Setup", Time: now.UnixNano(), DisplayMessage: "Building Task Directory"},
			&api.TaskEvent{Type: "Started", Time: now.UnixNano(), DisplayMessage: "Task started by client"})
	}
	r.stdout = append(r.stdout, r.run.Stdout...)
	r.stderr = append(r.stderr, r.run.Stderr...)
	for p, b := range r.run.Files {
		r.files[p] = b
	}
	s.touch(a)
	var limit time.Duration
	if d := a.Job.TaskGroups[0].MaxRunDuration; d != nil && *d > 0 {
		limit = *d
	}
	switch {
	case limit > 0 && (r.run.Hold || limit < r.run.RunFor):
		r.timer = time.AfterFunc(limit, func() { s.expire(id) })
	case r.run.Hold:
		r.timer = nil
	default:
		r.timer = time.AfterFunc(r.run.RunFor, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if a := s.allocs[id]; a != nil && !s.closed && a.ClientStatus == api.AllocClientStatusRunning {
				s.exit(a, r.run.ExitCode, r.run.OOM)
			}
		})
	}
}

// expire kills an allocation that outlived its group's max_run_duration.
func (s *Server) expire(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.allocs[id]
	if s.closed || a == nil || a.ClientStatus != api.AllocClientStatusRunning {
		return
	}
	now := time.Now()
	a.ClientStatus = api.AllocClientStatusFailed
	a.DesiredStatus = api.AllocDesiredStatusStop
	a.DesiredDescription = "alloc exceeded max_run_duration"
	for _, ts := range a.TaskStates {
		ts.State, ts.Failed, ts.FinishedAt = "dead", true, now
		ts.Events = append(ts.Events,
			&api.TaskEvent{Type: "Killing", Time: now.UnixNano(), DisplayMessage: "Sent interrupt. Waiting 5s before force killing", KillReason: "max_run_duration reached"},
			&api.TaskEvent{Type: "Killed", Time: now.UnixNano(), DisplayMessage: "Task successfully killed"})
	}
	s.touch(a)
}

// exit ends a running allocation's tasks with an exit code.
func (s *Server) exit(a *api.Allocation, code int, oom bool) {
	now := time.Now()
	if oom {
		code = 137
	}
	for _, ts := range a.TaskStates {
		ts.State, ts.FinishedAt, ts.Failed = "dead", now, code != 0
		ts.Events = append(ts.Events, &api.TaskEvent{
			Type: "Terminated", Time: now.UnixNano(), ExitCode: code,
			DisplayMessage: fmt.Sprintf("Exit Code: %d", code),
			Details:        map[string]string{"exit_code": strconv.Itoa(code), "signal": "0", "oom_killed": strconv.FormatBool(oom)},
		})
		if code != 0 {
			ts.Events = append(ts.Events, &api.TaskEvent{Type: "Not Restarting", Time: now.UnixNano(), DisplayMessage: "Policy allows no restarts", FailsTask: true})
		}
	}
	if code == 0 {
		a.ClientStatus = api.AllocClientStatusComplete
		a.ClientDescription = "All tasks have completed"
	} else {
		a.ClientStatus = api.AllocClientStatusFailed
		a.ClientDescription = "Failed tasks"
	}
	s.touch(a)
	if code != 0 {
		s.replace(a, true)
	}
	s.retryBlocked()
}

// finishTasks marks every task dead (killed or lost).
func (s *Server) finishTasks(a *api.Allocation, failed bool, why string) {
	now := time.Now()
	for _, ts := range a.TaskStates {
		if ts.State == "dead" {
			continue
		}
		ts.State, ts.FinishedAt, ts.Failed = "dead", now, failed
		ts.Events = append(ts.Events, &api.TaskEvent{Type: "Killed", Time: now.UnixNano(), DisplayMessage: why})
	}
}

// replace creates the follow-up allocation: always for a lost one, while the
// reschedule policy has attempts left for a failed one.
func (s *Server) replace(a *api.Allocation, failure bool) {
	job := s.jobs[a.JobID]
	if job == nil || (job.Stop != nil && *job.Stop) || a.NextAllocation != "" {
		return
	}
	if failure {
		attempts := 0
		if rp := job.TaskGroups[0].ReschedulePolicy; rp != nil && rp.Attempts != nil {
			attempts = *rp.Attempts
		}
		used := 0
		if a.RescheduleTracker != nil {
			used = len(a.RescheduleTracker.Events)
		}
		if used >= attempts {
			s.updateJobStatus(a.JobID)
			return
		}
	}
	trigger := "alloc-failure"
	if !failure {
		trigger = "node-update"
	}
	s.evaluate(job, trigger, a, failure)
	s.updateJobStatus(a.JobID)
}

// stopJob marks a job stopped and its live allocations complete (killed).
func (s *Server) stopJob(job *api.Job) {
	job.Stop = boolPtr(true)
	for _, a := range s.sortedAllocs() {
		if a.JobID != *job.ID || terminal(a) {
			continue
		}
		s.stopTimer(a.ID)
		a.DesiredStatus = api.AllocDesiredStatusStop
		a.DesiredDescription = "alloc not needed due to job update"
		a.ClientStatus = api.AllocClientStatusComplete
		a.ClientDescription = "All tasks have completed"
		now := time.Now()
		for _, ts := range a.TaskStates {
			if ts.State == "dead" {
				continue
			}
			ts.State, ts.FinishedAt = "dead", now
			ts.Events = append(ts.Events,
				&api.TaskEvent{Type: "Killing", Time: now.UnixNano(), DisplayMessage: "Sent interrupt"},
				&api.TaskEvent{Type: "Killed", Time: now.UnixNano(), DisplayMessage: "Task successfully killed"})
		}
		s.touch(a)
	}
	for id, ev := range s.evals {
		if ev.JobID == *job.ID && ev.Status == "blocked" {
			ev.Status = "cancelled"
			delete(s.blockedPrev, id)
		}
	}
	s.bump()
	job.ModifyIndex = u64Ptr(s.index)
	job.JobModifyIndex = u64Ptr(s.index)
	s.updateJobStatus(*job.ID)
	s.retryBlocked()
}

func boolPtr(b bool) *bool { return &b }
