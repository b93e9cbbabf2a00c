package services

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/accordmesh/accord/runtimes"
)

// Host runs deployments' replicas and endpoints on one machine: the
// runtime starts replicas in their network namespaces, an in-process
// proxy per endpoint serves them, and the ledger settles billing periods.
// Its methods are the deployment workflow's activities; each is
// idempotent by its request's names (see the package doc).
type Host struct {
	Runtime runtimes.Runtime
	Network Network
	// Biller holds and settles billing periods; nil: HoldPeriod and
	// SettlePeriod fail.
	Biller Biller
	// Attestor signs and logs the deployments' events; nil: Attest fails
	// (a deployment of layout 2 cannot run without it).
	Attestor Attestor
	// Models resolves, verifies and fetches the registry models services
	// serve; nil: a service with a model cannot run here.
	Models ModelExchange
	// Listen is the address endpoints bind, port 0 (default 127.0.0.1:0).
	Listen string
	// Now defaults to time.Now.
	Now func() time.Time

	mu        sync.Mutex
	endpoints map[string]*endpoint
}

type endpoint struct {
	proxy *Proxy
	srv   *http.Server
	addr  string
}

var (
	// DeploymentIDPattern is a deployment's name rule: it prefixes replica
	// IDs, ledger jobs and namespaces.
	DeploymentIDPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	replicaIDRE         = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
)

// EndpointRequest names an endpoint.
type EndpointRequest struct {
	Deployment string `json:"deployment"`
}

// EndpointInfo is where an endpoint listens.
type EndpointInfo struct {
	Deployment string `json:"deployment"`
	Addr       string `json:"addr"`
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// OpenEndpoint starts the deployment's proxy, or returns the running one.
func (h *Host) OpenEndpoint(ctx context.Context, r EndpointRequest) (EndpointInfo, error) {
	if !DeploymentIDPattern.MatchString(r.Deployment) {
		return EndpointInfo{}, fmt.Errorf("%w: deployment %q", ErrInvalid, r.Deployment)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.endpoints[r.Deployment]; e != nil {
		return EndpointInfo{Deployment: r.Deployment, Addr: e.addr}, nil
	}
	listen := h.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", listen)
	if err != nil {
		return EndpointInfo{}, fmt.Errorf("services: endpoint %s: %w", r.Deployment, err)
	}
	p := NewProxy(ProxyOptions{Recorder: NewRecorder(h.now)})
	// The billing stream counts every request from the start: a period's
	// inferences are the requests between two of its cuts.
	if _, err := p.Stream(StreamBilling); err != nil {
		ln.Close()
		return EndpointInfo{}, err
	}
	e := &endpoint{proxy: p, addr: ln.Addr().String(),
		srv: &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}}
	go e.srv.Serve(ln)
	if h.endpoints == nil {
		h.endpoints = map[string]*endpoint{}
	}
	h.endpoints[r.Deployment] = e
	return EndpointInfo{Deployment: r.Deployment, Addr: e.addr}, nil
}

// Proxy returns a deployment's proxy (for status and tests).
func (h *Host) Proxy(deployment string) (*Proxy, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.endpoints[deployment]
	if e == nil {
		return nil, fmt.Errorf("%w: endpoint %s", ErrNotFound, deployment)
	}
	return e.proxy, nil
}

// CloseEndpoint stops the deployment's proxy; closing a closed one is fine.
func (h *Host) CloseEndpoint(ctx context.Context, r EndpointRequest) (EndpointInfo, error) {
	h.mu.Lock()
	e := h.endpoints[r.Deployment]
	delete(h.endpoints, r.Deployment)
	h.mu.Unlock()
	if e == nil {
		return EndpointInfo{Deployment: r.Deployment}, nil
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(sctx); err != nil {
		e.srv.Close()
	}
	return EndpointInfo{Deployment: r.Deployment, Addr: e.addr}, nil
}

// ReplicaRequest starts one replica.
type ReplicaRequest struct {
	Deployment string             `json:"deployment"`
	ID         string             `json:"id"` // unique per start: deployment, version, slot, generation
	Version    string             `json:"version"`
	Image      string             `json:"image"`
	Command    []string           `json:"command,omitempty"`
	Env        map[string]string  `json:"env,omitempty"`
	Port       int                `json:"port"`
	Resources  runtimes.Resources `json:"resources"`
	Labels     map[string]string  `json:"labels,omitempty"`
	// Model is the release's pinned model, mounted read-only at Model.As;
	// the host fetches and verifies it (never a host path from the
	// workflow).
	Model *ReplicaModel `json:"model,omitempty"`
}

// ReplicaInfo is a started replica.
type ReplicaInfo struct {
	ID     string         `json:"id"`
	Addr   string         `json:"addr"` // ip:port on the replica network
	State  runtimes.State `json:"state"`
	Reason string         `json:"reason,omitempty"`
}

// StartReplica attaches the replica's network namespace and starts its
// container there. Repeating it re-attaches to what the first call made.
func (h *Host) StartReplica(ctx context.Context, r ReplicaRequest) (ReplicaInfo, error) {
	if !replicaIDRE.MatchString(r.ID) || !DeploymentIDPattern.MatchString(r.Deployment) {
		return ReplicaInfo{}, fmt.Errorf("%w: replica %q of %q", ErrInvalid, r.ID, r.Deployment)
	}
	if r.Port < 1 || r.Port > 65535 {
		return ReplicaInfo{}, fmt.Errorf("%w: port %d", ErrInvalid, r.Port)
	}
	if _, err := h.Runtime.Prepare(ctx, r.Image); err != nil {
		return ReplicaInfo{}, fmt.Errorf("services: replica %s: %w", r.ID, err)
	}
	mounts, err := h.modelMount(ctx, r.Model)
	if err != nil {
		return ReplicaInfo{}, fmt.Errorf("services: replica %s: %w", r.ID, err)
	}
	att, err := h.Network.Attach(ctx, r.ID)
	if err != nil {
		return ReplicaInfo{}, fmt.Errorf("services: replica %s: %w", r.ID, err)
	}
	labels := map[string]string{"deployment": r.Deployment, "version": r.Version}
	for k, v := range r.Labels {
		labels[k] = v
	}
	res := r.Resources
	res.MaxDuration = 0 // a replica runs until stopped
	st, err := h.Runtime.Start(ctx, runtimes.TaskSpec{
		ID: r.ID, Image: r.Image, Command: r.Command, Env: r.Env, Resources: res,
		Labels: labels, NetNS: att.NetNS, Inputs: mounts,
	})
	if err != nil {
		return ReplicaInfo{}, fmt.Errorf("services: replica %s: %w", r.ID, err)
	}
	return ReplicaInfo{ID: r.ID, Addr: net.JoinHostPort(att.IP, strconv.Itoa(r.Port)), State: st.State, Reason: st.Reason}, nil
}

// StopRequest stops replicas.
type StopRequest struct {
	IDs   []string      `json:"ids"`
	Grace time.Duration `json:"grace_ns"`
}

// StopResult lists what was stopped.
type StopResult struct {
	Stopped []string `json:"stopped"`
}

// StopReplicas stops, cleans up and detaches each replica; unknown
// replicas count as stopped.
func (h *Host) StopReplicas(ctx context.Context, r StopRequest) (StopResult, error) {
	var out StopResult
	var errs []error
	for _, id := range r.IDs {
		if !replicaIDRE.MatchString(id) {
			errs = append(errs, fmt.Errorf("%w: replica %q", ErrInvalid, id))
			continue
		}
		if err := h.Runtime.Stop(ctx, id, r.Grace); err != nil && !errors.Is(err, runtimes.ErrNotFound) {
			errs = append(errs, fmt.Errorf("services: stop %s: %w", id, err))
			continue
		}
		if err := h.Runtime.Cleanup(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("services: clean up %s: %w", id, err))
			continue
		}
		if err := h.Network.Detach(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		out.Stopped = append(out.Stopped, id)
	}
	return out, errors.Join(errs...)
}

// CheckRequest probes replicas.
type CheckRequest struct {
	Replicas  []ReplicaInfo `json:"replicas"`
	Readiness ProbeSpec     `json:"readiness"`
	Liveness  ProbeSpec     `json:"liveness"`
}

// ProbeSpec is one HTTP probe.
type ProbeSpec struct {
	Path    string        `json:"path"`
	Timeout time.Duration `json:"timeout_ns"`
}

// Health is one replica's state at a check.
type Health struct {
	ID       string         `json:"id"`
	State    runtimes.State `json:"state"`
	ExitCode int            `json:"exit_code,omitempty"`
	Ready    bool           `json:"ready"`
	Alive    bool           `json:"alive"`
	Reason   string         `json:"reason,omitempty"`
}

// maxCheck bounds the replicas one check probes.
const maxCheck = 256

// CheckReplicas reads each replica's runtime state and, for a running
// one, probes readiness and liveness once (concurrently).
func (h *Host) CheckReplicas(ctx context.Context, r CheckRequest) ([]Health, error) {
	if len(r.Replicas) > maxCheck {
		return nil, fmt.Errorf("%w: %d replicas in one check", ErrInvalid, len(r.Replicas))
	}
	out := make([]Health, len(r.Replicas))
	var wg sync.WaitGroup
	for i, rep := range r.Replicas {
		wg.Go(func() { out[i] = h.check(ctx, rep, r) })
	}
	wg.Wait()
	return out, ctx.Err()
}

func (h *Host) check(ctx context.Context, rep ReplicaInfo, r CheckRequest) Health {
	hl := Health{ID: rep.ID}
	st, err := h.Runtime.Status(ctx, rep.ID)
	if err != nil {
		hl.State, hl.Reason = runtimes.StateUnknown, err.Error()
		if errors.Is(err, runtimes.ErrNotFound) {
			hl.State = runtimes.StateFailed
		}
		return hl
	}
	hl.State, hl.ExitCode, hl.Reason = st.State, st.ExitCode, st.Reason
	if st.State != runtimes.StateRunning {
		return hl
	}
	hl.Ready = Probe(ctx, rep.Addr, r.Readiness.Path, r.Readiness.Timeout) == nil
	hl.Alive = hl.Ready
	if r.Liveness.Path != r.Readiness.Path || r.Liveness.Timeout != r.Readiness.Timeout || !hl.Ready {
		hl.Alive = Probe(ctx, rep.Addr, r.Liveness.Path, r.Liveness.Timeout) == nil
	}
	return hl
}

// RouteRequest sets an endpoint's traffic split.
type RouteRequest struct {
	Deployment string `json:"deployment"`
	Routes     Routes `json:"routes"`
}

// Route sets the split (replacing the previous one).
func (h *Host) Route(ctx context.Context, r RouteRequest) (Routes, error) {
	p, err := h.Proxy(r.Deployment)
	if err != nil {
		return Routes{}, err
	}
	if err := p.SetRoutes(r.Routes); err != nil {
		return Routes{}, err
	}
	return p.Routes(), nil
}

// MeasureRequest cuts a window of an endpoint's measurement stream.
type MeasureRequest struct {
	Deployment string `json:"deployment"`
	Stream     string `json:"stream"` // "sla", "rollout", StreamBilling
	Key        string `json:"key"`
}

// Measure closes the stream's current window under Key (idempotent by Key).
func (h *Host) Measure(ctx context.Context, r MeasureRequest) (Window, error) {
	p, err := h.Proxy(r.Deployment)
	if err != nil {
		return Window{}, err
	}
	rec, err := p.Stream(r.Stream)
	if err != nil {
		return Window{}, err
	}
	return rec.Cut(r.Key), nil
}
