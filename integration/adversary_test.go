package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	agentmcp "github.com/accordmesh/accord/agents/mcp"
	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/runtimes/containerd"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/apijobs"
	"github.com/accordmesh/accord/workers/jobclient"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
	"github.com/accordmesh/accord/workflows"
)

// adversary is one tenant attacking the platform through `accord serve`'s
// handler on the real stack (HTTP API → job workflow → containerd), with a
// victim tenant beside it.
type adversary struct {
	t        *testing.T
	home     string
	st       *stack.Stack
	srv      *httptest.Server
	mallory  string // the attacker's token
	victim   string // another tenant's token
	image    string // the trainer image, pushed by the attacker: artifact:sha256:…
	ledger   *settlement.Ledger
	balance0 int64
}

// TestAdversary runs the attacks of issue 19 through the whole stack and
// shows each refused with a clear error and nothing lost: the ledger's
// invariants hold, no container or mount is left, no host file is read,
// and the attacker's money moves only for work done.
func TestAdversary(t *testing.T) {
	needStack(t)
	a := newAdversary(t)
	defer a.st.Stop()

	t.Run("host path input", a.hostPathInput)
	t.Run("host image", a.hostImage)
	t.Run("host path straight to Temporal", a.hostPathDirect)
	t.Run("composition probes server files", a.compositionProbe)
	t.Run("another tenant's artifact", a.foreignArtifact)
	t.Run("tree over another tenant's blob", a.foreignTree)
	t.Run("drain a provider's bond", a.drainBond)
	t.Run("approve its own job", a.selfApprove)
	t.Run("unbounded verifier", a.hangingVerifier)
	t.Run("cancel during verification still pays", a.cancelDuringVerify)
	t.Run("MCP routes", a.mcpRoutes)

	a.noneLeft()
	ledgerCheck(t, a.home)
}

func newAdversary(t *testing.T) *adversary {
	home := newHome(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// As `accord serve` beside `accord worker`: no tenant is created by a
	// request, and the worker mounts no host path.
	st, err := stack.Start(ctx, stack.Options{Home: home, Local: local.Options{TestDuration: testDuration}})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	a := &adversary{t: t, home: home, st: st}
	store := st.Local.Store
	token := putTenants(t, store, "mallory", "victim")
	a.mallory = token(policies.Principal{Tenant: "mallory", Role: policies.RoleTenant, Name: "mallory@evil.example"})
	a.victim = token(policies.Principal{Tenant: "victim", Role: policies.RoleTenant, Name: "alice@acme.example"})
	fund(t, home, "mallory", 1000)

	data := artifacts.Local{Dir: artifacts.DefaultDir(home)}
	prov := &provenance.Local{Home: home, Log: st.Local.Log, Store: provenance.NewStore(provenance.DefaultStoreDir(home))}
	jobs := &apijobs.Jobs{Client: st.Client, Home: home, Prov: prov}
	a.srv = httptest.NewServer(apiserver.New(jobs, store, apiserver.WithData(data, 1<<30),
		apiserver.WithAgents(agentmcp.Handler(mcpBackend(t, home, st, jobs)))))
	t.Cleanup(a.srv.Close)

	tar, err := os.ReadFile(trainerPath)
	if err != nil {
		t.Fatal(err)
	}
	var pushed apiserver.DataResponse
	if code, body := a.call(a.mallory, "POST", "/v1/data", tar, &pushed); code != http.StatusCreated {
		t.Fatalf("push the image: %d %s", code, body)
	}
	a.image = "artifact:" + pushed.Digest
	a.ledger = ledgerCheck(t, home)
	a.balance0 = a.balance()
	return a
}

// call sends body (bytes as they are, anything else as JSON) and decodes
// the answer into out; it returns the status and the raw body.
func (a *adversary) call(tok, method, path string, body, out any) (int, string) {
	a.t.Helper()
	var rd io.Reader = http.NoBody
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, a.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if out != nil {
		_ = json.Unmarshal(raw, out)
	}
	if strings.Contains(string(raw), a.home) {
		a.t.Errorf("%s %s: the answer names the server's home: %s", method, path, raw)
	}
	return resp.StatusCode, string(raw)
}

func (a *adversary) balance() int64 {
	a.t.Helper()
	b, err := a.ledger.Balance(context.Background(), settlement.TenantAccount("mallory"), "USD")
	if err != nil {
		a.t.Fatal(err)
	}
	return b
}

// spec renders a one-task spec of the attacker's; extra is appended to the
// task, sections are whole Markdown sections.
func (a *adversary) spec(name, image, taskExtra, sections string) apiserver.SubmitRequest {
	doc := fmt.Sprintf("---\naccord: v1\nname: %s\nversion: 1.0.0\ntenant: mallory\n---\n\n# %s\n\n## Tasks\n\n```yaml\n"+
		"train:\n  image: %s\n  command: [trainer, train, --samples, \"200\", --epochs, \"3\"]\n  outputs: [metrics.json]\n"+
		"  resources: {cpu: 250m, memory: 128MiB, max_duration: 5m}\n%s```\n\n"+
		"## Budget\n\n```yaml\nmax_price: 500\ncurrency: USD\npreference: cheapest\n```\n\n%s",
		name, name, image, taskExtra, sections)
	return apiserver.SubmitRequest{Name: name + ".md", Document: doc}
}

// refused submits a spec that must be refused at upload, before any job.
func (a *adversary) refused(req apiserver.SubmitRequest, want string) {
	a.t.Helper()
	code, body := a.call(a.mallory, "POST", "/v1/jobs", req, nil)
	if code < 400 || code >= 500 || !strings.Contains(body, want) {
		a.t.Errorf("got %d %s, want a 4xx naming %q", code, body, want)
	}
	if b := a.balance(); b != a.balance0 {
		a.t.Errorf("the attacker's balance moved: %d → %d", a.balance0, b)
	}
}

// run submits a spec over the API, calls during (if set) with each status
// the API shows while the job runs, and returns the job's result.
func (a *adversary) run(req apiserver.SubmitRequest, during func(apiserver.Job)) workflows.JobResult {
	a.t.Helper()
	var job apiserver.Job
	if code, body := a.call(a.mallory, "POST", "/v1/jobs", req, &job); code != http.StatusCreated {
		a.t.Fatalf("submit: %d %s", code, body)
	}
	waitFor(a.t, 4*time.Minute, "job "+job.JobID+" ended", func() bool {
		var j apiserver.Job
		a.call(a.mallory, "GET", "/v1/jobs/"+job.JobID, nil, &j)
		if during != nil {
			during(j)
		}
		return j.Status == "settled" || j.Status == "failed" || j.Status == "cancelled"
	})
	res := result(a.t, a.st.Client, job.JobID, time.Minute)
	a.t.Logf("job %s: %s %s at %s: %s (paid %d, refunded %d)", res.JobID, res.Status, res.Class, res.Stage, res.Error, res.Paid, res.Refunded)
	return res
}

func (a *adversary) hostPathInput(t *testing.T) {
	a.refused(a.spec("steal-key", a.image, "  inputs: [{name: k, path: ../../keys/worker.key, target: /in/k}]\n", ""), "accord data push")
	a.refused(a.spec("steal-daemon", a.image, "  inputs: [{name: d, path: /etc, target: /in/d}]\n", ""), "accord data push")
}

// hostPathDirect skips the API: a spec handed to Temporal directly (as
// `accord submit` does) still cannot mount a host path, because the worker
// resolves host paths only under its operator's --host-inputs roots, and
// this worker has none.
func (a *adversary) hostPathDirect(t *testing.T) {
	req := a.spec("direct", a.image, "  inputs: [{name: k, path: ../../keys/worker.key, target: /in/k}]\n", "")
	path := filepath.Join(t.TempDir(), req.Name)
	if err := os.WriteFile(path, []byte(req.Document), 0o644); err != nil {
		t.Fatal(err)
	}
	sub, err := jobclient.Submit(context.Background(), a.st.Client, path, "")
	if err != nil {
		t.Fatal(err)
	}
	res := result(t, a.st.Client, sub.JobID, 2*time.Minute)
	if res.Status != workflows.StatusFailed || !strings.Contains(res.Error, "outside the worker's --host-inputs roots") {
		t.Errorf("a host path submitted straight to Temporal: %s %q", res.Status, res.Error)
	}
	if res.Tasks["train"].State == workflows.TaskSucceeded {
		t.Errorf("the task ran: %+v", res.Tasks["train"])
	}
	if b := a.balance(); b != a.balance0 {
		t.Errorf("balance %d → %d", a.balance0, b)
	}
}

func (a *adversary) hostImage(t *testing.T) {
	a.refused(a.spec("host-image", "oci-archive:"+trainerPath, "", ""), "oci-archive")
}

func (a *adversary) compositionProbe(t *testing.T) {
	req := a.spec("probe", a.image, "", "")
	req.Document = strings.Replace(req.Document, "tenant: mallory\n", "tenant: mallory\nextends: ../../keys/worker.key\n", 1)
	a.refused(req, "cannot use extends or imports")
}

func (a *adversary) foreignArtifact(t *testing.T) {
	var secret apiserver.DataResponse
	if code, body := a.call(a.victim, "POST", "/v1/data", []byte("the victim's training data\n"), &secret); code != http.StatusCreated {
		t.Fatalf("victim's push: %d %s", code, body)
	}
	// The digest is all the attacker needs to name it: outputs' digests are
	// public in the transparency log.
	job := a.run(a.spec("foreign-input", a.image, "  inputs: [{name: s, artifact: "+secret.Digest+", target: /in/s}]\n", ""), nil)
	if job.Status != "failed" || !strings.Contains(job.Error, "is not yours or does not exist") {
		t.Errorf("job with another tenant's input: %s %q", job.Status, job.Error)
	}
	if b := a.balance(); b != a.balance0 {
		t.Errorf("refunded in full expected: balance %d → %d", a.balance0, b)
	}
}

func (a *adversary) foreignTree(t *testing.T) {
	var secret apiserver.DataResponse
	a.call(a.victim, "POST", "/v1/data", []byte("another secret\n"), &secret)
	tree := fmt.Sprintf(`{"mediaType":"application/vnd.accord.tree.v1+json","entries":[{"path":"s","digest":%q,"size":15,"mode":"0644"}],"dirs":[]}`, secret.Digest)
	req, _ := http.NewRequest("POST", a.srv.URL+"/v1/data", strings.NewReader(tree))
	req.Header.Set("Authorization", "Bearer "+a.mallory)
	req.Header.Set("Content-Type", "application/vnd.accord.tree.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a tree over the victim's blob: %d, want 403", resp.StatusCode)
	}
}

func (a *adversary) drainBond(t *testing.T) {
	job := a.run(a.spec("drain", a.image, "", "## Settlement\n\n```yaml\npay_on_success: true\n"+
		"sla: {deadline: 1ms, refund_percent: 100, slash_percent: 100}\n```\n"), nil)
	if job.Status != "failed" || job.Class != "no_offers" || !strings.Contains(job.Error, "sla") {
		t.Errorf("an SLA no provider agreed to: %s %s %q", job.Status, job.Class, job.Error)
	}
	if b := a.balance(); b != a.balance0 {
		t.Errorf("balance %d → %d", a.balance0, b)
	}
}

func (a *adversary) selfApprove(t *testing.T) {
	req := a.spec("gated", a.image, "", "## Approval\n\n```yaml\nrequired: true\napprovers: [alice@acme.example]\n```\n")
	var job apiserver.Job
	if code, body := a.call(a.mallory, "POST", "/v1/jobs", req, &job); code != http.StatusCreated {
		t.Fatalf("submit: %d %s", code, body)
	}
	waitFor(t, 2*time.Minute, "the approval gate", func() bool {
		var j apiserver.Job
		a.call(a.mallory, "GET", "/v1/jobs/"+job.JobID, nil, &j)
		return j.Status == "awaiting_approval"
	})
	if code, body := a.call(a.mallory, "POST", "/v1/jobs/"+job.JobID+"/approve", map[string]string{"reason": "me"}, nil); code != http.StatusForbidden || !strings.Contains(body, "approvers") {
		t.Errorf("the submitter approving its own job: %d %s, want 403 naming the approvers", code, body)
	}
	if code, _ := a.call(a.victim, "POST", "/v1/jobs/"+job.JobID+"/approve", nil, nil); code != http.StatusNotFound {
		t.Errorf("another tenant's approver: %d, want 404 (not its job)", code)
	}
	a.call(a.mallory, "POST", "/v1/jobs/"+job.JobID+"/cancel", nil, nil)
	var end apiserver.Job
	waitFor(t, time.Minute, "cancelled", func() bool {
		a.call(a.mallory, "GET", "/v1/jobs/"+job.JobID, nil, &end)
		return end.Status == "cancelled"
	})
	if b := a.balance(); b != a.balance0 {
		t.Errorf("balance %d → %d", a.balance0, b)
	}
}

// verification renders a Verification section with one test on the task.
func verification(cmd string) string {
	return "## Verification\n\n```yaml\ntests:\n  - name: check\n    task: train\n    command: " + cmd + "\n    expect_exit: 0\n```\n\n"
}

// hang is a verifier that would run for hours (the image has no sleep).
const hang = `[trainer, train, --samples, "20000", --epochs, "1000000000"]`

// testDuration is the worker's bound on a verifier container here.
const testDuration = 20 * time.Second

func (a *adversary) hangingVerifier(t *testing.T) {
	before := a.balance()
	job := a.run(a.spec("hang", a.image, "", verification(hang)), nil)
	if job.Status != "failed" || job.Class != "verification" || len(job.Tests) != 1 || job.Tests[0].Passed {
		t.Errorf("a verifier that never ends: %s %s %q %+v", job.Status, job.Class, job.Error, job.Tests)
	}
	if v := job.Stages[workflows.StageVerify]; v.End.Sub(v.Start) < testDuration || v.End.Sub(v.Start) > 3*testDuration {
		t.Errorf("verification took %v, want the %v bound", v.End.Sub(v.Start), testDuration)
	}
	if b := a.balance(); b > before {
		t.Errorf("balance rose %d → %d", before, b)
	}
	a.noneLeft()
}

func (a *adversary) cancelDuringVerify(t *testing.T) {
	before := a.balance()
	var cancelled bool
	job := a.run(a.spec("walk-away", a.image, "", verification(hang)), func(j apiserver.Job) {
		if !cancelled && j.Stage == "verify" {
			cancelled = true
			a.call(a.mallory, "POST", "/v1/jobs/"+j.JobID+"/cancel", nil, nil)
		}
	})
	if job.Status != "cancelled" || job.Paid <= 0 || !slices.Contains(job.Compensated, "settle-work") {
		t.Fatalf("cancelled after execution: %s, paid %d, compensations %v: want the work paid", job.Status, job.Paid, job.Compensated)
	}
	if spent := before - a.balance(); spent != job.Paid {
		t.Errorf("the attacker's balance fell by %d, the job paid %d", spent, job.Paid)
	}
	a.noneLeft()
}

// noneLeft asserts no container of any job remains and no mount is left
// under the home.
func (a *adversary) noneLeft() {
	a.t.Helper()
	rt, ok := a.st.Local.Runtime.(*containerd.Runtime)
	if !ok {
		a.t.Fatalf("runtime %T", a.st.Local.Runtime)
	}
	ctx := namespaces.WithNamespace(context.Background(), rt.Namespace())
	waitFor(a.t, time.Minute, "no container left", func() bool {
		cs, err := rt.Client().Containers(ctx)
		return err == nil && len(cs) == 0
	})
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		a.t.Fatal(err)
	}
	if strings.Contains(string(mounts), filepath.Join(a.home, "containerd", "tasks")) {
		a.t.Errorf("a task mount is left under %s", a.home)
	}
}

// mcpRoutes attacks through the agent interface (/mcp): the victim's job
// is "not found" to every job tool and resource, a path is never read in
// place of a spec, and oversized inputs are refused before any work.
func (a *adversary) mcpRoutes(t *testing.T) {
	ctx := context.Background()
	balance0 := a.balance()
	victim := mcpSession(t, a.srv.URL+"/mcp", a.victim)
	req := a.spec("victim-job", a.image, "", "")
	req.Document = strings.Replace(req.Document, "tenant: mallory", "tenant: victim", 1)
	job, class, msg := mcpCall(t, victim, "job_submit", map[string]any{"spec": req.Document, "name": req.Name})
	if class != "" {
		t.Fatalf("the victim's submit: %s: %s", class, msg)
	}
	id := job["job_id"].(string)
	mal := mcpSession(t, a.srv.URL+"/mcp", a.mallory)
	seen := func(what, text string) {
		if strings.Contains(text, a.home) {
			t.Errorf("%s: the answer names the server's home: %s", what, text)
		}
	}
	for _, tool := range []string{"job_status", "job_logs", "job_cancel", "job_approve", "receipt_get", "audit_verify"} {
		args := map[string]any{"job_id": id}
		if tool == "job_approve" || tool == "job_cancel" {
			args["reason"] = "mine now"
		}
		_, class, msg := mcpCall(t, mal, tool, args)
		if class != "not_found" || msg != "job not found" {
			t.Errorf("%s on the victim's job: %s %q, want not_found", tool, class, msg)
		}
	}
	for _, uri := range []string{"accord://jobs/" + id + "/receipt", "accord://jobs/" + id + "/spec", "accord://jobs/" + id + "/plan",
		"accord://ledger/tenant/victim/statement", "accord://jobs/../../keys/worker.key/spec"} {
		if r, err := mal.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri}); err == nil {
			t.Errorf("read %s: %v", uri, r.Contents[0].Text[:min(80, len(r.Contents[0].Text))])
		}
	}
	if _, class, _ := mcpCall(t, mal, "ledger_statement", map[string]any{"account": "tenant:victim"}); class != "policy" {
		t.Errorf("the victim's statement: %s, want policy", class)
	}
	var hits map[string]any
	if hits, class, _ = mcpCall(t, mal, "audit_search", map[string]any{"job_id": id}); class != "" || len(hits["entries"].([]any)) != 0 {
		t.Errorf("audit search shows the victim's entries: %s %v", class, hits)
	}

	// A path in place of a spec is text, never a file to read.
	for _, args := range []map[string]any{
		{"spec": "/etc/passwd"},
		{"spec": filepath.Join(a.home, "keys", "worker.key")},
		{"spec": a.spec("p", "oci-archive:../../keys/worker.key", "", "").Document},
		{"spec": a.spec("p", a.image, "", "").Document, "name": "../../keys/worker.key"},
	} {
		for _, tool := range []string{"spec_compile", "market_quote", "job_submit"} {
			_, class, msg := mcpCall(t, mal, tool, args)
			if class != "invalid_spec" && class != "usage" {
				t.Errorf("%s with a path: %s %q, want invalid_spec or usage", tool, class, msg)
			}
			seen(tool, msg)
		}
	}
	if _, class, _ := mcpCall(t, mal, "spec_lint", map[string]any{"path": "/etc/passwd"}); class == "" {
		t.Errorf("spec_lint took a path argument")
	}

	// Oversized inputs.
	huge := strings.Repeat("x", 4<<20+1)
	for tool, args := range map[string]map[string]any{
		"spec_lint":    {"spec": huge},
		"job_submit":   {"spec": huge},
		"job_logs":     {"job_id": id, "max_bytes": 1 << 30},
		"job_list":     {"limit": 1 << 30},
		"job_approve":  {"job_id": id, "reason": strings.Repeat("r", 4096)},
		"audit_verify": {"receipt": strings.Repeat("{", 64)},
	} {
		if _, class, msg := mcpCall(t, mal, tool, args); class != "usage" && class != "not_found" {
			t.Errorf("oversized %s: %s %q, want usage", tool, class, msg)
		}
	}
	big := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"spec_lint","arguments":{"spec":"` + strings.Repeat("x", apiserver.DefaultMaxUpload) + `"}}}`)
	r, _ := http.NewRequest("POST", a.srv.URL+"/mcp", bytes.NewReader(big))
	r.Header.Set("Authorization", "Bearer "+a.mallory)
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over the upload limit: %d, want 413", resp.StatusCode)
	}
	if b := a.balance(); b != balance0 {
		t.Errorf("the attacker's balance moved: %d → %d", balance0, b)
	}
}
