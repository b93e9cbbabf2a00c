package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/accordmesh/accord/agents/mcp"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/specs"
)

// specFor is a standalone spec for tenant: one task on a digest-pinned
// registry image, budget 5.00 USD.
func specFor(name, tenant string) string {
	return `---
accord: v1
name: ` + name + `
version: 1.0.0
tenant: ` + tenant + `
---

## Tasks

` + "```yaml" + `
train:
  image: registry.example.com/trainer@sha256:` + strings.Repeat("ab", 32) + `
  command: [trainer, train]
  outputs: [metrics.json]
  resources: {cpu: 1, memory: 256MiB, max_duration: 5m}
` + "```" + `

## Budget

` + "```yaml" + `
max_price: 500
currency: USD
` + "```" + `
`
}

// badSpec has an unknown key at line 11.
const badSpec = "---\naccord: v1\nname: bad\nversion: 1.0.0\ntenant: team-a\n---\n\n## Tasks\n\n```yaml\ntrain:\n  image: registry.example.com/x@sha256:" +
	"0000000000000000000000000000000000000000000000000000000000000000\n  comand: [x]\n```\n"

// fakeJobs is the job system in memory: a submitted job runs through its
// stages one status read at a time and settles.
type fakeJobs struct {
	mu       sync.Mutex
	jobs     map[string]*apiserver.Job
	reads    map[string]int
	docs     map[string]string
	approved []string
	n        int
}

var stages = []struct{ status, stage string }{{"pending", ""}, {"running", "negotiate"}, {"running", "execute"}, {"settled", "settle"}}

func newFakeJobs() *fakeJobs {
	return &fakeJobs{jobs: map[string]*apiserver.Job{}, reads: map[string]int{}, docs: map[string]string{}}
}

func (f *fakeJobs) SpecTenant(_ context.Context, name string, doc []byte) (string, error) {
	s, err := specs.ParseStandalone(name, doc)
	if err != nil {
		return "", apiserver.Public(apiserver.ErrInvalid, "%v", err)
	}
	return s.Tenant, nil
}

func (f *fakeJobs) Submit(ctx context.Context, req apiserver.SubmitRequest) (apiserver.Job, error) {
	tenant, err := f.SpecTenant(ctx, req.Name, []byte(req.Document))
	if err != nil {
		return apiserver.Job{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	j := &apiserver.Job{JobID: fmt.Sprintf("job-%d", f.n), Tenant: tenant, Spec: req.Name, Status: "pending"}
	f.jobs[j.JobID], f.docs[j.JobID] = j, req.Document
	return *j, nil
}

func (f *fakeJobs) Get(_ context.Context, id string) (apiserver.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[id]
	if !ok {
		return apiserver.Job{}, apiserver.ErrNotFound
	}
	if j.Status != "cancelled" {
		st := stages[min(f.reads[id], len(stages)-1)]
		j.Status, j.Stage = st.status, st.stage
		f.reads[id]++
	}
	return *j, nil
}

func (f *fakeJobs) List(_ context.Context, lf apiserver.ListFilter) ([]apiserver.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiserver.Job
	for _, j := range f.jobs {
		if lf.Tenant == "" || lf.Tenant == j.Tenant {
			out = append(out, *j)
		}
	}
	return out, nil
}

func (f *fakeJobs) Cancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id].Status = "cancelled"
	return nil
}

func (f *fakeJobs) Approve(_ context.Context, id, by, reason string) error {
	if by != "alice" {
		return apiserver.Public(apiserver.ErrForbidden, "%s is not an approver of this job", by)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.approved = append(f.approved, id+" by "+by+": "+reason)
	return nil
}

// Counter takes a price above 500 or an acceptance of "cheap"; anything
// else is the bad move the workflow would refuse.
func (f *fakeJobs) Counter(_ context.Context, id, by string, req apiserver.CounterRequest) (apiserver.CounterReply, error) {
	switch {
	case req.Accept == "cheap":
		return apiserver.CounterReply{Round: 2, Over: true, Agreed: "cheap", Price: 700}, nil
	case req.Accept != "" || req.Price <= 500:
		return apiserver.CounterReply{}, apiserver.Public(apiserver.ErrBadRequest, "move refused for %s by %s", id, by)
	}
	return apiserver.CounterReply{Round: 1, Offers: []apiserver.PriceOffer{{Provider: "cheap", Price: 700}}}, nil
}

func (f *fakeJobs) Receipt(_ context.Context, id string) (json.RawMessage, error) {
	return json.RawMessage(`{"version":"https://accord.dev/receipt/v1","job_id":"` + id + `","log":{"kind":"embedded"},"attestations":[{"stage":"admit"}]}`), nil
}

func (f *fakeJobs) AuditSearch(_ context.Context, q apiserver.AuditQuery) ([]apiserver.AuditHit, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, ok := f.jobs[q.JobID]
	if !ok {
		return nil, nil
	}
	return []apiserver.AuditHit{{JobID: j.JobID, Tenant: j.Tenant, Stage: "admit", UUID: "u1", LogIndex: 3}}, nil
}

func (f *fakeJobs) SpecDocument(_ context.Context, id string) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "spec.md", []byte(f.docs[id]), nil
}

type fakeModels struct{}

func (fakeModels) Search(_ context.Context, q string, limit int) (json.RawMessage, error) {
	return json.Marshal(map[string]any{"query": q, "results": []map[string]any{{"ref": "acme/legal-es@1.0.0", "score": 0.9}}})
}

func (fakeModels) Inspect(_ context.Context, ref string) (json.RawMessage, error) {
	if ref != "acme/legal-es@1.0.0" {
		return nil, &mcp.ToolError{Class: "not_found", ExitCode: 1, Message: "model " + ref + " not found"}
	}
	return json.Marshal(map[string]any{"ref": ref, "digest": "sha256:00"})
}

// env is a backend with real market, ledger and log-file parts around the
// fake job system.
type env struct {
	jobs *fakeJobs
	b    mcp.Backend
	home string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	l, err := settlement.Open(ctx, settlement.DefaultDSN(home))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if _, err := l.Deposit(ctx, settlement.DepositRequest{Tenant: "team-a", Currency: "USD", Amount: 1000, Key: "t"}); err != nil {
		t.Fatal(err)
	}
	prov := func(name string, cpuHour int64) market.Provider {
		return &market.Static{P: market.Profile{Name: name, Region: "eu", Jurisdictions: []string{"EU"}, Reputation: 0.9,
			Free:    market.Capacity{MilliCPU: 8000, MemoryBytes: 16 << 30, DiskBytes: 100 << 30},
			Pricing: market.Pricing{Currency: "USD", CPUHour: cpuHour, MemoryGiBHour: 1}}}
	}
	j := newFakeJobs()
	return &env{jobs: j, home: home, b: mcp.Backend{
		Jobs: j, Documents: j, Logs: mcp.FileLogs{Home: home}, Statements: l, Models: fakeModels{},
		Quoter: mcp.BrokerQuoter{Broker: broker.Broker{Providers: func(context.Context) ([]market.Provider, error) {
			return []market.Provider{prov("cheap", 4), prov("dear", 40)}, nil
		}}},
		Trust: func(context.Context) (*provenance.TrustStore, error) { return provenance.NewTrustStore(), nil },
	}}
}

var (
	alice   = policies.Principal{Tenant: "team-a", Role: policies.RoleTenant, Name: "alice", ID: "tok_a"}
	bob     = policies.Principal{Tenant: "team-b", Role: policies.RoleTenant, Name: "bob", ID: "tok_b"}
	auditor = policies.Principal{Tenant: "*", Role: policies.RoleAuditor, Name: "audit", ID: "tok_au"}
	mallory = policies.Principal{Tenant: "team-a", Role: policies.RoleTenant, Name: "mallory", ID: "tok_m"}
)

// session connects an in-memory client to a server acting as p; progress
// notifications land in prog.
func (e *env) session(t *testing.T, p policies.Principal, prog *[]string, mu *sync.Mutex) *sdk.ClientSession {
	t.Helper()
	ctx := context.Background()
	st, ct := sdk.NewInMemoryTransports()
	ss, err := mcp.New(e.b, p).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, &sdk.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
			if prog != nil {
				mu.Lock()
				*prog = append(*prog, r.Params.Message)
				mu.Unlock()
			}
		}})
	cs, err := c.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool and decodes its structured content into out; it
// returns the tool error object when the call failed as a tool.
func call(t *testing.T, cs *sdk.ClientSession, tool string, args map[string]any, out any) *toolErr {
	t.Helper()
	res, err := callRaw(cs, tool, args)
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		var te toolErr
		text := res.Content[0].(*sdk.TextContent).Text
		if err := json.Unmarshal([]byte(text), &te); err != nil {
			t.Fatalf("%s: error text is not the CLI's error object: %q", tool, text)
		}
		return &te
	}
	if out != nil {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: decode %s: %v", tool, b, err)
		}
	}
	return nil
}

func callRaw(cs *sdk.ClientSession, tool string, args map[string]any) (*sdk.CallToolResult, error) {
	return cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
}

type toolErr struct {
	Error struct {
		Class    string `json:"class"`
		Message  string `json:"message"`
		ExitCode int    `json:"exit_code"`
	} `json:"error"`
}

func mustFail(t *testing.T, te *toolErr, class string, msg string) {
	t.Helper()
	if te == nil {
		t.Fatalf("want a tool error of class %s, got success", class)
	}
	if te.Error.Class != class || !strings.Contains(te.Error.Message, msg) {
		t.Fatalf("tool error %+v, want class %s with %q", te.Error, class, msg)
	}
}

var allTools = []string{"audit_search", "audit_verify", "job_approve", "job_cancel", "job_counter", "job_list", "job_logs", "job_status",
	"job_submit", "ledger_statement", "market_quote", "model_inspect", "model_search", "receipt_get", "spec_compile", "spec_lint"}

func toolNames(t *testing.T, cs *sdk.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
		if tl.OutputSchema == nil || tl.InputSchema == nil {
			t.Errorf("%s: missing a schema", tl.Name)
		}
	}
	slices.Sort(names)
	return names
}

func TestToolList(t *testing.T) {
	e := newEnv(t)
	if got := toolNames(t, e.session(t, alice, nil, nil)); !slices.Equal(got, allTools) {
		t.Errorf("tools %v, want %v", got, allTools)
	}
	e.b.Models = nil // no model exchange: no model tools
	got := toolNames(t, e.session(t, auditor, nil, nil))
	want := []string{"audit_search", "audit_verify", "job_list", "job_logs", "job_status", "ledger_statement", "market_quote", "receipt_get", "spec_compile", "spec_lint"}
	if !slices.Equal(got, want) {
		t.Errorf("auditor's tools %v, want the read-only %v", got, want)
	}
}

func TestSpecTools(t *testing.T) {
	e := newEnv(t)
	cs := e.session(t, alice, nil, nil)
	var lint mcp.LintResult
	if te := call(t, cs, "spec_lint", map[string]any{"spec": specFor("ok", "team-a"), "name": "ok.md"}, &lint); te != nil || !lint.OK || len(lint.Errors) != 0 {
		t.Fatalf("lint a good spec: %+v %+v", te, lint)
	}
	if te := call(t, cs, "spec_lint", map[string]any{"spec": badSpec, "name": "bad.md"}, &lint); te != nil || lint.OK {
		t.Fatalf("lint a bad spec: %+v %+v", te, lint)
	}
	if !slices.ContainsFunc(lint.Errors, func(p mcp.Problem) bool {
		return p.File == "bad.md" && p.Line == 13 && p.Col == 3 && strings.Contains(p.Message, `unknown key "comand"`)
	}) {
		t.Errorf("problems %+v, want bad.md:13:3 unknown key comand", lint.Errors)
	}
	var plan mcp.PlanResult
	if te := call(t, cs, "spec_compile", map[string]any{"spec": specFor("ok", "team-a")}, &plan); te != nil {
		t.Fatalf("compile: %+v", te)
	}
	if plan.Name != "ok" || plan.Tenant != "team-a" || !slices.Equal(plan.CriticalPath, []string{"train"}) || plan.ReferenceCost <= 0 ||
		plan.MaxCost != 500 || !strings.HasPrefix(plan.ContractDigest, "sha256:") || len(plan.Plan) == 0 {
		t.Errorf("plan %+v", plan)
	}
	mustFail(t, call(t, cs, "spec_compile", map[string]any{"spec": badSpec, "name": "bad.md"}, nil), "invalid_spec", `bad.md:13:3: unknown key "comand"`)
	// A spec sent to a server stands alone: a host path or an extends is refused.
	host := strings.Replace(specFor("h", "team-a"), "registry.example.com/trainer@sha256:"+strings.Repeat("ab", 32), "oci-archive:/etc/passwd", 1)
	mustFail(t, call(t, cs, "spec_compile", map[string]any{"spec": host}, nil), "invalid_spec", "cannot name host paths")
	ext := strings.Replace(specFor("x", "team-a"), "tenant: team-a\n", "tenant: team-a\nextends: /etc/base.md\n", 1)
	if te := call(t, cs, "spec_lint", map[string]any{"spec": ext}, &lint); te != nil || lint.OK || !strings.Contains(lint.Errors[0].Message, "extends") {
		t.Errorf("lint a spec that extends a server file: %+v %+v", te, lint)
	}
	// Oversized and path-like inputs are refused before parsing.
	mustFail(t, call(t, cs, "spec_lint", map[string]any{"spec": strings.Repeat("x", specs.MaxFileSize+1)}, nil), "usage", "limit")
	mustFail(t, call(t, cs, "spec_lint", map[string]any{"spec": specFor("ok", "team-a"), "name": "../../etc/passwd"}, nil), "usage", "plain file name")
	// Arguments outside the schema are usage errors in the CLI's form.
	mustFail(t, call(t, cs, "spec_lint", map[string]any{"path": "/etc/passwd"}, nil), "usage", "path")
}

func TestQuote(t *testing.T) {
	e := newEnv(t)
	var prog []string
	var mu sync.Mutex
	cs := e.session(t, alice, &prog, &mu)
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "market_quote",
		Arguments: map[string]any{"spec": specFor("q", "team-a")}, Meta: sdk.Meta{"progressToken": "q1"}})
	if err != nil || res.IsError {
		t.Fatalf("quote: %v %+v", err, res)
	}
	var q mcp.QuoteResult
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &q)
	// Second-price auction: the cheap provider wins at the dear one's ask.
	if q.Provider != "cheap" || q.Offers != 2 || q.Currency != "USD" || q.Price <= 0 || q.Protocol != "auction" {
		t.Errorf("quote %+v", q)
	}
	var rec market.Result
	if err := json.Unmarshal(q.Record, &rec); err != nil || len(rec.Awards) != 1 || rec.Awards[0].Price != q.Price {
		t.Errorf("record %s: %v", q.Record, err)
	}
	waitLen(t, &prog, &mu, 3)
	// Bob may not quote team-a's spec (its placement rules are team-a's).
	mustFail(t, call(t, e.session(t, bob, nil, nil), "market_quote", map[string]any{"spec": specFor("q", "team-a")}, nil), "policy", "team-a")
	// A job too big for every provider: no offers, with the reasons.
	big := strings.Replace(specFor("big", "team-a"), "cpu: 1,", "cpu: 64,", 1)
	mustFail(t, call(t, cs, "market_quote", map[string]any{"spec": big}, nil), "no_offers", "cheap")
}

// waitLen waits for n progress notifications (they arrive asynchronously).
func waitLen(t *testing.T, s *[]string, mu *sync.Mutex, n int) {
	t.Helper()
	for range 200 {
		mu.Lock()
		got := len(*s)
		mu.Unlock()
		if got >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("progress notifications %q, want at least %d", *s, n)
}

func TestJobLifeCycle(t *testing.T) {
	e := newEnv(t)
	var prog []string
	var mu sync.Mutex
	cs := e.session(t, alice, &prog, &mu)
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "job_submit",
		Arguments: map[string]any{"spec": specFor("j", "team-a"), "name": "j.md", "wait": true}, Meta: sdk.Meta{"progressToken": 7}})
	if err != nil || res.IsError {
		t.Fatalf("submit: %v %+v", err, res)
	}
	var job apiserver.Job
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &job)
	if job.Status != "settled" || job.Tenant != "team-a" {
		t.Fatalf("submit with wait: %+v", job)
	}
	waitLen(t, &prog, &mu, 4)
	mu.Lock()
	if !strings.Contains(strings.Join(prog, "\n"), "settled") {
		t.Errorf("progress %q does not reach settled", prog)
	}
	mu.Unlock()

	var st apiserver.Job
	if te := call(t, cs, "job_status", map[string]any{"job_id": job.JobID}, &st); te != nil || st.JobID != job.JobID {
		t.Errorf("status: %+v %+v", te, st)
	}
	var list mcp.ListResult
	if te := call(t, cs, "job_list", map[string]any{}, &list); te != nil || list.Count != 1 || list.Jobs[0].JobID != job.JobID {
		t.Errorf("list: %+v %+v", te, list)
	}

	// Logs: a bounded tail of each run's file.
	logs := filepath.Join(e.home, "jobs", job.JobID, "logs")
	os.MkdirAll(logs, 0o755)
	os.WriteFile(filepath.Join(logs, job.JobID+"-train-1.log"), []byte(strings.Repeat("epoch\n", 10000)+"accuracy 0.93\n"), 0o644)
	var lr mcp.LogsResult
	if te := call(t, cs, "job_logs", map[string]any{"job_id": job.JobID, "max_bytes": 100}, &lr); te != nil || len(lr.Logs) != 1 {
		t.Fatalf("logs: %+v %+v", te, lr)
	}
	if l := lr.Logs[0]; len(l.Text) != 100 || !l.Truncated || !strings.HasSuffix(l.Text, "accuracy 0.93\n") || l.Bytes != 60014 {
		t.Errorf("log tail %+v", l)
	}
	mustFail(t, call(t, cs, "job_logs", map[string]any{"job_id": job.JobID, "max_bytes": mcp.MaxLogBytes + 1}, nil), "usage", "max_bytes")
	mustFail(t, call(t, cs, "job_logs", map[string]any{"job_id": "../../etc"}, nil), "usage", "job_id")

	var act mcp.ActResult
	if te := call(t, cs, "job_approve", map[string]any{"job_id": job.JobID, "reason": "within budget"}, &act); te != nil || act.By != "alice" {
		t.Errorf("approve: %+v %+v", te, act)
	}
	if len(e.jobs.approved) != 1 || e.jobs.approved[0] != job.JobID+" by alice: within budget" {
		t.Errorf("approvals %q", e.jobs.approved)
	}
	// Mallory holds a team-a token but is not an approver: the job refuses.
	mustFail(t, call(t, e.session(t, mallory, nil, nil), "job_approve", map[string]any{"job_id": job.JobID}, nil), "policy", "mallory is not an approver")
	// The buyer agent's moves: the reply is the sellers' response.
	var rep apiserver.CounterReply
	if te := call(t, cs, "job_counter", map[string]any{"job_id": job.JobID, "price_minor": 600}, &rep); te != nil || rep.JobID != job.JobID || rep.Round != 1 || len(rep.Offers) != 1 {
		t.Errorf("counter: %+v %+v", te, rep)
	}
	if te := call(t, cs, "job_counter", map[string]any{"job_id": job.JobID, "accept": "cheap"}, &rep); te != nil || !rep.Over || rep.Agreed != "cheap" || rep.Price != 700 {
		t.Errorf("accept: %+v %+v", te, rep)
	}
	mustFail(t, call(t, cs, "job_counter", map[string]any{"job_id": job.JobID, "price_minor": 5}, nil), "usage", "move refused for "+job.JobID+" by alice")
	mustFail(t, call(t, cs, "job_counter", map[string]any{"job_id": job.JobID}, nil), "usage", "exactly one")
	mustFail(t, call(t, cs, "job_counter", map[string]any{"job_id": job.JobID, "price_minor": 600, "accept": "cheap"}, nil), "usage", "exactly one")
	if te := call(t, cs, "job_cancel", map[string]any{"job_id": job.JobID}, &act); te != nil || act.Status != "cancel requested" {
		t.Errorf("cancel: %+v %+v", te, act)
	}

	var rec mcp.ReceiptResult
	if te := call(t, cs, "receipt_get", map[string]any{"job_id": job.JobID}, &rec); te != nil || !strings.Contains(string(rec.Receipt), job.JobID) {
		t.Errorf("receipt: %+v %s", te, rec.Receipt)
	}
	var hits mcp.SearchResult
	if te := call(t, cs, "audit_search", map[string]any{"job_id": job.JobID}, &hits); te != nil || len(hits.Entries) != 1 {
		t.Errorf("search: %+v %+v", te, hits)
	}
	mustFail(t, call(t, cs, "audit_search", map[string]any{"job_id": job.JobID, "since": "yesterday"}, nil), "usage", "RFC 3339")
	// A receipt without attestations fails the audit as the CLI's does (class verification).
	mustFail(t, call(t, cs, "audit_verify", map[string]any{"job_id": job.JobID}, nil), "verification", "audit of "+job.JobID+" failed")
	mustFail(t, call(t, cs, "audit_verify", map[string]any{"receipt": "not json"}, nil), "usage", "not a receipt")
	mustFail(t, call(t, cs, "audit_verify", map[string]any{}, nil), "usage", "job_id or receipt")

	var stmt mcp.StatementResult
	if te := call(t, cs, "ledger_statement", map[string]any{}, &stmt); te != nil || stmt.Account != "tenant:team-a" || !strings.Contains(string(stmt.Statement), "1000") {
		t.Errorf("statement: %+v %+v", te, stmt)
	}
	mustFail(t, call(t, cs, "ledger_statement", map[string]any{"account": "provider:cheap"}, nil), "policy", "tenant:team-a")

	var m mcp.ModelResult
	if te := call(t, cs, "model_search", map[string]any{"query": "lang:es"}, &m); te != nil || !strings.Contains(string(m.Result), "acme/legal-es") {
		t.Errorf("model_search: %+v %s", te, m.Result)
	}
	if te := call(t, cs, "model_inspect", map[string]any{"ref": "acme/legal-es@1.0.0"}, &m); te != nil || !strings.Contains(string(m.Result), "digest") {
		t.Errorf("model_inspect: %+v %s", te, m.Result)
	}
	mustFail(t, call(t, cs, "model_inspect", map[string]any{"ref": "acme/none@1.0.0"}, nil), "not_found", "acme/none")
}

// TestIsolation: another tenant's job is not found by every tool and
// resource; an auditor reads but cannot submit, cancel or approve.
func TestIsolation(t *testing.T) {
	e := newEnv(t)
	var job apiserver.Job
	if te := call(t, e.session(t, alice, nil, nil), "job_submit", map[string]any{"spec": specFor("iso", "team-a")}, &job); te != nil {
		t.Fatalf("submit: %+v", te)
	}
	b := e.session(t, bob, nil, nil)
	for _, tool := range []string{"job_status", "job_logs", "job_cancel", "job_approve", "receipt_get", "audit_verify"} {
		mustFail(t, call(t, b, tool, map[string]any{"job_id": job.JobID}, nil), "not_found", "job not found")
	}
	mustFail(t, call(t, b, "job_counter", map[string]any{"job_id": job.JobID, "price_minor": 600}, nil), "not_found", "job not found")
	mustFail(t, call(t, b, "job_submit", map[string]any{"spec": specFor("iso", "team-a")}, nil), "policy", `tenant "team-a"`)
	mustFail(t, call(t, b, "job_list", map[string]any{"tenant": "team-a"}, nil), "policy", "another tenant")
	var list mcp.ListResult
	var hits mcp.SearchResult
	call(t, b, "job_list", map[string]any{}, &list)
	call(t, b, "audit_search", map[string]any{"job_id": job.JobID}, &hits)
	if list.Count != 0 || len(hits.Entries) != 0 {
		t.Errorf("team-b sees team-a's job: %+v %+v", list, hits)
	}
	for _, uri := range []string{"accord://jobs/" + job.JobID + "/receipt", "accord://jobs/" + job.JobID + "/spec", "accord://jobs/" + job.JobID + "/plan"} {
		if _, err := b.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: uri}); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("team-b reads %s: %v", uri, err)
		}
	}
	au := e.session(t, auditor, nil, nil)
	var st apiserver.Job
	if te := call(t, au, "job_status", map[string]any{"job_id": job.JobID}, &st); te != nil || st.Tenant != "team-a" {
		t.Errorf("auditor status: %+v", te)
	}
	for _, tool := range []string{"job_submit", "job_cancel", "job_approve", "job_counter"} {
		res, err := callRaw(au, tool, map[string]any{"job_id": job.JobID, "spec": specFor("iso", "team-a"), "price_minor": 600})
		if err == nil && !res.IsError {
			t.Errorf("auditor called %s", tool)
		}
	}
	if e.jobs.jobs[job.JobID].Status == "cancelled" || len(e.jobs.approved) != 0 || len(e.jobs.jobs) != 1 {
		t.Errorf("an auditor or another tenant changed state")
	}
}

func TestResourcesAndPrompt(t *testing.T) {
	e := newEnv(t)
	cs := e.session(t, alice, nil, nil)
	var job apiserver.Job
	call(t, cs, "job_submit", map[string]any{"spec": specFor("res", "team-a")}, &job)
	read := func(uri string) string {
		t.Helper()
		r, err := cs.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		return r.Contents[0].Text
	}
	if got := read("accord://jobs/" + job.JobID + "/spec"); got != specFor("res", "team-a") {
		t.Errorf("spec resource %q", got)
	}
	var p specs.Plan
	if err := json.Unmarshal([]byte(read("accord://jobs/"+job.JobID+"/plan")), &p); err != nil || p.Name != "res" {
		t.Errorf("plan resource: %v %+v", err, p.Name)
	}
	if !strings.Contains(read("accord://jobs/"+job.JobID+"/receipt"), job.JobID) {
		t.Errorf("receipt resource")
	}
	if !strings.Contains(read("accord://ledger/tenant/team-a/statement"), "tenant:team-a") {
		t.Errorf("statement resource")
	}
	if !strings.HasPrefix(read(mcp.URIReference), "## Spec reference") {
		t.Errorf("spec reference resource")
	}
	pr, err := cs.GetPrompt(context.Background(), &sdk.GetPromptParams{Name: "write_spec",
		Arguments: map[string]string{"goal": "fine-tune a Spanish legal classifier under 20 USD by Friday"}})
	if err != nil {
		t.Fatal(err)
	}
	text := pr.Messages[0].Content.(*sdk.TextContent).Text
	quick, err := os.ReadFile("../../examples/quickstart.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Spanish legal classifier", `tenant is "team-a"`, "## Spec reference", string(quick)} {
		if !strings.Contains(text, want) {
			t.Errorf("prompt lacks %.40q (agents/mcp/example.md must equal examples/quickstart.md)", want)
		}
	}
	if _, err := cs.GetPrompt(context.Background(), &sdk.GetPromptParams{Name: "write_spec", Arguments: map[string]string{"goal": strings.Repeat("x", 5000)}}); err == nil {
		t.Errorf("an oversized goal was accepted")
	}
}

// TestSpecReferenceIsREADMEs keeps the embedded reference equal to the
// README's section.
func TestSpecReferenceIsREADMEs(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(readme), "## Spec reference\n")
	if i < 0 || string(readme[i:]) != mcp.SpecReference {
		t.Errorf("agents/mcp/specref.md differs from README.md's Spec reference section (to its end): run go generate ./agents/mcp")
	}
}

// fakeAuth maps tokens to principals, as the tenancy store does.
type fakeAuth map[string]policies.Principal

func (a fakeAuth) Authenticate(_ context.Context, tok string) (policies.Principal, error) {
	p, ok := a[tok]
	if !ok {
		return p, policies.ErrBadToken
	}
	return p, nil
}

type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

// TestHTTP: the streamable handler mounted in the API behind its tokens.
func TestHTTP(t *testing.T) {
	e := newEnv(t)
	auth := fakeAuth{"ta": alice, "tb": bob, "tau": auditor}
	srv := httptest.NewServer(apiserver.New(e.jobs, auth, apiserver.WithAgents(mcp.Handler(e.b))))
	defer srv.Close()
	connect := func(tok string) (*sdk.ClientSession, error) {
		c := sdk.NewClient(&sdk.Implementation{Name: "test", Version: "1"}, nil)
		return c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: srv.URL + "/mcp",
			HTTPClient: &http.Client{Transport: bearer{tok}}, MaxRetries: -1}, nil)
	}
	if _, err := connect("wrong"); err == nil {
		t.Fatalf("connected with a bad token")
	}
	a, err := connect("ta")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var job apiserver.Job
	if te := call(t, a, "job_submit", map[string]any{"spec": specFor("h", "team-a")}, &job); te != nil {
		t.Fatalf("submit over HTTP: %+v", te)
	}
	// Over HTTP a call holds a response open: its wait is bounded tighter.
	mustFail(t, call(t, a, "job_submit", map[string]any{"spec": specFor("h", "team-a"), "wait": true, "wait_seconds": 601}, nil), "usage", "0 to 600")
	b, err := connect("tb")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustFail(t, call(t, b, "job_status", map[string]any{"job_id": job.JobID}, nil), "not_found", "job not found")
	au, err := connect("tau")
	if err != nil {
		t.Fatal(err)
	}
	defer au.Close()
	if names := toolNames(t, au); slices.Contains(names, "job_submit") {
		t.Errorf("auditor over HTTP lists job_submit")
	}
	if res, err := callRaw(au, "job_submit", map[string]any{"spec": specFor("h", "team-a")}); err == nil && !res.IsError {
		t.Errorf("auditor submitted over HTTP")
	}
	post := func(tok, body string) int {
		req, _ := http.NewRequest("POST", srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Mcp-Session-Id", a.ID())
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A session belongs to the token that opened it.
	if code := post("tb", `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`); code != http.StatusForbidden {
		t.Errorf("team-b's token on team-a's session: %d, want 403", code)
	}
	// An oversized body is refused by the API's upload limit.
	big := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"spec_lint","arguments":{"spec":"` + strings.Repeat("x", apiserver.DefaultMaxUpload) + `"}}}`
	if code := post("ta", big); code != http.StatusRequestEntityTooLarge && code != http.StatusBadRequest {
		t.Errorf("oversized body: %d, want 413", code)
	}
}
