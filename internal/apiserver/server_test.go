package apiserver

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/policies"
)

// fakeJobs is an in-memory job system for the API's unit tests.
type fakeJobs struct {
	mu        sync.Mutex
	jobs      map[string]Job
	actions   []string
	sequence  int
	submitErr error // what Submit fails with, when set
}

func (f *fakeJobs) SpecTenant(_ context.Context, name string, doc []byte) (string, error) {
	t, ok := strings.CutPrefix(strings.TrimSpace(string(doc)), "tenant: ")
	if !ok {
		return "", Public(ErrInvalid, "%s:1:1: missing tenant", name)
	}
	return t, nil
}

func (f *fakeJobs) Submit(ctx context.Context, req SubmitRequest) (Job, error) {
	t, _ := f.SpecTenant(ctx, req.Name, []byte(req.Document))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.submitErr != nil {
		return Job{}, f.submitErr
	}
	f.sequence++
	j := Job{JobID: fmt.Sprintf("job-%d", f.sequence), Tenant: t, Status: "running"}
	f.jobs[j.JobID] = j
	return j, nil
}

func (f *fakeJobs) Get(_ context.Context, id string) (Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return j, ErrNotFound
	}
	return j, nil
}

func (f *fakeJobs) List(_ context.Context, fl ListFilter) ([]Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Job
	for _, j := range f.jobs {
		if fl.Tenant == "" || fl.Tenant == j.Tenant {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeJobs) record(a string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, a)
	return nil
}

func (f *fakeJobs) Cancel(_ context.Context, id string) error { return f.record("cancel " + id) }
func (f *fakeJobs) Approve(_ context.Context, id, by, _ string) error {
	return f.record("approve " + id + " by " + by)
}
func (f *fakeJobs) Counter(_ context.Context, id, by string, req CounterRequest) (CounterReply, error) {
	if err := f.record(fmt.Sprintf("counter %s by %s: %d", id, by, req.Price)); err != nil {
		return CounterReply{}, err
	}
	return CounterReply{Round: 1, Offers: []PriceOffer{{Provider: "p", Price: 900}}}, nil
}
func (f *fakeJobs) Receipt(_ context.Context, id string) (json.RawMessage, error) {
	return json.RawMessage(`{"job_id":"` + id + `"}`), nil
}
func (f *fakeJobs) AuditSearch(context.Context, AuditQuery) ([]AuditHit, error) {
	return []AuditHit{{JobID: "job-a", Tenant: "a", Stage: "spec"}, {JobID: "job-b", Tenant: "b", Stage: "spec"}}, nil
}

type fixture struct {
	srv                        *httptest.Server
	api                        *Server
	store                      *policies.Store
	jobs                       *fakeJobs
	data                       artifacts.Local
	tokA, tokB, auditor, admin string
}

// setup serves the API over a fake job system and a real token store;
// failed requests are logged nowhere unless opts say otherwise.
func setup(t *testing.T, opts ...Option) fixture {
	t.Helper()
	ctx := context.Background()
	store, err := policies.OpenStore(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for _, n := range []string{"a", "b"} {
		if err := store.PutTenant(ctx, policies.Tenant{Name: n, Currency: "USD"}); err != nil {
			t.Fatal(err)
		}
	}
	tok := func(p policies.Principal) string {
		s, err := store.CreateToken(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	jobs := &fakeJobs{jobs: map[string]Job{
		"job-a": {JobID: "job-a", Tenant: "a", Status: "running"},
		"job-b": {JobID: "job-b", Tenant: "b", Status: "running"},
	}}
	f := fixture{jobs: jobs, store: store, data: artifacts.Local{Dir: t.TempDir()},
		tokA:    tok(policies.Principal{Tenant: "a", Role: policies.RoleTenant, Name: "alice"}),
		tokB:    tok(policies.Principal{Tenant: "b", Role: policies.RoleTenant, Name: "bob"}),
		auditor: tok(policies.Principal{Tenant: "*", Role: policies.RoleAuditor, Name: "audit"}),
		admin:   tok(policies.Principal{Role: policies.RoleAdmin, Name: "root"}),
	}
	f.api = New(jobs, store, append([]Option{WithLogger(slog.New(slog.DiscardHandler)), WithData(f.data, DefaultMaxData)}, opts...)...)
	f.srv = httptest.NewServer(f.api)
	t.Cleanup(f.srv.Close)
	return f
}

func (f fixture) call(t *testing.T, token, method, path string, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// path fills a route's job ID; a data upload goes to the job's tenant.
func path(rt Route, job string) string {
	if rt.Path == "/v1/data" {
		return rt.Path + "?tenant=" + strings.TrimPrefix(job, "job-")
	}
	return strings.ReplaceAll(rt.Path, "{id}", job)
}

func submitBody(tenant string) string {
	b, _ := json.Marshal(SubmitRequest{Name: "s.md", Document: "tenant: " + tenant})
	return string(b)
}

// TestCrossTenantDenied enumerates every route: tenant b can neither see nor
// act on tenant a's job, and nothing of a's leaks into b's answers.
func TestCrossTenantDenied(t *testing.T) {
	f := setup(t)
	for _, rt := range Routes {
		if rt.Path == "/v1/providers/{name}" {
			continue // no tenant's: TestProviderHeartbeat
		}
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			body := ""
			if rt.Path == "/v1/jobs" && rt.Method == "POST" {
				body = submitBody("a") // b submitting a's spec
			}
			if strings.HasSuffix(rt.Path, "/counter") {
				body = `{"price_minor": 500}`
			}
			code, out := f.call(t, f.tokB, rt.Method, path(rt, "job-a"), body)
			switch {
			case strings.Contains(rt.Path, "{id}"):
				if code != http.StatusNotFound {
					t.Errorf("b on a's job: %d %s, want 404", code, out)
				}
			case rt.Method == "POST":
				if code != http.StatusForbidden {
					t.Errorf("b submitting for a: %d %s, want 403", code, out)
				}
			default:
				if code != http.StatusOK || strings.Contains(out, `"tenant":"a"`) {
					t.Errorf("b's listing leaks a: %d %s", code, out)
				}
			}
			// The owner gets through.
			if rt.Path == "/v1/jobs" && rt.Method == "POST" {
				body = submitBody("a")
			}
			if code, out := f.call(t, f.tokA, rt.Method, path(rt, "job-a"), body); code >= 300 {
				t.Errorf("a on its own job: %d %s", code, out)
			}
		})
	}
	f.jobs.mu.Lock()
	defer f.jobs.mu.Unlock()
	if want := []string{"cancel job-a", "approve job-a by alice", "counter job-a by alice: 500"}; fmt.Sprint(f.jobs.actions) != fmt.Sprint(want) {
		t.Errorf("actions %v, want only the owner's %v", f.jobs.actions, want)
	}
}

func TestBadTokens(t *testing.T) {
	f := setup(t, WithRateLimit(0, 0))
	for _, rt := range Routes {
		for _, tok := range []string{"", "acc_nope", f.tokA + "0"} {
			if code, _ := f.call(t, tok, rt.Method, path(rt, "job-a"), ""); code != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", rt.Method, rt.Path, tok, code)
			}
		}
	}
}

func TestAuditorReadOnly(t *testing.T) {
	f := setup(t)
	for _, rt := range Routes {
		body := ""
		if rt.Method == "POST" && rt.Path == "/v1/jobs" {
			body = submitBody("a")
		}
		code, out := f.call(t, f.auditor, rt.Method, path(rt, "job-b"), body)
		if rt.Write && code != http.StatusForbidden {
			t.Errorf("auditor %s %s: %d, want 403", rt.Method, rt.Path, code)
		}
		if !rt.Write && code != http.StatusOK {
			t.Errorf("auditor %s %s: %d %s, want 200", rt.Method, rt.Path, code, out)
		}
	}
	if code, out := f.call(t, f.auditor, "GET", "/v1/audit/search", ""); code != 200 || !strings.Contains(out, "job-a") || !strings.Contains(out, "job-b") {
		t.Errorf("organisation auditor search: %d %s", code, out)
	}
	if code, out := f.call(t, f.tokA, "GET", "/v1/audit/search", ""); code != 200 || strings.Contains(out, "job-b") {
		t.Errorf("tenant search leaks: %d %s", code, out)
	}
	if code, _ := f.call(t, f.admin, "POST", "/v1/jobs/job-b/cancel", ""); code != http.StatusAccepted {
		t.Errorf("admin cancel: %d", code)
	}
}

func TestClient(t *testing.T) {
	f := setup(t)
	c := &Client{URL: f.srv.URL, Token: f.tokA}
	var j Job
	if err := c.Do(context.Background(), "POST", "/v1/jobs", SubmitRequest{Document: "tenant: a"}, &j); err != nil || j.Tenant != "a" {
		t.Fatalf("submit: %+v %v", j, err)
	}
	if err := c.Do(context.Background(), "GET", "/v1/jobs/job-b", nil, &j); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("cross-tenant get through the client: %v", err)
	}
}

// TestCounterBody: a counter-offer is exactly one of a positive price or an
// acceptance, in a small JSON object; the reply is the sellers' response.
func TestCounterBody(t *testing.T) {
	f := setup(t, WithRateLimit(0, 0))
	for _, body := range []string{"", "{}", `{"price_minor": -1}`, `{"price_minor": 5, "accept": "p"}`,
		`{"price": 5}`, `{"accept": "` + strings.Repeat("x", 200) + `"}`, `{"price_minor": 5` + strings.Repeat(" ", 5000) + `}`} {
		if code, out := f.call(t, f.tokA, "POST", "/v1/jobs/job-a/counter", body); code != http.StatusBadRequest {
			t.Errorf("body %.40q: %d %s, want 400", body, code, out)
		}
	}
	code, out := f.call(t, f.tokA, "POST", "/v1/jobs/job-a/counter", `{"accept": "p"}`)
	var rep CounterReply
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != http.StatusOK || rep.JobID != "job-a" || len(rep.Offers) != 1 {
		t.Fatalf("%d %s", code, out)
	}
}
