package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	agentmcp "github.com/accordmesh/accord/agents/mcp"
	"github.com/accordmesh/accord/artifacts"
	"github.com/accordmesh/accord/internal/apiserver"
	"github.com/accordmesh/accord/market"
	"github.com/accordmesh/accord/market/broker"
	"github.com/accordmesh/accord/market/providers"
	"github.com/accordmesh/accord/policies"
	"github.com/accordmesh/accord/provenance"
	"github.com/accordmesh/accord/runtimes/nomad/pools"
	"github.com/accordmesh/accord/settlement"
	"github.com/accordmesh/accord/workers/apijobs"
	"github.com/accordmesh/accord/workers/local"
	"github.com/accordmesh/accord/workers/stack"
)

// Versions of the third-party MCP clients the tests run (PLATFORM.md:
// inspector 1.x is the line that runs on Node 20).
const (
	inspectorVersion = "1.0.3"
	tsSDKVersion     = "1.32.2"
)

// mcpBackend is `accord serve`'s agent backend over a test stack (as
// cmd/accord's agentBackend builds it over a home).
func mcpBackend(t *testing.T, home string, st *stack.Stack, jobs *apijobs.Jobs) agentmcp.Backend {
	t.Helper()
	provs, err := local.Sellers(local.Options{Home: home})
	if err != nil {
		t.Fatal(err)
	}
	l, err := settlement.Open(context.Background(), settlement.DefaultDSN(home))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	poolStore := pools.Open(home)
	return agentmcp.Backend{Jobs: jobs, Documents: jobs, Logs: agentmcp.FileLogs{Home: home}, Statements: l,
		Quoter: agentmcp.BrokerQuoter{Broker: broker.Broker{Providers: func(context.Context) ([]market.Provider, error) {
			return append(append([]market.Provider(nil), provs...), providers.Pools(poolStore, slog.Default())...), nil
		}}},
		Trust: func(context.Context) (*provenance.TrustStore, error) {
			return provenance.LoadTrustStore(provenance.DefaultTrustPath(home))
		}}
}

// mcpClients installs the MCP Inspector and the TypeScript SDK into a
// cache directory (once; npm's own cache makes a reinstall cheap) and
// returns it. It skips only when node or npm is missing.
func mcpClients(t *testing.T) string {
	t.Helper()
	for _, b := range []string{"node", "npm", "npx"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("the third-party MCP client tests need %s (Node 20: Debian nodejs npm)", b)
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "accord", "mcp-clients-"+inspectorVersion+"-"+tsSDKVersion)
	for _, p := range []string{"node_modules/.bin/mcp-inspector", "node_modules/@modelcontextprotocol/sdk/package.json"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			npmInstall(t, dir)
			break
		}
	}
	return dir
}

func npmInstall(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name": "accord-mcp-clients", "private": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-audit", "--no-fund",
		"@modelcontextprotocol/inspector@"+inspectorVersion, "@modelcontextprotocol/sdk@"+tsSDKVersion)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install the MCP clients (is the npm registry reachable?): %v\n%s", err, out)
	}
}

// quickstartDoc is examples/quickstart.md with its image as the pushed
// artifact: a spec sent to a server names no host path.
func quickstartDoc(t *testing.T, digest string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "examples", "quickstart.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Replace(string(b), "image: oci-archive:images/trainer.tar", "image: artifact:"+digest, 1)
	doc = strings.Replace(doc, "tenant: demo", "tenant: team-a", 1)
	if doc == string(b) || strings.Contains(doc, "oci-archive:") {
		t.Fatal("examples/quickstart.md changed: its image line is not where the test expects it")
	}
	return doc
}

// badSpecDoc has an unknown key at 13:3.
const badSpecDoc = "---\naccord: v1\nname: bad\nversion: 1.0.0\ntenant: team-a\n---\n\n## Tasks\n\n```yaml\ntrain:\n  image: registry.example.com/x@sha256:" +
	"0000000000000000000000000000000000000000000000000000000000000000\n  comand: [x]\n```\n"

// mcpStack is a stack with `accord serve`'s handler (the API and /mcp)
// and tokens of two tenants and an auditor.
type mcpStack struct {
	home                 string
	st                   *stack.Stack
	srv                  *httptest.Server
	tokA, tokB, tokAudit string
	digest               string // the trainer image, pushed by team-a
}

func newMCPStack(t *testing.T, prepare ...func(home string)) *mcpStack {
	image := needStack(t)
	m := &mcpStack{home: newHome(t)}
	for _, p := range prepare { // before the stack reads the home
		p(m.home)
	}
	m.st = startStack(t, m.home, 0, false)
	t.Cleanup(m.st.Stop)
	store := m.st.Local.Store
	token := putTenants(t, store, "team-a", "team-b")
	m.tokA = token(policies.Principal{Tenant: "team-a", Role: policies.RoleTenant, Name: "alice"})
	m.tokB = token(policies.Principal{Tenant: "team-b", Role: policies.RoleTenant, Name: "bob"})
	m.tokAudit = token(policies.Principal{Tenant: "*", Role: policies.RoleAuditor, Name: "audit"})
	fund(t, m.home, "team-a", 5000)
	prov := &provenance.Local{Home: m.home, Log: m.st.Local.Log, Store: provenance.NewStore(provenance.DefaultStoreDir(m.home))}
	jobs := &apijobs.Jobs{Client: m.st.Client, Home: m.home, Prov: prov}
	m.srv = httptest.NewServer(apiserver.New(jobs, store, apiserver.WithData(artifacts.Local{Dir: artifacts.DefaultDir(m.home)}, 1<<30),
		apiserver.WithAgents(agentmcp.Handler(mcpBackend(t, m.home, m.st, jobs)))))
	t.Cleanup(m.srv.Close)
	tar, err := os.ReadFile(image)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", m.srv.URL+"/v1/data", bytes.NewReader(tar))
	req.Header.Set("Authorization", "Bearer "+m.tokA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var pushed apiserver.DataResponse
	if json.NewDecoder(resp.Body).Decode(&pushed); resp.StatusCode != http.StatusCreated {
		t.Fatalf("push the image: %d", resp.StatusCode)
	}
	m.digest = pushed.Digest
	return m
}

// stdioServer writes a script that runs `accord mcp` on the stack as tok
// (what an agent's stdio config names).
func (m *mcpStack) stdioServer(t *testing.T, tok string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "accord-mcp.sh")
	script := fmt.Sprintf("#!/bin/sh\nexec %q mcp --home %q --temporal-address %q --token %q\n", accordBinary(t), m.home, m.st.Server.Address(), tok)
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// inspector runs the MCP Inspector's CLI against target (its transport
// arguments) and decodes the JSON it prints. The Inspector exits 0 even
// when a tool answers isError, so callers check the result.
func inspector(t *testing.T, clients string, target []string, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(clients, "node_modules", ".bin", "mcp-inspector"), append(append([]string{"--cli"}, target...), args...)...)
	cmd.Dir = clients
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("inspector %v: %v\n%s\n%s", args, err, out, stderr.String())
	}
	i := bytes.IndexByte(out, '{')
	var v map[string]any
	if i < 0 || json.Unmarshal(out[i:], &v) != nil {
		t.Fatalf("inspector %v: no JSON in %s", args, out)
	}
	return v
}

// structured is a tools/call result's structured content; it fails the
// test when the call was a tool error.
func structured(t *testing.T, res map[string]any, what string) map[string]any {
	t.Helper()
	if res["isError"] == true {
		t.Fatalf("%s: tool error %v", what, res["content"])
	}
	sc, ok := res["structuredContent"].(map[string]any)
	if !ok {
		t.Fatalf("%s: no structured content in %v", what, res)
	}
	return sc
}

// TestMCPThirdPartyClients drives Accord's MCP server with the official
// MCP Inspector CLI and the TypeScript SDK's client, over stdio (`accord
// mcp`) and streamable HTTP (`accord serve` at /mcp): list the tools, lint
// a bad spec, quote the quickstart, submit it, follow it to settled and
// verify its receipt.
func TestMCPThirdPartyClients(t *testing.T) {
	clients := mcpClients(t)
	m := newMCPStack(t)
	quick := quickstartDoc(t, m.digest)
	targets := map[string][]string{
		"stdio": {m.stdioServer(t, m.tokA)},
		"http":  {m.srv.URL + "/mcp", "--transport", "http", "--header", "Authorization: Bearer " + m.tokA},
	}
	for _, transport := range []string{"stdio", "http"} {
		t.Run("inspector/"+transport, func(t *testing.T) {
			target := targets[transport]
			var names []string
			for _, tl := range inspector(t, clients, target, "--method", "tools/list")["tools"].([]any) {
				names = append(names, tl.(map[string]any)["name"].(string))
			}
			for _, want := range []string{"spec_lint", "spec_compile", "market_quote", "job_submit", "job_status", "receipt_get", "audit_verify"} {
				if !slices.Contains(names, want) {
					t.Errorf("tools/list: no %s in %v", want, names)
				}
			}
			call := func(tool string, args ...string) map[string]any {
				a := []string{"--method", "tools/call", "--tool-name", tool}
				for _, kv := range args {
					a = append(a, "--tool-arg", kv)
				}
				return inspector(t, clients, target, a...)
			}
			lint := structured(t, call("spec_lint", "spec="+badSpecDoc, "name=bad.md"), "spec_lint")
			if lint["ok"] != false || !strings.Contains(fmt.Sprint(lint["errors"]), `unknown key "comand"`) {
				t.Errorf("lint of a bad spec: %v", lint)
			}
			quote := structured(t, call("market_quote", "spec="+quick), "market_quote")
			if quote["provider"] != providers.LocalPoolName || quote["price"].(float64) <= 0 {
				t.Errorf("quote: %v", quote)
			}
			job := structured(t, call("job_submit", "spec="+quick, "name=quickstart.md"), "job_submit")
			id := job["job_id"].(string)
			waitFor(t, 4*time.Minute, "job "+id+" settled (inspector, "+transport+")", func() bool {
				st := structured(t, call("job_status", "job_id="+id), "job_status")
				if st["status"] == "failed" || st["status"] == "cancelled" {
					t.Fatalf("job ended %v", st)
				}
				return st["status"] == "settled"
			})
			v := structured(t, call("audit_verify", "job_id="+id), "audit_verify")
			if v["ok"] != true || v["complete"] != true || v["stages"].(float64) != 7 {
				t.Errorf("audit_verify: %v", v)
			}
		})
		t.Run("typescript-sdk/"+transport, func(t *testing.T) {
			out := tsFlow(t, clients, m, transport, quick)
			t.Logf("TypeScript client over %s: %+v", transport, out)
			if !slices.Contains(out.Tools, "job_submit") || out.Lint.OK || !strings.Contains(out.Lint.Problem, "13:3") {
				t.Errorf("tools %v, lint %+v", out.Tools, out.Lint)
			}
			// The quote's progress notifications precede its answer on the
			// wire, but the TypeScript client runs notification handlers a
			// tick later and drops those of a call already answered: a quote
			// answered within milliseconds may show none (the Go client's
			// unit test counts them). A waiting submit must show its stages.
			if out.Quote.Provider != providers.LocalPoolName || out.Quote.Price <= 0 {
				t.Errorf("quote %+v (progress %d)", out.Quote, out.QuoteProgress)
			}
			if out.Job.Status != "settled" || out.SubmitProgress < 2 {
				t.Errorf("submit with wait: %+v (%d progress notifications)", out.Job, out.SubmitProgress)
			}
			if !out.Verify.OK || !out.Verify.Complete || out.Verify.Stages != 7 || out.ReceiptStages != 7 {
				t.Errorf("verify %+v, receipt of %d stages", out.Verify, out.ReceiptStages)
			}
		})
	}
	ledgerCheck(t, m.home)
}

// tsOut is what the TypeScript client's flow prints.
type tsOut struct {
	Tools []string `json:"tools"`
	Lint  struct {
		OK      bool   `json:"ok"`
		Problem string `json:"problem"`
	} `json:"lint"`
	Quote struct {
		Provider string `json:"provider"`
		Price    int64  `json:"price"`
	} `json:"quote"`
	QuoteProgress  int `json:"quote_progress"`
	SubmitProgress int `json:"submit_progress"`
	Job            struct {
		JobID  string `json:"job_id"`
		Status string `json:"status"`
	} `json:"job"`
	ReceiptStages int `json:"receipt_stages"`
	Verify        struct {
		OK       bool `json:"ok"`
		Complete bool `json:"complete"`
		Stages   int  `json:"stages"`
	} `json:"verify"`
}

// tsFlowScript is the TypeScript SDK client's flow (ES module, run by node
// in the clients' directory).
const tsFlowScript = `
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { readFileSync } from "node:fs";

const [mode, target, token, specFile, badFile] = process.argv.slice(2);
const transport = mode === "stdio"
  ? new StdioClientTransport({ command: target, args: [] , stderr: "inherit" })
  : new StreamableHTTPClientTransport(new URL(target), { requestInit: { headers: { Authorization: "Bearer " + token } } });
const client = new Client({ name: "accord-ts-test", version: "1.0.0" });
await client.connect(transport);
const call = async (name, args, opts) => {
  const r = await client.callTool({ name, arguments: args }, undefined, opts);
  if (r.isError) throw new Error(name + ": " + r.content[0].text);
  return r.structuredContent;
};
const out = {};
out.tools = (await client.listTools()).tools.map((t) => t.name);
const lint = await call("spec_lint", { spec: readFileSync(badFile, "utf8"), name: "bad.md" });
out.lint = { ok: lint.ok, problem: lint.errors.map((e) => e.line + ":" + e.col + ": " + e.message).join("; ") };
const spec = readFileSync(specFile, "utf8");
out.quote_progress = 0;
out.quote = await call("market_quote", { spec }, { onprogress: () => out.quote_progress++ });
out.submit_progress = 0;
out.job = await call("job_submit", { spec, name: "quickstart.md", wait: true },
  { onprogress: () => out.submit_progress++, timeout: 300000, resetTimeoutOnProgress: true });
const receipt = await call("receipt_get", { job_id: out.job.job_id });
out.receipt_stages = receipt.receipt.attestations.length;
out.verify = await call("audit_verify", { job_id: out.job.job_id });
console.log(JSON.stringify(out));
await client.close();
`

func tsFlow(t *testing.T, clients string, m *mcpStack, transport, quick string) tsOut {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(clients, "accord-flow.mjs") // beside node_modules, so imports resolve
	if err := os.WriteFile(script, []byte(tsFlowScript), 0o644); err != nil {
		t.Fatal(err)
	}
	spec, bad := filepath.Join(dir, "quickstart.md"), filepath.Join(dir, "bad.md")
	os.WriteFile(spec, []byte(quick), 0o644)
	os.WriteFile(bad, []byte(badSpecDoc), 0o644)
	target := m.srv.URL + "/mcp"
	if transport == "stdio" {
		target = m.stdioServer(t, m.tokA)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, transport, target, m.tokA, spec, bad)
	cmd.Dir = clients
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("TypeScript client over %s: %v\n%s\n%s", transport, err, out, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var v tsOut
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("TypeScript client output %s: %v", out, err)
	}
	return v
}

// mcpSession connects the Go SDK's client to /mcp with a bearer token.
func mcpSession(t *testing.T, url, tok string) *sdk.ClientSession {
	t.Helper()
	c := sdk.NewClient(&sdk.Implementation{Name: "accord-test", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: url,
		HTTPClient: &http.Client{Transport: bearerRT(tok)}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// bearerRT sends a bearer token and, as a well-behaved client does, waits
// out the API's rate limit (429 with Retry-After) and sends again.
type bearerRT string

func (b bearerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	for try := 0; ; try++ {
		req := r.Clone(r.Context())
		req.Header.Set("Authorization", "Bearer "+string(b))
		if r.GetBody != nil {
			body, err := r.GetBody()
			if err != nil {
				return nil, err
			}
			req.Body = body
		}
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests || try == 20 {
			return resp, err
		}
		resp.Body.Close()
		wait, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		time.Sleep(time.Duration(max(wait, 1)) * time.Second)
	}
}

// mcpCall calls a tool; a tool error comes back as its CLI error object's
// class and message.
func mcpCall(t *testing.T, cs *sdk.ClientSession, tool string, args map[string]any) (map[string]any, string, string) {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return nil, "protocol", err.Error()
	}
	if res.IsError {
		var e struct {
			Error struct{ Class, Message string }
		}
		text := res.Content[0].(*sdk.TextContent).Text
		if json.Unmarshal([]byte(text), &e) != nil {
			return nil, "unclassified", text
		}
		return nil, e.Error.Class, e.Error.Message
	}
	b, _ := json.Marshal(res.StructuredContent)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out, "", ""
}

// TestMCPTenantIsolation: over HTTP, another tenant's job is not found by
// every job tool and resource, and an auditor's token lists no write tool
// and cannot submit.
func TestMCPTenantIsolation(t *testing.T) {
	m := newMCPStack(t)
	a := mcpSession(t, m.srv.URL+"/mcp", m.tokA)
	job, class, msg := mcpCall(t, a, "job_submit", map[string]any{"spec": quickstartDoc(t, m.digest), "name": "quickstart.md"})
	if class != "" {
		t.Fatalf("submit: %s: %s", class, msg)
	}
	id := job["job_id"].(string)
	b := mcpSession(t, m.srv.URL+"/mcp", m.tokB)
	for _, tool := range []string{"job_status", "job_logs", "job_cancel", "job_approve", "receipt_get", "audit_verify"} {
		if _, class, msg := mcpCall(t, b, tool, map[string]any{"job_id": id}); class != "not_found" || msg != "job not found" {
			t.Errorf("team-b %s on team-a's job: %s %q, want not_found", tool, class, msg)
		}
	}
	for _, uri := range []string{"accord://jobs/" + id + "/receipt", "accord://jobs/" + id + "/spec", "accord://jobs/" + id + "/plan"} {
		if _, err := b.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: uri}); err == nil {
			t.Errorf("team-b read %s", uri)
		}
	}
	au := mcpSession(t, m.srv.URL+"/mcp", m.tokAudit)
	tools, err := au.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools.Tools {
		if tl.Name == "job_submit" || tl.Name == "job_cancel" || tl.Name == "job_approve" {
			t.Errorf("the auditor's session lists %s", tl.Name)
		}
	}
	if _, class, _ := mcpCall(t, au, "job_submit", map[string]any{"spec": quickstartDoc(t, m.digest)}); class == "" {
		t.Errorf("an auditor token submitted a job")
	}
	if st, class, _ := mcpCall(t, au, "job_status", map[string]any{"job_id": id}); class != "" || st["tenant"] != "team-a" {
		t.Errorf("the auditor cannot read team-a's job: %s %v", class, st)
	}
	waitFor(t, 4*time.Minute, "job "+id+" settled", func() bool {
		st, _, _ := mcpCall(t, a, "job_status", map[string]any{"job_id": id})
		return st["status"] == "settled" || st["status"] == "failed"
	})
	ledgerCheck(t, m.home)
}
