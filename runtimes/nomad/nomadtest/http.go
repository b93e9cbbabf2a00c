package nomadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"
)

const maxBlock = 5 * time.Minute

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests[r.Method+" "+r.URL.Path]++
	token := s.token
	s.mu.Unlock()
	if token != "" && r.Header.Get("X-Nomad-Token") != token {
		http.Error(w, "Permission denied", http.StatusForbidden)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/v1/status/leader":
		s.reply(w, "127.0.0.1:4647")
	case p == "/v1/nodes":
		s.listNodes(w, r)
	case p == "/v1/node/pools":
		s.listPools(w, r)
	case strings.HasPrefix(p, "/v1/node/pool/"):
		s.getPool(w, r, strings.TrimPrefix(p, "/v1/node/pool/"))
	case strings.HasPrefix(p, "/v1/node/"):
		s.getNode(w, r, strings.TrimPrefix(p, "/v1/node/"))
	case p == "/v1/allocations":
		s.listAllocs(w, r)
	case strings.HasPrefix(p, "/v1/allocation/"):
		s.getAlloc(w, r, strings.TrimPrefix(p, "/v1/allocation/"))
	case p == "/v1/jobs":
		s.registerJob(w, r)
	case strings.HasPrefix(p, "/v1/job/"):
		s.job(w, r, strings.TrimPrefix(p, "/v1/job/"))
	case strings.HasPrefix(p, "/v1/client/fs/"):
		s.fs(w, r, strings.TrimPrefix(p, "/v1/client/fs/"))
	case strings.HasPrefix(p, "/v1/client/allocation/") && strings.HasSuffix(p, "/stats"):
		s.allocStats(w, r, strings.TrimSuffix(strings.TrimPrefix(p, "/v1/client/allocation/"), "/stats"))
	case p == "/v1/event/stream":
		s.mu.Lock()
		off := s.noEvents
		s.mu.Unlock()
		if off {
			http.Error(w, "Permission denied", http.StatusForbidden)
			return
		}
		s.eventStream(w, r)
	default:
		http.Error(w, "Invalid URL path", http.StatusNotFound)
	}
}

// block implements Nomad's blocking query: with ?index=N it waits until the
// state index passes N or ?wait elapses. It returns with s.mu held.
func (s *Server) block(r *http.Request) {
	idx := parseUint(r.URL.Query().Get("index"))
	wait := maxBlock
	if ws := r.URL.Query().Get("wait"); ws != "" {
		if d, err := time.ParseDuration(ws); err == nil && d > 0 && d < maxBlock {
			wait = d
		}
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	s.mu.Lock()
	for idx > 0 && s.index <= idx && !s.closed {
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			s.mu.Lock()
			return
		case <-r.Context().Done():
			s.mu.Lock()
			return
		}
		s.mu.Lock()
	}
}

// reply writes v as JSON with the query-meta headers the api client parses.
// Call it with s.mu held or not at all held; it reads only s.index.
func (s *Server) replyAt(w http.ResponseWriter, index uint64, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Nomad-Index", strconv.FormatUint(index, 10))
	w.Header().Set("X-Nomad-KnownLeader", "true")
	w.Header().Set("X-Nomad-LastContact", "0")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) reply(w http.ResponseWriter, v any) {
	s.mu.Lock()
	idx := s.index
	s.mu.Unlock()
	s.replyAt(w, idx, v)
}

func (s *Server) listNodes(w http.ResponseWriter, r *http.Request) {
	s.block(r)
	defer s.mu.Unlock()
	withRes := r.URL.Query().Get("resources") == "true"
	out := []*api.NodeListStub{}
	ids := make([]string, 0, len(s.nodes))
	for id := range s.nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := s.nodes[id]
		stub := &api.NodeListStub{
			Address: "127.0.0.1", ID: n.ID, Attributes: n.Attributes, Datacenter: n.Datacenter, Name: n.Name,
			NodeClass: n.NodeClass, NodePool: n.NodePool, Version: "1.10.5", Drain: n.Drain,
			SchedulingEligibility: n.SchedulingEligibility, Status: n.Status, StatusDescription: n.StatusDescription,
			Drivers: n.Drivers, CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex,
		}
		if withRes {
			stub.NodeResources, stub.ReservedResources = n.NodeResources, n.ReservedResources
		}
		out = append(out, stub)
	}
	s.replyAt(w, s.index, out)
}

func (s *Server) getNode(w http.ResponseWriter, r *http.Request, rest string) {
	id, sub, _ := strings.Cut(rest, "/")
	s.block(r)
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil {
		http.Error(w, "node not found", http.StatusNotFound)
		return
	}
	if sub == "allocations" {
		out := []*api.Allocation{}
		for _, a := range s.sortedAllocs() {
			if a.NodeID == id {
				out = append(out, a)
			}
		}
		s.replyAt(w, s.index, out)
		return
	}
	s.replyAt(w, s.index, n)
}

func (s *Server) listPools(w http.ResponseWriter, r *http.Request) {
	s.block(r)
	defer s.mu.Unlock()
	out := []*api.NodePool{}
	for _, p := range s.pools {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	s.replyAt(w, s.index, out)
}

func (s *Server) getPool(w http.ResponseWriter, r *http.Request, name string) {
	name, sub, _ := strings.Cut(name, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pools[name]
	if p == nil {
		http.Error(w, "node pool not found", http.StatusNotFound)
		return
	}
	if sub == "nodes" {
		out := []*api.NodeListStub{}
		for _, n := range s.nodes {
			if n.NodePool == name {
				out = append(out, &api.NodeListStub{ID: n.ID, Name: n.Name, Datacenter: n.Datacenter, NodePool: n.NodePool, Status: n.Status, SchedulingEligibility: n.SchedulingEligibility, Drain: n.Drain})
			}
		}
		s.replyAt(w, s.index, out)
		return
	}
	s.replyAt(w, s.index, p)
}

func (s *Server) listAllocs(w http.ResponseWriter, r *http.Request) {
	s.block(r)
	defer s.mu.Unlock()
	withRes := r.URL.Query().Get("resources") == "true"
	out := []*api.AllocationListStub{}
	for _, a := range s.sortedAllocs() {
		stub := a.Stub()
		if withRes {
			stub.AllocatedResources = a.AllocatedResources
		}
		out = append(out, stub)
	}
	s.replyAt(w, s.index, out)
}

func (s *Server) getAlloc(w http.ResponseWriter, r *http.Request, id string) {
	s.block(r)
	defer s.mu.Unlock()
	a := s.allocs[id]
	if a == nil {
		http.Error(w, "alloc not found", http.StatusNotFound)
		return
	}
	s.replyAt(w, s.index, a)
}

func (s *Server) registerJob(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []*api.JobListStub{}
		for _, j := range s.jobs {
			out = append(out, &api.JobListStub{ID: *j.ID, Name: *j.Name, Type: *j.Type, Status: *j.Status, Stop: *j.Stop, JobModifyIndex: *j.JobModifyIndex})
		}
		s.replyAt(w, s.index, out)
		return
	}
	if r.Method != http.MethodPut && r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var req api.JobRegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "failed to decode request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := validate(req.Job); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id := *req.Job.ID
	prev := s.jobs[id]
	if req.EnforceIndex {
		switch {
		case req.JobModifyIndex == 0 && prev != nil:
			http.Error(w, "Enforcing job modify index 0: job already exists", http.StatusInternalServerError)
			return
		case req.JobModifyIndex != 0 && prev == nil:
			http.Error(w, fmt.Sprintf("Enforcing job modify index %d: job does not exist", req.JobModifyIndex), http.StatusInternalServerError)
			return
		case prev != nil && *prev.JobModifyIndex != req.JobModifyIndex:
			http.Error(w, fmt.Sprintf("Enforcing job modify index %d: job exists with conflicting job modify index: %d", req.JobModifyIndex, *prev.JobModifyIndex), http.StatusInternalServerError)
			return
		}
	}
	job := req.Job
	s.bump()
	version := uint64(0)
	create := s.index
	changed := true
	if prev != nil {
		version = *prev.Version + 1
		create = *prev.CreateIndex
		changed = specDigest(prev) != specDigest(job) || (prev.Stop != nil && *prev.Stop)
	}
	if job.Namespace == nil {
		job.Namespace = strPtr("default")
	}
	if job.Region == nil {
		job.Region = strPtr("global")
	}
	if job.Name == nil {
		job.Name = job.ID
	}
	job.Stop, job.Status = boolPtr(false), strPtr("pending")
	job.Version, job.CreateIndex = u64Ptr(version), u64Ptr(create)
	job.ModifyIndex, job.JobModifyIndex = u64Ptr(s.index), u64Ptr(s.index)
	job.SubmitTime = int64Ptr(time.Now().UnixNano())
	s.jobs[id] = job
	s.events = append(s.events, api.Event{Topic: api.TopicJob, Type: "JobRegistered", Key: id, Index: s.index, Payload: map[string]any{"Job": toMap(job)}})
	live := false
	for _, a := range s.allocs {
		if a.JobID == id && !terminal(a) {
			live = true
		}
	}
	var ev *api.Evaluation
	if changed && !live {
		ev = s.evaluate(job, "job-register", nil, false)
	} else {
		s.updateJobStatus(id)
	}
	resp := api.JobRegisterResponse{JobModifyIndex: *job.JobModifyIndex}
	if ev != nil {
		resp.EvalID, resp.EvalCreateIndex = ev.ID, ev.CreateIndex
	}
	s.replyAt(w, s.index, resp)
}

// specDigest compares the user-supplied part of two jobs.
func specDigest(j *api.Job) string {
	c := *j
	c.Stop, c.Status, c.StatusDescription, c.Version, c.CreateIndex, c.ModifyIndex, c.JobModifyIndex, c.SubmitTime = nil, nil, nil, nil, nil, nil, nil, nil
	b, _ := json.Marshal(c)
	return string(b)
}

func validate(j *api.Job) error {
	switch {
	case j == nil:
		return fmt.Errorf("Job must be specified")
	case j.ID == nil || *j.ID == "":
		return fmt.Errorf("1 error occurred:\n\t* Missing job ID")
	case strings.ContainsAny(*j.ID, " \x00"):
		return fmt.Errorf("1 error occurred:\n\t* Job ID contains a space or null character")
	case len(j.TaskGroups) == 0:
		return fmt.Errorf("1 error occurred:\n\t* Missing job task groups")
	case j.Type != nil && *j.Type != "batch" && *j.Type != "service":
		return fmt.Errorf("1 error occurred:\n\t* Invalid job type %q", *j.Type)
	}
	if j.Type == nil {
		j.Type = strPtr("service")
	}
	for _, tg := range j.TaskGroups {
		if tg.Name == nil || *tg.Name == "" || len(tg.Tasks) == 0 {
			return fmt.Errorf("1 error occurred:\n\t* Task group must have a name and at least one task")
		}
		for _, t := range tg.Tasks {
			if t.Driver == "" {
				return fmt.Errorf("1 error occurred:\n\t* Task %s: missing driver", t.Name)
			}
		}
	}
	return nil
}

func (s *Server) job(w http.ResponseWriter, r *http.Request, rest string) {
	id, sub, _ := strings.Cut(rest, "/")
	switch {
	case sub == "plan":
		s.plan(w, r, id)
	case sub == "allocations":
		s.block(r)
		defer s.mu.Unlock()
		out := []*api.AllocationListStub{}
		for _, a := range s.sortedAllocs() {
			if a.JobID == id {
				out = append(out, a.Stub())
			}
		}
		s.replyAt(w, s.index, out)
	case sub == "evaluations":
		s.mu.Lock()
		defer s.mu.Unlock()
		out := []*api.Evaluation{}
		for _, e := range s.evals {
			if e.JobID == id {
				out = append(out, e)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
		s.replyAt(w, s.index, out)
	case sub == "" && r.Method == http.MethodDelete:
		s.deregister(w, r, id)
	case sub == "" && r.Method == http.MethodGet:
		s.block(r)
		defer s.mu.Unlock()
		j := s.jobs[id]
		if j == nil {
			http.Error(w, "job not found", http.StatusNotFound)
			return
		}
		s.replyAt(w, s.index, j)
	default:
		http.Error(w, "Invalid URL path", http.StatusNotFound)
	}
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request, id string) {
	var req api.JobPlanRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, "failed to decode request: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err := validate(req.Job); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if *req.Job.ID != id {
		http.Error(w, "Job ID does not match", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := api.JobPlanResponse{Annotations: &api.PlanAnnotations{DesiredTGUpdates: map[string]*api.DesiredUpdates{}}}
	if prev := s.jobs[id]; prev != nil {
		resp.JobModifyIndex = *prev.JobModifyIndex
	}
	tg := *req.Job.TaskGroups[0].Name
	if _, metric := s.schedule(req.Job); metric != nil {
		resp.FailedTGAllocs = map[string]*api.AllocationMetric{tg: metric}
	} else {
		resp.Annotations.DesiredTGUpdates[tg] = &api.DesiredUpdates{Place: 1}
	}
	s.replyAt(w, s.index, resp)
}

func (s *Server) deregister(w http.ResponseWriter, r *http.Request, id string) {
	purge := r.URL.Query().Get("purge") == "true"
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[id]
	if j == nil {
		http.Error(w, "job not found", http.StatusNotFound)
		return
	}
	if j.Stop == nil || !*j.Stop {
		s.stopJob(j)
	}
	if purge {
		for aid, a := range s.allocs {
			if a.JobID == id {
				delete(s.allocs, aid)
				delete(s.runs, aid)
			}
		}
		for eid, e := range s.evals {
			if e.JobID == id {
				delete(s.evals, eid)
			}
		}
		delete(s.jobs, id)
		delete(s.attempts, id)
		s.bump()
		s.events = append(s.events, api.Event{Topic: api.TopicJob, Type: "JobDeregistered", Key: id, Index: s.index})
	}
	s.seq++
	s.replyAt(w, s.index, api.JobDeregisterResponse{EvalID: fmt.Sprintf("eval-%06d", s.seq), EvalCreateIndex: s.index, JobModifyIndex: s.index})
}

func (s *Server) allocStats(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, run := s.allocs[id], s.runs[id]
	if a == nil || run == nil {
		http.Error(w, "Unknown allocation", http.StatusNotFound)
		return
	}
	if terminal(a) {
		http.Error(w, "Unknown allocation: allocation is not running", http.StatusNotFound)
		return
	}
	u := &api.ResourceUsage{
		CpuStats:    &api.CpuStats{TotalTicks: run.run.CPUTicks, Measured: []string{"Total Ticks"}},
		MemoryStats: &api.MemoryStats{RSS: run.run.MemRSS, MaxUsage: run.run.MemRSS, Measured: []string{"RSS", "Max Usage"}},
	}
	resp := api.AllocResourceUsage{ResourceUsage: u, Tasks: map[string]*api.TaskResourceUsage{}, Timestamp: time.Now().UnixNano()}
	for name := range a.TaskStates {
		resp.Tasks[name] = &api.TaskResourceUsage{ResourceUsage: u, Timestamp: resp.Timestamp}
	}
	s.replyAt(w, s.index, resp)
}

// fs serves /v1/client/fs/{logs,ls,stat,cat}/:alloc.
func (s *Server) fs(w http.ResponseWriter, r *http.Request, rest string) {
	op, id, _ := strings.Cut(rest, "/")
	q := r.URL.Query()
	s.mu.Lock()
	a, run := s.allocs[id], s.runs[id]
	s.mu.Unlock()
	if a == nil || run == nil {
		http.Error(w, "Unknown allocation", http.StatusNotFound)
		return
	}
	switch op {
	case "logs":
		s.logs(w, r, id, q.Get("task"), q.Get("type"), q.Get("follow") == "true", parseInt(q.Get("offset")), q.Get("origin"))
	case "ls", "stat":
		dir := strings.Trim(path.Clean("/"+q.Get("path")), "/")
		s.mu.Lock()
		infos := map[string]*api.AllocFileInfo{}
		var self *api.AllocFileInfo
		for p, b := range run.files {
			if p == dir {
				self = &api.AllocFileInfo{Name: path.Base(p), Size: int64(len(b)), FileMode: "-rw-r--r--", ContentType: "application/octet-stream"}
			}
			rel, ok := trimPrefix(p, dir+"/")
			if dir == "" {
				rel, ok = p, true
			}
			if !ok {
				continue
			}
			name, more, isDir := strings.Cut(rel, "/")
			_ = more
			if isDir {
				if self == nil && infos[name] == nil {
					infos[name] = &api.AllocFileInfo{Name: name, IsDir: true, FileMode: "drwxr-xr-x"}
				}
				continue
			}
			infos[name] = &api.AllocFileInfo{Name: name, Size: int64(len(b)), FileMode: "-rw-r--r--", ContentType: "application/octet-stream"}
		}
		s.mu.Unlock()
		if op == "stat" {
			if self == nil && len(infos) > 0 {
				self = &api.AllocFileInfo{Name: path.Base(dir), IsDir: true, FileMode: "drwxr-xr-x"}
			}
			if self == nil {
				http.Error(w, "file does not exist", http.StatusNotFound)
				return
			}
			s.reply(w, self)
			return
		}
		if len(infos) == 0 {
			http.Error(w, fmt.Sprintf("open %s: no such file or directory", dir), http.StatusNotFound)
			return
		}
		out := []*api.AllocFileInfo{}
		for _, fi := range infos {
			out = append(out, fi)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		s.reply(w, out)
	case "cat":
		p := strings.Trim(path.Clean("/"+q.Get("path")), "/")
		s.mu.Lock()
		b, ok := run.files[p]
		s.mu.Unlock()
		if !ok {
			http.Error(w, "file does not exist", http.StatusNotFound)
			return
		}
		w.Header().Set("X-Nomad-Index", "0")
		_, _ = w.Write(b)
	default:
		http.Error(w, "Invalid URL path", http.StatusNotFound)
	}
}

// logs streams StreamFrames as the documented endpoint does; with follow it
// keeps the stream open until the task is dead.
func (s *Server) logs(w http.ResponseWriter, r *http.Request, id, task, typ string, follow bool, offset int64, origin string) {
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	file := fmt.Sprintf("alloc/logs/%s.%s.0", task, typ)
	sent := int64(-1)
	for {
		s.mu.Lock()
		a, run := s.allocs[id], s.runs[id]
		var data []byte
		if run != nil {
			data = run.stdout
			if typ == "stderr" {
				data = run.stderr
			}
			data = append([]byte(nil), data...)
		}
		done := a == nil || terminal(a) || (a.TaskStates[task] != nil && a.TaskStates[task].State == "dead")
		done = done && !s.keepLogs
		ch := s.changed
		closed := s.closed
		s.mu.Unlock()
		if sent < 0 {
			sent = offset
			if origin == "end" {
				sent = int64(len(data)) - offset
			}
			sent = max(0, min(sent, int64(len(data))))
		}
		if int64(len(data)) > sent {
			if err := enc.Encode(api.StreamFrame{Offset: sent, Data: data[sent:], File: file}); err != nil {
				return
			}
			sent = int64(len(data))
			if flusher != nil {
				flusher.Flush()
			}
		}
		if !follow || done || closed {
			return
		}
		select {
		case <-ch:
		case <-time.After(200 * time.Millisecond):
			_ = enc.Encode(struct{}{}) // heartbeat frame
			if flusher != nil {
				flusher.Flush()
			}
		case <-r.Context().Done():
			return
		}
	}
}

// eventStream serves newline-delimited api.Events for the requested topics
// from ?index on, with heartbeats, until the client goes away.
func (s *Server) eventStream(w http.ResponseWriter, r *http.Request) {
	topics := map[api.Topic][]string{}
	for _, t := range r.URL.Query()["topic"] {
		name, key, _ := strings.Cut(t, ":")
		topics[api.Topic(name)] = append(topics[api.Topic(name)], key)
	}
	from := parseUint(r.URL.Query().Get("index"))
	flusher, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	next := 0
	for {
		s.mu.Lock()
		var batch []api.Event
		for ; next < len(s.events); next++ {
			e := s.events[next]
			if e.Index < from || !wanted(topics, e) {
				continue
			}
			batch = append(batch, e)
		}
		idx, ch, closed := s.index, s.changed, s.closed
		s.mu.Unlock()
		if closed {
			return
		}
		if len(batch) > 0 {
			// One frame per raft index, as Nomad sends them.
			for len(batch) > 0 {
				n := 1
				for n < len(batch) && batch[n].Index == batch[0].Index {
					n++
				}
				if err := enc.Encode(api.Events{Index: batch[0].Index, Events: batch[:n]}); err != nil {
					return
				}
				batch = batch[n:]
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		_ = idx
		select {
		case <-ch:
		case <-time.After(time.Second):
			if _, err := w.Write([]byte("{}\n")); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
		case <-r.Context().Done():
			return
		}
	}
}

func wanted(topics map[api.Topic][]string, e api.Event) bool {
	if len(topics) == 0 {
		return true
	}
	for t, keys := range topics {
		if t != api.TopicAll && t != e.Topic {
			continue
		}
		for _, k := range keys {
			if k == "" || k == "*" || k == e.Key || contains(e.FilterKeys, k) {
				return true
			}
		}
	}
	return false
}

func parseInt(s string) int64 {
	v, _ := strconv.ParseInt(s, 10, 64)
	return v
}

func int64Ptr(v int64) *int64 { return &v }
