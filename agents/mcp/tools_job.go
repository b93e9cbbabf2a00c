package mcp

import (
	"context"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/internal/cli"
)

// Bounds on tool inputs.
const (
	maxJobID     = 128
	maxReason    = 1024
	maxSignature = 1 << 20 // a DSSE envelope, base64
	maxListLimit = 1000
	// DefaultLogBytes and MaxLogBytes bound job_logs' tail.
	DefaultLogBytes = 16 << 10
	MaxLogBytes     = 256 << 10
	// MaxWait bounds job_submit's wait over stdio; HTTPMaxWait over HTTP,
	// where the call holds a response open.
	MaxWait     = time.Hour
	HTTPMaxWait = 10 * time.Minute
)

// pollEvery is how often a waiting job_submit reads the job's status.
var pollEvery = 500 * time.Millisecond

// Job statuses the wait ends on (workflows' own names).
var terminal = map[string]bool{"settled": true, "failed": true, "cancelled": true}

// SubmitInput is job_submit's input.
type SubmitInput struct {
	Spec      string `json:"spec" jsonschema:"the spec's Markdown text (at most 4 MiB), never a path"`
	Name      string `json:"name,omitempty" jsonschema:"a plain file name for error positions (default spec.md)"`
	Signature string `json:"signature,omitempty" jsonschema:"base64 of the spec's DSSE signature envelope (accord spec sign), when the tenant requires signed specs"`
	Wait      bool   `json:"wait,omitempty" jsonschema:"follow the job until it settles, fails or is cancelled, with progress notifications"`
	// WaitSeconds bounds the wait (default and most: 3600 over stdio, 600
	// over HTTP).
	WaitSeconds int `json:"wait_seconds,omitempty" jsonschema:"stop waiting after this many seconds (default and most 3600 over stdio, 600 over HTTP) and return the job as it is then"`
}

// JobInput names a job.
type JobInput struct {
	JobID string `json:"job_id" jsonschema:"the job's ID, as job_submit or job_list gives it"`
}

// ReasonInput names a job and says why.
type ReasonInput struct {
	JobID  string `json:"job_id" jsonschema:"the job's ID"`
	Reason string `json:"reason,omitempty" jsonschema:"why (recorded with an approval)"`
}

// ListInput filters job_list.
type ListInput struct {
	Tenant string `json:"tenant,omitempty" jsonschema:"only this tenant's jobs (a tenant token sees only its own)"`
	Status string `json:"status,omitempty" jsonschema:"only jobs in this status: pending, running, settled, failed, cancelled"`
	Spec   string `json:"spec,omitempty" jsonschema:"only jobs of this spec name"`
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many jobs (default 100, at most 1000)"`
}

// ListResult is job_list's answer.
type ListResult struct {
	Jobs  []apiserver.Job `json:"jobs"`
	Count int             `json:"count"`
}

// ActResult is the answer of job_cancel and job_approve.
type ActResult struct {
	JobID  string `json:"job_id"`
	Status string `json:"status"`
	By     string `json:"by,omitempty"`
}

// CounterInput is job_counter's input: exactly one of price_minor and accept.
type CounterInput struct {
	JobID  string `json:"job_id" jsonschema:"the bargaining job's ID"`
	Price  int64  `json:"price_minor,omitempty" jsonschema:"a counter-offer in minor units of the budget's currency, in (0, budget]"`
	Accept string `json:"accept,omitempty" jsonschema:"accept this provider's current offer (a provider in job_status's bargain.offers)"`
}

// LogsInput is job_logs' input.
type LogsInput struct {
	JobID    string `json:"job_id" jsonschema:"the job's ID"`
	MaxBytes int    `json:"max_bytes,omitempty" jsonschema:"the most log bytes to return, newest last (default 16384, at most 262144)"`
}

// LogTail is the end of one task run's log.
type LogTail struct {
	Run       string `json:"run" jsonschema:"job/task/attempt"`
	Text      string `json:"text"`
	Bytes     int64  `json:"bytes" jsonschema:"the log's whole size"`
	Truncated bool   `json:"truncated" jsonschema:"true when only the end is shown"`
}

// LogsResult is job_logs' answer.
type LogsResult struct {
	JobID string    `json:"job_id"`
	Logs  []LogTail `json:"logs"`
}

func (s *server) addJobTools(srv *mcp.Server) {
	if s.writer() {
		add(s, srv, &mcp.Tool{Name: "job_submit",
			Description: "Submit a spec sent as Markdown text as a durable job for its tenant. With wait, follow it to settled, failed or cancelled (progress notifications on each stage)."},
			s.submit)
		add(s, srv, &mcp.Tool{Name: "job_cancel",
			Description: "Cancel a job: its containers stop and its escrow is refunded."}, s.cancel)
		add(s, srv, &mcp.Tool{Name: "job_approve",
			Description: "Pass a job's approval gate as this token's identity; the job accepts it only from an identity its spec names in approval.approvers, and records the reason."},
			s.approve)
		add(s, srv, &mcp.Tool{Name: "job_counter",
			Description: "Make the buyer's move in a job that bargains with its agent as buyer (negotiation: {protocol: alternating-offers, buyer: agent}): " +
				"a counter-offer price_minor in (0, budget], or accept, the provider whose current offer (job_status's bargain.offers) to take. " +
				"Answers the sellers' response: their next offers, or the agreement. One move per round, before the round's timeout."},
			s.counter)
	}
	add(s, srv, &mcp.Tool{Name: "job_status", Annotations: readOnly(),
		Description: "A job's status, stage and cost; while it bargains with its buyer agent, bargain: the round, the last round, the budget, the round's timeout and each seller's current offer."}, s.status)
	add(s, srv, &mcp.Tool{Name: "job_list", Annotations: readOnly(),
		Description: "List jobs this token may see, filtered by tenant, status or spec name."}, s.list)
	add(s, srv, &mcp.Tool{Name: "job_logs", Annotations: readOnly(),
		Description: "The end of each task run's log of a job (a bounded tail)."}, s.logs)
}

// checkJobID bounds a job ID; a malformed one names no job.
func checkJobID(id string) error {
	if id == "" || len(id) > maxJobID {
		return usagef("job_id: want a job ID such as job-20261125t200134-fb81bb43")
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') || id[0] == '.' {
			return usagef("job_id: want a job ID such as job-20261125t200134-fb81bb43")
		}
	}
	return nil
}

// job loads a job the principal may see; another tenant's job is "not
// found", as over the HTTP API.
func (s *server) job(ctx context.Context, id string) (apiserver.Job, error) {
	if err := checkJobID(id); err != nil {
		return apiserver.Job{}, err
	}
	j, err := s.b.Jobs.Get(ctx, id)
	if err != nil {
		return apiserver.Job{}, err
	}
	if !s.p.CanRead(j.Tenant) {
		return apiserver.Job{}, notFound()
	}
	return j, nil
}

// writable loads a job the principal may act on.
func (s *server) writable(ctx context.Context, id string) (apiserver.Job, error) {
	j, err := s.job(ctx, id)
	if err != nil {
		return j, err
	}
	if !s.p.CanWrite(j.Tenant) {
		return apiserver.Job{}, public(cli.ClassPolicy, cli.ExitPolicy, "token may not act on this job")
	}
	return j, nil
}

func (s *server) submit(ctx context.Context, req *mcp.CallToolRequest, in SubmitInput) (apiserver.Job, error) {
	name, doc, err := readSpec(SpecInput{Spec: in.Spec, Name: in.Name})
	if err != nil {
		return apiserver.Job{}, err
	}
	sub := apiserver.SubmitRequest{Name: name, Document: string(doc)}
	if in.Signature != "" {
		if len(in.Signature) > maxSignature {
			return apiserver.Job{}, fmt.Errorf("%w: signature: more than %d bytes", ErrTooLarge, maxSignature)
		}
		if sub.Signature, err = base64.StdEncoding.DecodeString(in.Signature); err != nil {
			return apiserver.Job{}, usagef("signature: want base64 of the DSSE envelope")
		}
	}
	if in.WaitSeconds < 0 || in.WaitSeconds > int(s.maxWait/time.Second) {
		return apiserver.Job{}, usagef("wait_seconds: want 0 to %d", int(s.maxWait/time.Second))
	}
	if !s.writer() {
		return apiserver.Job{}, public(cli.ClassPolicy, cli.ExitPolicy, "auditor tokens are read-only")
	}
	tenant, err := s.b.Jobs.SpecTenant(ctx, name, doc)
	if err != nil {
		return apiserver.Job{}, err
	}
	if !s.p.CanWrite(tenant) {
		return apiserver.Job{}, public(cli.ClassPolicy, cli.ExitPolicy, "token may not submit jobs for tenant %q", tenant)
	}
	j, err := s.b.Jobs.Submit(ctx, sub)
	if err != nil || !in.Wait {
		return j, err
	}
	wait := s.maxWait
	if in.WaitSeconds > 0 {
		wait = time.Duration(in.WaitSeconds) * time.Second
	}
	return s.follow(ctx, req, j, wait)
}

// follow polls a job until it ends, ctx is cancelled (the client cancelled
// the call) or wait passes, notifying each new stage; it returns the job
// as it last saw it.
func (s *server) follow(ctx context.Context, req *mcp.CallToolRequest, j apiserver.Job, wait time.Duration) (apiserver.Job, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	last, step := "", 0.0
	for {
		if at := j.Status + "/" + j.Stage; at != last {
			last = at
			step++
			progress(ctx, req, step, 0, fmt.Sprintf("job %s %s (stage %s)", j.JobID, j.Status, j.Stage))
		}
		if terminal[j.Status] {
			return j, nil
		}
		select {
		case <-ctx.Done():
			return j, nil
		case <-t.C:
		}
		cur, err := s.b.Jobs.Get(ctx, j.JobID)
		if err != nil {
			if ctx.Err() != nil {
				return j, nil
			}
			return j, err
		}
		j = cur
	}
}

func (s *server) status(ctx context.Context, _ *mcp.CallToolRequest, in JobInput) (apiserver.Job, error) {
	return s.job(ctx, in.JobID)
}

func (s *server) list(ctx context.Context, _ *mcp.CallToolRequest, in ListInput) (ListResult, error) {
	if len(in.Tenant) > maxJobID || len(in.Status) > maxJobID || len(in.Spec) > maxJobID {
		return ListResult{}, fmt.Errorf("%w: filters are at most %d bytes", ErrTooLarge, maxJobID)
	}
	if in.Limit < 0 || in.Limit > maxListLimit {
		return ListResult{}, usagef("limit: want 0 to %d", maxListLimit)
	}
	if in.Limit == 0 {
		in.Limit = 100
	}
	f := apiserver.ListFilter{Tenant: in.Tenant, Status: in.Status, Spec: in.Spec}
	if s.p.Tenant != "*" {
		if f.Tenant != "" && f.Tenant != s.p.Tenant {
			return ListResult{}, public(cli.ClassPolicy, cli.ExitPolicy, "token may not list another tenant's jobs")
		}
		f.Tenant = s.p.Tenant
	}
	jobs, err := s.b.Jobs.List(ctx, f)
	if err != nil {
		return ListResult{}, err
	}
	out := ListResult{Jobs: []apiserver.Job{}}
	for _, j := range jobs { // never trust the filter alone
		if s.p.CanRead(j.Tenant) && len(out.Jobs) < in.Limit {
			out.Jobs = append(out.Jobs, j)
		}
	}
	out.Count = len(out.Jobs)
	return out, nil
}

func (s *server) logs(ctx context.Context, _ *mcp.CallToolRequest, in LogsInput) (LogsResult, error) {
	if in.MaxBytes < 0 || in.MaxBytes > MaxLogBytes {
		return LogsResult{}, usagef("max_bytes: want 0 to %d", MaxLogBytes)
	}
	if in.MaxBytes == 0 {
		in.MaxBytes = DefaultLogBytes
	}
	j, err := s.job(ctx, in.JobID)
	if err != nil {
		return LogsResult{}, err
	}
	if s.b.Logs == nil {
		return LogsResult{}, fmt.Errorf("%w: job_logs: no log store", ErrUnavailable)
	}
	tails, err := s.b.Logs.Tail(ctx, j.JobID, in.MaxBytes)
	if err != nil {
		return LogsResult{}, err
	}
	if tails == nil {
		tails = []LogTail{}
	}
	return LogsResult{JobID: j.JobID, Logs: tails}, nil
}

func (s *server) cancel(ctx context.Context, _ *mcp.CallToolRequest, in ReasonInput) (ActResult, error) {
	j, err := s.writable(ctx, in.JobID)
	if err != nil {
		return ActResult{}, err
	}
	if err := s.b.Jobs.Cancel(ctx, j.JobID); err != nil {
		return ActResult{}, err
	}
	return ActResult{JobID: j.JobID, Status: "cancel requested"}, nil
}

// approve passes the gate as the token's identity, never a name the caller
// chose; the job's workflow checks it against the spec's approvers.
func (s *server) approve(ctx context.Context, _ *mcp.CallToolRequest, in ReasonInput) (ActResult, error) {
	if len(in.Reason) > maxReason {
		return ActResult{}, fmt.Errorf("%w: reason: more than %d bytes", ErrTooLarge, maxReason)
	}
	j, err := s.writable(ctx, in.JobID)
	if err != nil {
		return ActResult{}, err
	}
	by := s.p.Identity()
	if err := s.b.Jobs.Approve(ctx, j.JobID, by, in.Reason); err != nil {
		return ActResult{}, err
	}
	return ActResult{JobID: j.JobID, Status: "approved", By: by}, nil
}

// counter makes the buyer's move as the token's identity; the job's
// workflow decides whether it can take it.
func (s *server) counter(ctx context.Context, _ *mcp.CallToolRequest, in CounterInput) (apiserver.CounterReply, error) {
	if (in.Price != 0) == (in.Accept != "") || in.Price < 0 {
		return apiserver.CounterReply{}, usagef("want exactly one of a positive price_minor or accept (a provider name)")
	}
	if len(in.Accept) > maxJobID {
		return apiserver.CounterReply{}, fmt.Errorf("%w: accept: more than %d bytes", ErrTooLarge, maxJobID)
	}
	j, err := s.writable(ctx, in.JobID)
	if err != nil {
		return apiserver.CounterReply{}, err
	}
	b, ok := s.b.Jobs.(apiserver.Bargainer)
	if !ok {
		return apiserver.CounterReply{}, usagef("this server does not take counter-offers")
	}
	rep, err := b.Counter(ctx, j.JobID, s.p.Identity(), apiserver.CounterRequest{Price: in.Price, Accept: in.Accept})
	if err != nil {
		return apiserver.CounterReply{}, err
	}
	rep.JobID = j.JobID
	if rep.Offers == nil {
		rep.Offers = []apiserver.PriceOffer{}
	}
	return rep, nil
}
