// Package apijobs adapts the job client to the HTTP API: Jobs implements
// apiserver.Jobs over a Temporal client, storing uploaded specs under
// Accord's home and reading receipts and audit hits from provenance.
//
// An uploaded spec stands alone: it is parsed with specs.ParseStandalone,
// so `extends` and `imports` are refused (400) and nothing in it is ever
// resolved against the server's files. Uploads live in
// Home/uploads/<document sha256>/ with a marker per job that uses them;
// SweepUploads removes them once every such job has finished and a
// retention has passed.
package apijobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workflows"
)

// Jobs implements apiserver.Jobs over a Temporal client: the job system
// behind `accord serve`.
type Jobs struct {
	Client client.Client
	Home   string            // uploaded specs are kept under Home/uploads
	Prov   *provenance.Local // receipts and audit search

	// uploads serialises Submit's writes with SweepUploads's removals.
	uploads sync.Mutex
	// closed reports when a job finished (tests replace it); nil asks
	// Temporal.
	closed func(ctx context.Context, jobID string) (time.Time, bool, error)
}

var _ apiserver.Jobs = (*Jobs)(nil)

// SpecTenant parses the document alone and returns its tenant. An upload
// has no siblings on the server: extends and imports are refused before
// any file is read.
func (a *Jobs) SpecTenant(_ context.Context, name string, document []byte) (string, error) {
	s, err := parseUpload(name, document)
	if err != nil {
		return "", err
	}
	return s.Tenant, nil
}

// parseUpload parses an uploaded spec as specs.ParseStandalone does and
// maps its errors to the API's: the caller sees the problems in its own
// document, positioned in it, and nothing of the server.
func parseUpload(name string, document []byte) (*specs.Spec, error) {
	if err := apiserver.CheckName(name); err != nil {
		return nil, err
	}
	s, err := specs.ParseStandalone(name, document)
	var list specs.ErrorList
	switch {
	case errors.Is(err, specs.ErrNotStandalone):
		return nil, apiserver.Public(apiserver.ErrBadRequest, "%s", strings.TrimPrefix(err.Error(), "specs: "))
	case errors.As(err, &list):
		return nil, apiserver.Public(apiserver.ErrInvalid, "%s", list.Error())
	case err != nil:
		return nil, fmt.Errorf("apijobs: parse upload: %w", err)
	}
	// Host paths are the operator's: a tenant's spec must not mount or
	// import one, or it could read the worker's keys or another tenant's
	// data. Its inputs and images are artifacts it pushed, or registry
	// images pinned by digest.
	if paths := specs.HostInputs(s); len(paths) > 0 {
		return nil, apiserver.Public(apiserver.ErrInvalid, "a spec sent through the API cannot name host paths; "+
			"push the file with `accord data push FILE` and use `artifact: sha256:…` for an input or `image: artifact:sha256:…` "+
			"for an OCI archive (or an upstream output with from:, or a registry image pinned by digest): %s", strings.Join(paths, "; "))
	}
	return s, nil
}

// Submit checks that the document stands alone, stores it (and its
// signature beside it, where the admit stage looks for it) under a
// content-addressed name with a marker for the job, and starts the job.
func (a *Jobs) Submit(ctx context.Context, req apiserver.SubmitRequest) (apiserver.Job, error) {
	doc := []byte(req.Document)
	if _, err := parseUpload(req.Name, doc); err != nil {
		return apiserver.Job{}, err
	}
	jobID := jobclient.NewJobID()
	path, err := a.store(jobID, req.Name, doc, req.Signature)
	if err != nil {
		return apiserver.Job{}, err
	}
	sub, err := jobclient.Submit(ctx, a.Client, path, jobID)
	if err != nil {
		a.unmark(path, jobID)
		return apiserver.Job{}, fmt.Errorf("apijobs: submit: %w", err)
	}
	return apiserver.Job{JobID: sub.JobID, Tenant: sub.Tenant, Spec: sub.Spec, Status: "pending"}, nil
}

// Get returns a job's status.
func (a *Jobs) Get(ctx context.Context, jobID string) (apiserver.Job, error) {
	st, err := jobclient.Status(ctx, a.Client, jobID)
	if errors.Is(err, jobclient.ErrNoJob) {
		return apiserver.Job{}, apiserver.ErrNotFound
	}
	if err != nil && st.JobID == "" {
		return apiserver.Job{}, err
	}
	return apiserver.Job{JobID: jobID, Tenant: st.Tenant, Spec: st.Spec, Status: st.Status, Stage: st.Stage,
		Cost: st.Cost.Paid, Currency: st.Cost.Currency, Bargain: bargainOf(st.Bargain)}, nil
}

// bargainOf is a bargaining job's round as the API shows it.
func bargainOf(b *workflows.BargainStatus) *apiserver.Bargain {
	if b == nil {
		return nil
	}
	return &apiserver.Bargain{Round: b.Round, DeadlineRound: b.DeadlineRound, Budget: b.Budget, Currency: b.Currency,
		Timeout: b.Timeout, Offers: offersOf(b.Offers)}
}

func offersOf(offers []workflows.BargainOffer) []apiserver.PriceOffer {
	out := make([]apiserver.PriceOffer, 0, len(offers))
	for _, o := range offers {
		out = append(out, apiserver.PriceOffer{Provider: o.Provider, Price: o.Price})
	}
	return out
}

// Counter makes the buyer agent's move in a bargaining job as by, the
// identity of the caller's token; the workflow's refusal (not bargaining,
// a move it cannot take) is the caller's to read.
func (a *Jobs) Counter(ctx context.Context, jobID, by string, req apiserver.CounterRequest) (apiserver.CounterReply, error) {
	out, err := jobclient.Counter(ctx, a.Client, jobID, workflows.CounterInput{By: by, Price: req.Price, Accept: req.Accept})
	switch {
	case errors.Is(err, jobclient.ErrNotBargaining):
		return apiserver.CounterReply{}, apiserver.Public(apiserver.ErrConflict, "%s", strings.TrimPrefix(err.Error(), jobclient.ErrNotBargaining.Error()+": "))
	case errors.Is(err, jobclient.ErrBadMove):
		return apiserver.CounterReply{}, apiserver.Public(apiserver.ErrBadRequest, "%s", strings.TrimPrefix(err.Error(), jobclient.ErrBadMove.Error()+": "))
	case err != nil:
		return apiserver.CounterReply{}, finished(err)
	}
	return apiserver.CounterReply{JobID: jobID, Round: out.Round, Over: out.Over, Agreed: out.Agreed, Price: out.Price,
		Offers: offersOf(out.Offers)}, nil
}

// List lists jobs by search attributes.
func (a *Jobs) List(ctx context.Context, f apiserver.ListFilter) ([]apiserver.Job, error) {
	rows, err := jobclient.List(ctx, a.Client, jobclient.Filter{Tenant: f.Tenant, Status: f.Status, Spec: f.Spec})
	if err != nil {
		return nil, err
	}
	out := make([]apiserver.Job, 0, len(rows))
	for _, r := range rows {
		out = append(out, apiserver.Job{JobID: r.JobID, Tenant: r.Tenant, Spec: r.Spec, Status: r.Status, StartedAt: r.Started, ClosedAt: r.Closed})
	}
	return out, nil
}

// Cancel asks the job to cancel.
func (a *Jobs) Cancel(ctx context.Context, jobID string) error {
	return finished(jobclient.Cancel(ctx, a.Client, jobID, "cancelled through the API"))
}

// Approve asks to pass the job's approval gate; by is the identity of the
// caller's token, never a name the caller chose. The workflow's refusal
// (not an approver, not at the gate) is the caller's to read.
func (a *Jobs) Approve(ctx context.Context, jobID, by, reason string) error {
	err := jobclient.Approve(ctx, a.Client, jobID, workflows.ApproveInput{By: by, Reason: reason})
	switch {
	case errors.Is(err, jobclient.ErrNotApprover):
		return apiserver.Public(apiserver.ErrForbidden, "%s", strings.TrimPrefix(err.Error(), jobclient.ErrNotApprover.Error()+": "))
	case errors.Is(err, jobclient.ErrNotAwaitingApproval):
		return apiserver.Public(apiserver.ErrConflict, "%s", strings.TrimPrefix(err.Error(), jobclient.ErrNotAwaitingApproval.Error()+": "))
	}
	return finished(err)
}

// finished maps the error of a signal to a job that exists (the server
// has read it) but takes no more signals.
func finished(err error) error {
	if errors.Is(err, jobclient.ErrNoJob) {
		return apiserver.Public(apiserver.ErrConflict, "the job has finished")
	}
	return err
}

// Receipt builds the job's receipt from the attestation store and the log.
func (a *Jobs) Receipt(ctx context.Context, jobID string) (json.RawMessage, error) {
	r, err := provenance.BuildReceipt(ctx, jobID, a.Prov.Store, a.Prov.Log)
	if errors.Is(err, provenance.ErrNotFound) {
		return nil, apiserver.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return json.Marshal(r)
}

// AuditSearch searches the log; each hit carries its job's tenant so the
// server can filter by the caller's scope.
func (a *Jobs) AuditSearch(ctx context.Context, q apiserver.AuditQuery) ([]apiserver.AuditHit, error) {
	hits, err := provenance.Search(ctx, a.Prov.Log, provenance.SearchQuery{
		JobID: q.JobID, SpecDigest: q.SpecDigest, Artifact: q.ArtifactDigest, Since: q.Since, Until: q.Until,
	})
	if errors.Is(err, provenance.ErrEmptyQuery) {
		return nil, apiserver.Public(apiserver.ErrInvalid, "audit search needs job_id, spec_digest or artifact_digest")
	}
	if err != nil {
		return nil, err
	}
	tenants := map[string]string{}
	out := make([]apiserver.AuditHit, 0, len(hits))
	for _, h := range hits {
		t, ok := tenants[h.JobID]
		if !ok {
			if st, err := jobclient.Status(ctx, a.Client, h.JobID); err == nil || st.Tenant != "" {
				t = st.Tenant
			}
			tenants[h.JobID] = t
		}
		out = append(out, apiserver.AuditHit{JobID: h.JobID, Tenant: t, Stage: h.Stage, UUID: h.UUID,
			LogIndex: h.LogIndex, Time: h.IntegratedTime.Unix()})
	}
	return out, nil
}
