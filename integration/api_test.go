package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/workers/apijobs"
)

// TestAPIServeEndToEnd drives `accord serve`'s handler over the real stack:
// a tenant submits a spec over HTTP, it settles, and another tenant can
// neither see nor touch the job, its receipt or its log entries.
func TestAPIServeEndToEnd(t *testing.T) {
	image := needStack(t)
	home := newHome(t)
	st := startStack(t, home, 0, false)
	defer st.Stop()
	ctx := context.Background()

	store := st.Local.Store
	token := putTenants(t, store, "team-a", "team-b")
	tokA := token(policies.Principal{Tenant: "team-a", Role: policies.RoleTenant, Name: "alice"})
	tokB := token(policies.Principal{Tenant: "team-b", Role: policies.RoleTenant, Name: "bob"})
	auditor := token(policies.Principal{Tenant: "*", Role: policies.RoleAuditor, Name: "audit"})
	fund(t, home, "team-a", 1000)

	prov := &provenance.Local{Home: home, Log: st.Local.Log, Store: provenance.NewStore(provenance.DefaultStoreDir(home))}
	data := artifacts.Local{Dir: artifacts.DefaultDir(home)}
	srv := httptest.NewServer(apiserver.New(&apijobs.Jobs{Client: st.Client, Home: home, Prov: prov}, store,
		apiserver.WithData(data, 1<<30)))
	defer srv.Close()

	call := func(tok, method, path string, body any, out any) int {
		t.Helper()
		var rd *strings.Reader
		switch b := body.(type) {
		case nil:
			rd = strings.NewReader("")
		case []byte: // a data upload, as it is
			rd = strings.NewReader(string(b))
		default:
			j, _ := json.Marshal(b)
			rd = strings.NewReader(string(j))
		}
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}

	// A tenant's image is an artifact it pushed, never a path on the server.
	tar, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	var pushed apiserver.DataResponse
	if code := call(tokA, "POST", "/v1/data", tar, &pushed); code != http.StatusCreated {
		t.Fatalf("push the image: %d", code)
	}
	path := writeSpec(t, t.TempDir(), specDoc{Name: "api-job", Tenant: "team-a",
		Tasks: artifactTask("train", pushed.Digest, []string{"/bin/trainer", "train", "--samples", "300", "--epochs", "5"},
			"  outputs: [metrics.json, model.json]\n  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n")})
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	req := apiserver.SubmitRequest{Name: "api-job.md", Document: string(doc)}
	if code := call(tokB, "POST", "/v1/jobs", req, nil); code != http.StatusForbidden {
		t.Fatalf("team-b submitting team-a's spec: %d, want 403", code)
	}
	var job apiserver.Job
	if code := call(tokA, "POST", "/v1/jobs", req, &job); code != http.StatusCreated || job.JobID == "" || job.Tenant != "team-a" {
		t.Fatalf("submit: %d %+v", code, job)
	}
	waitFor(t, 3*time.Minute, "job settled over the API", func() bool {
		var j apiserver.Job
		call(tokA, "GET", "/v1/jobs/"+job.JobID, nil, &j)
		if j.Status == "failed" || j.Status == "cancelled" {
			t.Fatalf("job ended %s: %+v", j.Status, j)
		}
		return j.Status == "settled"
	})

	for _, p := range []string{"/v1/jobs/" + job.JobID, "/v1/jobs/" + job.JobID + "/receipt"} {
		if code := call(tokB, "GET", p, nil, nil); code != http.StatusNotFound {
			t.Errorf("team-b GET %s: %d, want 404", p, code)
		}
	}
	for _, p := range []string{"/cancel", "/approve"} {
		if code := call(tokB, "POST", "/v1/jobs/"+job.JobID+p, nil, nil); code != http.StatusNotFound {
			t.Errorf("team-b POST %s: %d, want 404", p, code)
		}
	}
	var listB struct{ Jobs []apiserver.Job }
	call(tokB, "GET", "/v1/jobs", nil, &listB)
	for _, j := range listB.Jobs {
		if j.JobID == job.JobID {
			t.Errorf("team-b's listing shows team-a's job")
		}
	}

	var rec struct {
		JobID        string            `json:"job_id"`
		Attestations []json.RawMessage `json:"attestations"`
	}
	if code := call(tokA, "GET", "/v1/jobs/"+job.JobID+"/receipt", nil, &rec); code != http.StatusOK || len(rec.Attestations) != 7 {
		t.Fatalf("receipt: %d, %d attestations, want 7", code, len(rec.Attestations))
	}
	if code := call(auditor, "GET", "/v1/jobs/"+job.JobID+"/receipt", nil, nil); code != http.StatusOK {
		t.Errorf("auditor receipt: %d", code)
	}
	if code := call(auditor, "POST", "/v1/jobs/"+job.JobID+"/cancel", nil, nil); code != http.StatusForbidden {
		t.Errorf("auditor cancel: %d, want 403", code)
	}

	var hitsA, hitsB struct{ Entries []apiserver.AuditHit }
	call(tokA, "GET", "/v1/audit/search?job_id="+job.JobID, nil, &hitsA)
	call(tokB, "GET", "/v1/audit/search?job_id="+job.JobID, nil, &hitsB)
	if len(hitsA.Entries) < 7 || hitsA.Entries[0].Tenant != "team-a" {
		t.Errorf("team-a's audit search: %+v", hitsA.Entries)
	}
	if len(hitsB.Entries) != 0 {
		t.Errorf("team-b's audit search sees team-a's entries: %+v", hitsB.Entries)
	}
	ledgerCheck(t, home)
}
