// Package nomadtest is a test double of Nomad's HTTP API for unit tests of
// Accord's Nomad pool, inventory and runtime.
//
// It serves the documented endpoints that Accord uses — nodes with
// resources, node pools, allocations, job plan, job register with index
// enforcement, job deregister and purge, job allocations, allocation logs and
// files, allocation stats, the event stream and blocking queries — and builds
// every response from the real github.com/hashicorp/nomad/api types, so that
// the api client decodes them exactly as it decodes a real agent's answers.
//
// Behind the endpoints is a small scheduler: feasibility by node status,
// eligibility, drain, node pool, datacenter, driver, constraints (job, group,
// task and device level, with unit-aware comparisons of device attributes)
// and free CPU, memory and device instances; placement assigns exact device
// instance IDs. Allocations move pending → running → complete or failed on
// timers driven by a per-job Behavior; tests can fail allocations, lose
// nodes, drain nodes and hold allocations running. Failed allocations are
// rescheduled while the group's reschedule policy allows, lost ones are
// always replaced, and the old allocation names its replacement in
// NextAllocation as Nomad does.
//
// It is a double, not an emulator: one region, one namespace, one task group
// per job with count 1 as Accord submits them.
package nomadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Behavior decides what an allocation's task does once it runs. It is asked
// once per allocation; attempt counts from 0 for the job's first allocation.
type Behavior func(job *api.Job, alloc *api.Allocation, attempt int) Run

// Run is the scripted life of one allocation.
type Run struct {
	StartDelay time.Duration     // pending → running (default 5ms)
	RunFor     time.Duration     // running → terminal (default 20ms)
	Stdout     string            // written to the task's stdout log
	Stderr     string            // written to the task's stderr log
	ExitCode   int               // non-zero fails the allocation
	OOM        bool              // terminated as OOM-killed (exit 137)
	DriverFail string            // when set the task never starts: the driver fails with this message
	Hold       bool              // stays running until Finish, Fail, LoseNode or a stop
	Files      map[string][]byte // written into the allocation directory, keyed by path such as "alloc/data/out/x"
	CPUTicks   float64           // reported by the stats endpoint
	MemRSS     uint64            // reported by the stats endpoint
}

// Server is a running double. Create it with New; it stops with the test.
type Server struct {
	URL string

	ts *httptest.Server

	mu          sync.Mutex
	index       uint64
	changed     chan struct{} // closed and replaced on every change
	nodes       map[string]*api.Node
	pools       map[string]*api.NodePool
	jobs        map[string]*api.Job
	allocs      map[string]*api.Allocation
	evals       map[string]*api.Evaluation
	blockedPrev map[string]blockedFor // blocked evaluation → allocation it replaces
	token       string
	noEvents    bool
	keepLogs    bool
	events      []api.Event
	runs        map[string]*allocRun // by allocation ID
	attempts    map[string]int       // allocations created per job
	seq         int
	behavior    Behavior
	requests    map[string]int // "METHOD path" → count, for tests
	closed      bool
}

type allocRun struct {
	run    Run
	stdout []byte
	stderr []byte
	files  map[string][]byte
	timer  *time.Timer
}

// New starts a double with no nodes. Close it with Close (registered with
// t.Cleanup by the caller).
func New() *Server {
	s := &Server{
		index:       1,
		changed:     make(chan struct{}),
		nodes:       map[string]*api.Node{},
		pools:       map[string]*api.NodePool{},
		jobs:        map[string]*api.Job{},
		allocs:      map[string]*api.Allocation{},
		evals:       map[string]*api.Evaluation{},
		blockedPrev: map[string]blockedFor{},
		runs:        map[string]*allocRun{},
		attempts:    map[string]int{},
		requests:    map[string]int{},
		behavior:    func(*api.Job, *api.Allocation, int) Run { return Run{} },
	}
	for _, name := range []string{"default", "all"} {
		s.pools[name] = &api.NodePool{Name: name, Description: "built-in", CreateIndex: 1, ModifyIndex: 1}
	}
	s.ts = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.ts.URL
	return s
}

// Close stops the server and every pending timer.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for _, r := range s.runs {
		if r.timer != nil {
			r.timer.Stop()
		}
	}
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	s.ts.CloseClientConnections()
	s.ts.Close()
}

// RequireToken makes every request need this ACL token (X-Nomad-Token).
func (s *Server) RequireToken(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token = token
}

// DisableEventStream makes /v1/event/stream answer 403 as an agent whose ACL
// policy lacks event access does, so clients must fall back to blocking
// queries.
func (s *Server) DisableEventStream() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noEvents = true
}

// KeepLogStreamsOpen makes followed log streams stay open after the task
// dies (heartbeats only), for clients that must end them themselves.
func (s *Server) KeepLogStreamsOpen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keepLogs = true
}

// SetBehavior sets how allocations behave from now on.
func (s *Server) SetBehavior(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behavior = b
}

// Requests returns how often "METHOD /path" was called (path without query).
func (s *Server) Requests(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[key]
}

// GPU describes one device group of a fake node.
type GPU struct {
	Vendor    string // default "nvidia"
	Model     string // device name, e.g. "NVIDIA H100 80GB HBM3"
	MemoryMiB int64
	IDs       []string
	Unhealthy []string // IDs reported unhealthy
}

// NodeSpec describes a fake node.
type NodeSpec struct {
	ID, Name, Datacenter, NodePool string
	CPUMHz                         int64
	MemoryMB                       int64
	ReservedCPU, ReservedMemoryMB  uint64
	GPUs                           []GPU
	Drivers                        []string // default docker, exec
	Attributes                     map[string]string
	Meta                           map[string]string
}

// AddNode registers a ready, eligible node and returns its ID.
func (s *Server) AddNode(n NodeSpec) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n.ID == "" {
		s.seq++
		n.ID = fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
	}
	if n.Name == "" {
		n.Name = "node-" + n.ID[len(n.ID)-4:]
	}
	if n.Datacenter == "" {
		n.Datacenter = "dc1"
	}
	if n.NodePool == "" {
		n.NodePool = "default"
	}
	if len(n.Drivers) == 0 {
		n.Drivers = []string{"docker", "exec"}
	}
	attrs := map[string]string{"kernel.name": "linux", "cpu.arch": "amd64", "unique.hostname": n.Name}
	for k, v := range n.Attributes {
		attrs[k] = v
	}
	drivers := map[string]*api.DriverInfo{}
	for _, d := range n.Drivers {
		drivers[d] = &api.DriverInfo{Detected: true, Healthy: true, HealthDescription: "Healthy"}
		attrs["driver."+d] = "1"
	}
	res := &api.NodeResources{
		Cpu:    api.NodeCpuResources{CpuShares: n.CPUMHz},
		Memory: api.NodeMemoryResources{MemoryMB: n.MemoryMB},
		Disk:   api.NodeDiskResources{DiskMB: 100 << 10},
	}
	for _, g := range n.GPUs {
		vendor := g.Vendor
		if vendor == "" {
			vendor = "nvidia"
		}
		mem := g.MemoryMiB
		dev := &api.NodeDeviceResource{
			Vendor: vendor, Type: "gpu", Name: g.Model,
			Attributes: map[string]*api.Attribute{
				"memory":         {IntVal: &mem, Unit: "MiB"},
				"driver_version": {StringVal: strPtr("550.54.15")},
			},
		}
		for _, id := range g.IDs {
			healthy := !contains(g.Unhealthy, id)
			desc := ""
			if !healthy {
				desc = "XID 79: GPU has fallen off the bus"
			}
			dev.Instances = append(dev.Instances, &api.NodeDevice{ID: id, Healthy: healthy, HealthDescription: desc})
		}
		res.Devices = append(res.Devices, dev)
	}
	if _, ok := s.pools[n.NodePool]; !ok {
		s.pools[n.NodePool] = &api.NodePool{Name: n.NodePool, CreateIndex: s.index, ModifyIndex: s.index}
	}
	node := &api.Node{
		ID: n.ID, Name: n.Name, Datacenter: n.Datacenter, NodePool: n.NodePool,
		Attributes: attrs, Meta: n.Meta, Drivers: drivers,
		NodeResources: res,
		ReservedResources: &api.NodeReservedResources{
			Cpu:    api.NodeReservedCpuResources{CpuShares: n.ReservedCPU},
			Memory: api.NodeReservedMemoryResources{MemoryMB: n.ReservedMemoryMB},
		},
		SchedulingEligibility: api.NodeSchedulingEligible,
		Status:                "ready",
	}
	s.bump()
	node.CreateIndex, node.ModifyIndex = s.index, s.index
	s.nodes[n.ID] = node
	s.emitNode("NodeRegistration", node)
	s.retryBlocked()
	return n.ID
}

// SetDrain marks a node draining (and ineligible) or clears it.
func (s *Server) SetDrain(nodeID string, drain bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeID]
	if n == nil {
		return
	}
	n.Drain = drain
	if drain {
		n.SchedulingEligibility = api.NodeSchedulingIneligible
		n.DrainStrategy = &api.DrainStrategy{}
	} else {
		n.SchedulingEligibility = api.NodeSchedulingEligible
		n.DrainStrategy = nil
	}
	s.bump()
	n.ModifyIndex = s.index
	s.emitNode("NodeDrain", n)
}

// SetEligible toggles a node's scheduling eligibility.
func (s *Server) SetEligible(nodeID string, eligible bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeID]
	if n == nil {
		return
	}
	n.SchedulingEligibility = api.NodeSchedulingIneligible
	if eligible {
		n.SchedulingEligibility = api.NodeSchedulingEligible
	}
	s.bump()
	n.ModifyIndex = s.index
	s.emitNode("NodeEligibility", n)
	if eligible {
		s.retryBlocked()
	}
}

// SetGPUHealth marks one device instance healthy or not.
func (s *Server) SetGPUHealth(nodeID, deviceID string, healthy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeID]
	if n == nil {
		return
	}
	for _, d := range n.NodeResources.Devices {
		for _, inst := range d.Instances {
			if inst.ID == deviceID {
				inst.Healthy = healthy
			}
		}
	}
	s.bump()
	n.ModifyIndex = s.index
	s.emitNode("NodeEvent", n)
}

// LoseNode marks a node down; its live allocations become lost and are
// replaced elsewhere when a feasible node exists.
func (s *Server) LoseNode(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeID]
	if n == nil {
		return
	}
	n.Status = "down"
	s.bump()
	n.ModifyIndex = s.index
	s.emitNode("NodeEvent", n)
	for _, a := range s.sortedAllocs() {
		if a.NodeID != nodeID || terminal(a) {
			continue
		}
		s.stopTimer(a.ID)
		a.ClientStatus = api.AllocClientStatusLost
		a.ClientDescription = "alloc is lost since its node is down"
		a.DesiredStatus = api.AllocDesiredStatusStop
		s.finishTasks(a, true, "Node lost")
		s.touch(a)
		s.replace(a, false)
	}
}

// Finish ends a held allocation with an exit code.
func (s *Server) Finish(allocID string, exitCode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.allocs[allocID]
	if a == nil || terminal(a) {
		return
	}
	s.stopTimer(a.ID)
	s.exit(a, exitCode, false)
}

// Fail fails an allocation as a driver error would; it is rescheduled while
// the group's reschedule policy allows.
func (s *Server) Fail(allocID, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.allocs[allocID]
	if a == nil || terminal(a) {
		return
	}
	s.stopTimer(a.ID)
	a.ClientStatus = api.AllocClientStatusFailed
	a.ClientDescription = "Failed tasks"
	for _, ts := range a.TaskStates {
		ts.State = "dead"
		ts.Failed = true
		ts.FinishedAt = time.Now()
		ts.Events = append(ts.Events, &api.TaskEvent{Type: "Driver Failure", Time: time.Now().UnixNano(), DisplayMessage: reason, DriverError: reason, FailsTask: true})
	}
	s.touch(a)
	s.replace(a, true)
}

// Allocations returns copies of a job's allocations, oldest first.
func (s *Server) Allocations(jobID string) []*api.Allocation {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*api.Allocation
	for _, a := range s.sortedAllocs() {
		if a.JobID == jobID {
			out = append(out, copyAlloc(a))
		}
	}
	return out
}

// Job returns a copy of a registered job, or nil.
func (s *Server) Job(jobID string) *api.Job {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[jobID]
	if j == nil {
		return nil
	}
	var c api.Job
	b, _ := json.Marshal(j)
	_ = json.Unmarshal(b, &c)
	return &c
}

// WaitAlloc polls until a job has an allocation in one of the client
// statuses, for tests that act on a running allocation.
func (s *Server) WaitAlloc(jobID string, timeout time.Duration, statuses ...string) (*api.Allocation, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		allocs := s.Allocations(jobID)
		for i := len(allocs) - 1; i >= 0; i-- {
			if contains(statuses, allocs[i].ClientStatus) {
				return allocs[i], nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil, fmt.Errorf("nomadtest: no allocation of %s in %v after %v", jobID, statuses, timeout)
}

// --- state helpers (s.mu held) ---

func (s *Server) bump() {
	s.index++
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) touch(a *api.Allocation) {
	s.bump()
	a.ModifyIndex = s.index
	a.AllocModifyIndex = s.index
	a.ModifyTime = time.Now().UnixNano()
	s.emitAlloc(a)
	s.updateJobStatus(a.JobID)
}

func (s *Server) emitNode(typ string, n *api.Node) {
	s.events = append(s.events, api.Event{Topic: api.TopicNode, Type: typ, Key: n.ID, Index: s.index,
		Payload: map[string]any{"Node": toMap(n)}})
}

func (s *Server) emitAlloc(a *api.Allocation) {
	stub := a.Stub()
	s.events = append(s.events, api.Event{Topic: api.TopicAllocation, Type: "AllocationUpdated", Key: a.ID,
		FilterKeys: []string{a.JobID}, Index: s.index, Payload: map[string]any{"Allocation": toMap(stub)}})
}

func (s *Server) sortedAllocs() []*api.Allocation {
	out := make([]*api.Allocation, 0, len(s.allocs))
	for _, a := range s.allocs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreateIndex < out[j].CreateIndex })
	return out
}

func (s *Server) stopTimer(allocID string) {
	if r := s.runs[allocID]; r != nil && r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

func (s *Server) updateJobStatus(jobID string) {
	j := s.jobs[jobID]
	if j == nil {
		return
	}
	status := "dead"
	if j.Stop == nil || !*j.Stop {
		status = "pending"
		anyAlloc := false
		for _, a := range s.allocs {
			if a.JobID != jobID {
				continue
			}
			anyAlloc = true
			if !terminal(a) {
				status = "running"
				break
			}
		}
		if status == "pending" && anyAlloc && !s.blocked(jobID) {
			status = "dead"
		}
	}
	if *j.Status != status {
		j.Status = strPtr(status)
		j.ModifyIndex = u64Ptr(s.index)
	}
}

// blocked reports whether the job has a blocked evaluation (waiting for capacity).
func (s *Server) blocked(jobID string) bool {
	for _, e := range s.evals {
		if e.JobID == jobID && e.Status == "blocked" {
			return true
		}
	}
	return false
}

// terminal mirrors Nomad's Allocation.TerminalStatus: desired stop or evict,
// or a terminal client status. Terminal allocations hold no resources.
func terminal(a *api.Allocation) bool { return a.ClientTerminalStatus() || a.ServerTerminalStatus() }

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func strPtr(s string) *string { return &s }
func u64Ptr(v uint64) *uint64 { return &v }

func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func copyAlloc(a *api.Allocation) *api.Allocation {
	var c api.Allocation
	b, _ := json.Marshal(a)
	_ = json.Unmarshal(b, &c)
	return &c
}

func parseUint(s string) uint64 {
	v, _ := strconv.ParseUint(s, 10, 64)
	return v
}

func trimPrefix(p, prefix string) (string, bool) {
	if !strings.HasPrefix(p, prefix) {
		return "", false
	}
	return strings.TrimPrefix(p, prefix), true
}
