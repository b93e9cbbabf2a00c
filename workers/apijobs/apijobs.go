// Package apijobs adapts the job client to the HTTP API: Jobs implements
// apiserver.Jobs over a Temporal client, storing uploaded specs under
// Accord's home and reading receipts and audit hits from provenance.
package apijobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"go.temporal.io/sdk/client"

	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/specs"
	"github.com/accordmesh/accord/workers/jobclient"
)

// Jobs implements apiserver.Jobs over a Temporal client: the job system
// behind `accord serve`.
type Jobs struct {
	Client client.Client
	Home   string            // uploaded specs are kept under Home/uploads
	Prov   *provenance.Local // receipts and audit search
}

var _ apiserver.Jobs = (*Jobs)(nil)

// SpecTenant parses the document alone (an uploaded spec has no siblings to
// extend or import) and returns its tenant.
func (a *Jobs) SpecTenant(_ context.Context, name string, document []byte) (string, error) {
	s, err := specs.Parse(filepath.Base(name), document)
	if err != nil {
		return "", err
	}
	return s.Tenant, nil
}

// Submit stores the document (and its signature beside it, where the admit
// stage looks for it) under a content-addressed name and starts the job.
func (a *Jobs) Submit(ctx context.Context, req apiserver.SubmitRequest) (apiserver.Job, error) {
	doc := []byte(req.Document)
	dir := filepath.Join(a.Home, "uploads", provenance.Digest(doc)[len("sha256:"):])
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return apiserver.Job{}, fmt.Errorf("apijobs: store upload: %w", err)
	}
	path := filepath.Join(dir, filepath.Base(req.Name))
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		return apiserver.Job{}, fmt.Errorf("apijobs: store upload: %w", err)
	}
	if len(req.Signature) > 0 {
		if err := os.WriteFile(path+provenance.SpecSignatureExt, req.Signature, 0o600); err != nil {
			return apiserver.Job{}, fmt.Errorf("apijobs: store signature: %w", err)
		}
	}
	sub, err := jobclient.Submit(ctx, a.Client, path, "")
	if err != nil {
		return apiserver.Job{}, fmt.Errorf("%w: %v", apiserver.ErrInvalid, err)
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
		Cost: st.Cost.Paid, Currency: st.Cost.Currency}, nil
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
	return jobclient.Cancel(ctx, a.Client, jobID, "cancelled through the API")
}

// Approve passes the job's approval gate.
func (a *Jobs) Approve(ctx context.Context, jobID, by string) error {
	return jobclient.Approve(ctx, a.Client, jobID, by)
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
		return nil, fmt.Errorf("%w: %v", apiserver.ErrInvalid, err)
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
